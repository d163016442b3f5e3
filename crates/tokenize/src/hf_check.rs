//! Checks a `tokenizer.json` before the `tokenizers` crate parses it. tokenizers 0.22 panics (`expect`)
//! instead of returning an error on two kinds of bad input found by fuzzing: a JSON syntax error inside the
//! `decoder` object, and a `Precompiled` normalizer whose fields it cannot read. The text is parsed as JSON
//! first and every `Precompiled` normalizer (also inside a `Sequence`) is read on its own, so both become
//! errors; the parse itself still runs under `catch_unwind` in case of panics not yet found.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::Value as Json;
use tokenizers::normalizers::Precompiled;

/// Parses `text` as JSON and checks the parts the `tokenizers` crate would panic on; returns the JSON.
pub(crate) fn check_tokenizer_json(text: &str) -> Result<Json, String> {
    let json: Json = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(normalizer) = json.get("normalizer") {
        check_normalizer(normalizer)?;
    }
    Ok(json)
}

fn check_normalizer(n: &Json) -> Result<(), String> {
    match n.get("type").and_then(Json::as_str) {
        Some("Precompiled") => serde_json::from_value::<Precompiled>(n.clone())
            .map(drop)
            .map_err(|e| format!("the Precompiled normalizer cannot be read: {e}")),
        Some("Sequence") => n
            .get("normalizers")
            .and_then(Json::as_array)
            .map_or(Ok(()), |all| all.iter().try_for_each(check_normalizer)),
        _ => Ok(()),
    }
}

/// `tokenizers::Tokenizer::from_str`, with a panic inside it turned into an error.
pub(crate) fn parse_tokenizer(text: &str) -> Result<tokenizers::Tokenizer, String> {
    use std::str::FromStr as _;
    match catch_unwind(AssertUnwindSafe(|| tokenizers::Tokenizer::from_str(text))) {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the tokenizers crate failed on this file (it panicked)".into()),
    }
}
