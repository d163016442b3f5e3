//! Sentence embeddings with a local BERT-family model.
