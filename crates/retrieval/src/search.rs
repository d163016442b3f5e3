//! Dense, keyword and hybrid search.
