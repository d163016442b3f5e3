//! Incremental ingestion.
