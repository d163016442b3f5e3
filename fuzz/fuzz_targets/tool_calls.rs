//! The tool-call parser that reads calls out of the model's own text (`<tool_call>` tags, bare JSON), as
//! `tuneup serve` and `tuneup agent` run it on every answer.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use tuneup_agent::toolcall::{parse_tool_calls, parse_tool_calls_where};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let declared: HashSet<String> = ["weather", "sql", "http_get"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let _ = parse_tool_calls(&text, &declared);
    let _ = parse_tool_calls_where(&text, &|_| true);
});
