//! Loading examples: JSONL (or a JSON array) with a field mapping, an optional join with a second file,
//! a seeded shuffle and a limit.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{read_to_string, Error, Result};
use crate::task::Dataset;

/// One example, with the mapped fields pulled out and the whole record kept for templates.
#[derive(Debug, Clone)]
pub struct Example {
    /// Stable id (the `id` field, or `line-N`).
    pub id: String,
    /// Position in the file (0-based).
    pub index: usize,
    /// The model input.
    pub input: String,
    /// The reference answer (string, or any JSON for function calls).
    pub target: Option<Value>,
    /// Grouping key for reports.
    pub category: Option<String>,
    /// The example's database (SQLite file under `db_dir`, or PostgreSQL schema/database of `db_url`).
    pub db_id: Option<String>,
    /// Function docs offered to the model.
    pub tools: Option<Vec<Value>>,
    /// The whole record (merged with the joined record).
    pub record: Map<String, Value>,
}

/// Looks up a field path: `a.b.0.c` walks objects by key and arrays by index.
pub fn field<'a>(record: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(record, |v, part| match v {
        Value::Object(m) => m.get(part),
        Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// A value as prompt text: strings as they are, anything else as JSON.
pub fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Most bytes a gzipped data file may decompress to; a larger one (a gzip bomb: 1 GiB of zeros is 1 MiB
/// compressed) is refused rather than read into memory.
pub const MAX_GUNZIPPED_BYTES: u64 = 256 << 20;

/// Reads a data file as text, gunzipping `*.gz` (HumanEval ships as `HumanEval.jsonl.gz`).
fn read_data_text(path: &Path) -> Result<String> {
    use std::io::Read as _;
    if path.extension().is_none_or(|e| e != "gz") {
        return read_to_string(path, "reading data file");
    }
    let io = |source| Error::Io {
        what: "reading gzip data file",
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .take(MAX_GUNZIPPED_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_GUNZIPPED_BYTES {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it decompresses to more than {} MiB (a gzip bomb?); refused",
                MAX_GUNZIPPED_BYTES >> 20
            ),
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text: {e}"),
        ))
    })
}

/// Reads JSON records: one object a line (JSONL), or a JSON array when the file starts with `[`; `*.gz`
/// files are decompressed first. Blank lines are skipped; a bad line is an error naming the file and line.
pub fn read_records(path: &Path) -> Result<Vec<(usize, Value)>> {
    let text = read_data_text(path)?;
    if text.trim_start().starts_with('[') {
        let all: Vec<Value> = serde_json::from_str(&text).map_err(|e| Error::Data {
            path: path.to_path_buf(),
            line: e.line(),
            message: format!("not a JSON array of records: {e}"),
        })?;
        return Ok(all
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, v))
            .collect());
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| Error::Data {
            path: path.to_path_buf(),
            line: i + 1,
            message: format!("invalid JSON: {e}"),
        })?;
        if !v.is_object() {
            return Err(Error::Data {
                path: path.to_path_buf(),
                line: i + 1,
                message: "a record must be a JSON object".into(),
            });
        }
        out.push((i + 1, v));
    }
    Ok(out)
}

fn key_text(v: &Value) -> String {
    as_text(v)
}

/// Loads, joins, maps, shuffles (when seeded) and limits the examples of `spec`.
pub fn load_examples(spec: &Dataset) -> Result<Vec<Example>> {
    let mut examples = load_mapped(spec, &spec.path)?;
    if let Some(seed) = spec.seed {
        shuffle(&mut examples, seed);
    }
    if let Some(limit) = spec.limit {
        examples.truncate(limit);
    }
    Ok(examples)
}

/// Loads a file with `spec`'s field mapping (used for the test file and the few-shot file), no limit.
pub fn load_mapped(spec: &Dataset, path: &Path) -> Result<Vec<Example>> {
    let records = read_records(path)?;
    let joined = match &spec.join {
        Some(j) => {
            let mut by_key = HashMap::new();
            for (line, r) in read_records(&j.path)? {
                let k = field(&r, &j.key).ok_or_else(|| Error::Data {
                    path: j.path.clone(),
                    line,
                    message: format!("missing join key `{}`", j.key),
                })?;
                by_key.insert(key_text(k), r);
            }
            Some((j, by_key))
        }
        None => None,
    };
    let mut out = Vec::with_capacity(records.len());
    for (index, (line, mut record)) in records.into_iter().enumerate() {
        let err = |message: String| Error::Data {
            path: path.to_path_buf(),
            line,
            message,
        };
        if let Some((j, by_key)) = &joined {
            // Only the test file is joined; few-shot files may not have the key.
            if let Some(k) = field(&record, &j.key).map(key_text) {
                if let (Some(Value::Object(extra)), Value::Object(m)) =
                    (by_key.get(&k).cloned(), &mut record)
                {
                    for (key, v) in extra {
                        m.entry(key).or_insert(v);
                    }
                }
            }
        }
        let input = field(&record, &spec.input)
            .map(as_text)
            .ok_or_else(|| err(format!("missing input field `{}`", spec.input)))?;
        let target = match &spec.target {
            Some(t) => Some(
                field(&record, t)
                    .cloned()
                    .ok_or_else(|| err(format!("missing target field `{t}`")))?,
            ),
            None => None,
        };
        let get = |name: &Option<String>| -> Result<Option<String>> {
            match name {
                Some(f) => field(&record, f)
                    .map(|v| Some(as_text(v)))
                    .ok_or_else(|| err(format!("missing field `{f}`"))),
                None => Ok(None),
            }
        };
        let id = get(&spec.id)?.unwrap_or_else(|| format!("line-{line}"));
        let category = get(&spec.category)?;
        let db_id = get(&spec.db_id)?;
        let tools = match &spec.tools {
            Some(f) => match field(&record, f) {
                Some(Value::Array(a)) => Some(a.clone()),
                Some(Value::String(s)) => Some(
                    serde_json::from_str::<Vec<Value>>(s)
                        .map_err(|e| err(format!("tools field `{f}` is not a JSON list: {e}")))?,
                ),
                Some(other) => Some(vec![other.clone()]),
                None => return Err(err(format!("missing tools field `{f}`"))),
            },
            None => None,
        };
        let Value::Object(record) = record else {
            return Err(err("a record must be a JSON object".into()));
        };
        out.push(Example {
            id,
            index,
            input,
            target,
            category,
            db_id,
            tools,
            record,
        });
    }
    Ok(out)
}

/// SplitMix64 (fully specified, so a seed gives the same order everywhere).
pub(crate) struct SplitMix(pub u64);

impl SplitMix {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish index below `n` (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// Fisher–Yates shuffle with SplitMix64.
pub(crate) fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SplitMix(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i + 1);
        items.swap(i, j);
    }
}

pub use tuneup_data::text2sql::database_path;
