//! Training data for tuneup (`tuneup data prepare`).
//!
//! * [`read_records`] reads OpenAI chat JSONL, alpaca, ShareGPT (with `function_call`/`observation` turns and
//!   tools) or text-to-SQL records (with the schema from a Spider `tables.json` or live SQLite databases, see
//!   [`text2sql`]), as JSONL or a JSON array, into [`ChatRecord`]s; every malformed or empty record becomes a
//!   [`Rejected`] naming its file and line.
//! * [`clean::drop_long`] drops records over a token limit measured by the caller's counter (the model's
//!   tokenizer and chat template), or [`clean::approx_tokens`] without a model.
//! * [`dedup::Deduper`] removes exact duplicates and near duplicates (MinHash over word 5-shingles with LSH).
//! * [`split::assign`] puts each record in train, validation or test by a seeded hash of its own content, so
//!   adding records never moves the others.
//! * [`prepare()`] does all of it and [`Prepared::write`] writes `train.jsonl`, `validation.jsonl`,
//!   `test.jsonl`, `rejected.jsonl` and `stats.json`; [`read_chat_jsonl`] is the strict reader for the
//!   prepared files.
//!
//! ```no_run
//! use tuneup_data::{prepare, PrepareOptions, clean::approx_tokens};
//! # fn main() -> tuneup_data::Result<()> {
//! let prepared = prepare(&["alpaca.json".into()], &PrepareOptions::default(), &approx_tokens)?;
//! prepared.write("data/alpaca".as_ref())?;
//! print!("{}", prepared.stats.render());
//! let train = tuneup_data::read_chat_jsonl("data/alpaca/train.jsonl".as_ref())?;
//! # Ok(()) }
//! ```

pub mod clean;
pub mod dedup;
mod error;
mod hash;
mod prepare;
mod read;
mod record;
pub mod split;
pub mod stats;
pub mod text2sql;

pub use error::{Error, Result};
pub use prepare::{prepare, prepare_approx, PrepareOptions, Prepared};
pub use read::{
    read_records, Format, ReadOptions, ReadOutcome, Rejected, Source, SourcedRecord, Unit,
};
pub use record::{read_chat_jsonl, write_atomic, write_jsonl, ChatRecord, Invalid, RejectKind};
pub use split::{Split, SplitRatios};
pub use stats::Stats;
