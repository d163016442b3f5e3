//! Evaluation metrics for tuneup, each validated against its reference implementation.
//!
//! | module | metric | reference |
//! |---|---|---|
//! | [`text`] | exact match, normalized match, label accuracy | — |
//! | [`bleu`] | corpus and sentence BLEU | sacreBLEU `corpus_bleu` / `sentence_bleu` |
//! | [`rouge`] | ROUGE-1, ROUGE-2, ROUGE-L | Google `rouge-score` |
//! | [`json_check`] | JSON validity, JSON-schema conformance | `jsonschema` crate |
//! | [`sql`] | SQL execution accuracy on SQLite | Spider execution match semantics |
//! | [`function_call`] | function-call accuracy | BFCL AST checker |
//! | [`stats`] | percentiles, bootstrap, McNemar | numpy, scipy |

pub mod bleu;
pub mod function_call;
pub mod json_check;
pub mod rouge;
pub mod sql;
pub mod stats;
pub mod text;
