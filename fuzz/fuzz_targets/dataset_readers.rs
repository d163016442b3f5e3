//! The JSONL / JSON-array dataset readers of `tuneup data` and `tuneup train`: every record format, and the
//! chat-record reader.
#![no_main]

#[path = "scratch.rs"]
mod scratch;

use libfuzzer_sys::fuzz_target;
use tuneup_data::{read_chat_jsonl, read_records, Format, ReadOptions};

fuzz_target!(|data: &[u8]| {
    let path = scratch::scratch_file("records.jsonl", data);
    let _ = read_records(&path, Format::Auto, &ReadOptions::default());
    let _ = read_chat_jsonl(&path);
});
