//! Evaluation metrics for tuneup, each validated against its reference implementation.
//!
//! | module | metric | reference |
//! |---|---|---|
//! | [`text`] | exact match, normalized match, label accuracy | — |
//! | [`bleu`] | corpus and sentence BLEU | sacreBLEU `corpus_bleu` / `sentence_bleu` |
//! | [`rouge`] | ROUGE-1, ROUGE-2, ROUGE-L | Google `rouge-score` |
//! | [`json_check`] | JSON validity, JSON-schema conformance | Python `jsonschema` (schema verdicts) |
//! | [`sql`] | SQL execution accuracy on SQLite and PostgreSQL | Python `sqlite3` re-implementation of Spider's rules |
//! | [`function_call`] | function-call accuracy | `bfcl-eval`'s AST checker |
//! | [`code`] | pass@1 / pass@k of generated programs run against their tests | HumanEval/MBPP canonical solutions; Codex paper's pass@k estimator |
//! | [`stats`] | percentiles, bootstrap, McNemar | numpy, scipy |
//!
//! The reference values live in `fixtures/eval/`, made by the scripts in `scripts/fixtures/make_eval_*.py`;
//! the tests in `crates/eval/tests/` compare against them.

pub mod bleu;
pub mod code;
pub mod function_call;
pub mod json_check;
pub mod rouge;
pub mod sql;
pub mod stats;
pub mod text;
