//! JSON validity and JSON-schema conformance of model output.
//!
//! [`extract_json`] finds the JSON value a model meant to produce:
//! 1. the body of the first fenced block labelled `json` (```` ```json ````, any case), else of the first
//!    unlabelled fence (```` ``` ````) whose body holds JSON;
//! 2. otherwise the whole output, trimmed, if it is one JSON value;
//! 3. otherwise the first `{` or `[` from which a complete JSON value parses (text after it is ignored).
//!
//! Schema checks use the `jsonschema` crate (draft detected from `$schema`, default 2020-12) with remote
//! references disabled; `format` keywords are not asserted (the JSON Schema default for 2019-09 and later).

use serde_json::Value;

/// Errors from the JSON checks.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum JsonCheckError {
    /// The output holds no parsable JSON value.
    #[error("no JSON value in model output ({len} bytes): {reason}")]
    NoJson {
        /// Length of the output.
        len: usize,
        /// Why the most promising candidate failed to parse, with its line and column.
        reason: String,
    },
    /// The schema itself is invalid.
    #[error("invalid JSON schema at {schema_path}: {message}")]
    InvalidSchema {
        /// JSON pointer into the schema.
        schema_path: String,
        /// What is wrong.
        message: String,
    },
}

/// A JSON value found in model output.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractedJson {
    /// The parsed value.
    pub value: Value,
    /// Byte range of the JSON text in the output.
    pub span: std::ops::Range<usize>,
    /// Whether it came from a fenced code block.
    pub from_fence: bool,
}

/// Fenced blocks as (label, body range).
fn fences(output: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(open) = output[rest..].find("```").map(|i| i + rest) {
        let label_end = output[open + 3..]
            .find('\n')
            .map_or(output.len(), |i| i + open + 3);
        let label = output[open + 3..label_end].trim().to_lowercase();
        let body_start = (label_end + 1).min(output.len());
        let Some(close) = output[body_start..].find("```").map(|i| i + body_start) else {
            break;
        };
        found.push((label, body_start..close));
        rest = close + 3;
    }
    found
}

/// Parses the first JSON value at the start of `text` (after whitespace); returns it and its end offset.
fn parse_prefix(text: &str) -> Result<(Value, usize), String> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    match stream.next() {
        Some(Ok(value)) => Ok((value, stream.byte_offset())),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("nothing but whitespace".to_owned()),
    }
}

fn parse_whole(text: &str, offset: usize, from_fence: bool) -> Option<ExtractedJson> {
    let trimmed = text.trim();
    let lead = text.len() - text.trim_start().len();
    serde_json::from_str(trimmed)
        .ok()
        .map(|value| ExtractedJson {
            value,
            span: offset + lead..offset + lead + trimmed.len(),
            from_fence,
        })
}

fn first_embedded(text: &str, offset: usize, from_fence: bool) -> Result<ExtractedJson, String> {
    let mut reason = "no '{' or '[' found".to_owned();
    for (start, _) in text.match_indices(['{', '[']) {
        match parse_prefix(&text[start..]) {
            Ok((value, end)) => {
                return Ok(ExtractedJson {
                    value,
                    span: offset + start..offset + start + end,
                    from_fence,
                });
            }
            Err(e) if reason.starts_with("no '{'") => {
                reason = format!("JSON starting at byte {}: {e}", offset + start);
            }
            Err(_) => {}
        }
    }
    Err(reason)
}

/// Finds the JSON value in model output by the rules in the [module docs](self).
pub fn extract_json(output: &str) -> Result<ExtractedJson, JsonCheckError> {
    let blocks = fences(output);
    let labelled = blocks.iter().find(|(label, _)| label == "json");
    let candidates = labelled
        .into_iter()
        .chain(blocks.iter().filter(|(label, _)| label.is_empty()));
    let mut fence_reason = None;
    for (_, body) in candidates {
        let text = &output[body.clone()];
        if let Some(found) = parse_whole(text, body.start, true) {
            return Ok(found);
        }
        match first_embedded(text, body.start, true) {
            Ok(found) => return Ok(found),
            Err(reason) => {
                fence_reason.get_or_insert(reason);
            }
        }
    }
    if let Some(found) = parse_whole(output, 0, false) {
        return Ok(found);
    }
    first_embedded(output, 0, false).map_err(|reason| JsonCheckError::NoJson {
        len: output.len(),
        reason: fence_reason.unwrap_or(reason),
    })
}

/// `true` when [`extract_json`] finds a value.
pub fn is_valid_json(output: &str) -> bool {
    extract_json(output).is_ok()
}

/// One schema violation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SchemaViolation {
    /// JSON pointer to the offending part of the instance (`""` for the root).
    pub instance_path: String,
    /// JSON pointer to the schema keyword that failed.
    pub schema_path: String,
    /// The validator's message.
    pub message: String,
}

/// A compiled JSON schema.
#[derive(Debug)]
pub struct SchemaChecker {
    validator: jsonschema::Validator,
}

impl SchemaChecker {
    /// Compiles `schema`; errors if it is not a valid schema.
    pub fn new(schema: &Value) -> Result<Self, JsonCheckError> {
        jsonschema::validator_for(schema)
            .map(|validator| Self { validator })
            .map_err(|e| JsonCheckError::InvalidSchema {
                schema_path: e.schema_path().to_string(),
                message: e.to_string(),
            })
    }

    /// All violations of the schema by `instance` (empty when it conforms).
    pub fn violations(&self, instance: &Value) -> Vec<SchemaViolation> {
        self.validator
            .iter_errors(instance)
            .map(|e| SchemaViolation {
                instance_path: e.instance_path().to_string(),
                schema_path: e.schema_path().to_string(),
                message: e.to_string(),
            })
            .collect()
    }

    /// `true` when `instance` conforms.
    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validator.is_valid(instance)
    }
}

/// Format failure types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatErrorType {
    /// No JSON value in the output.
    NotJson,
    /// JSON found, but it violates the schema.
    SchemaViolation,
}

/// The verdict on one output.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FormatVerdict {
    /// The extracted value, when there is one.
    pub value: Option<Value>,
    /// `true` when JSON was found and (if a schema was given) conforms.
    pub correct: bool,
    /// Why not, when not correct.
    pub error_type: Option<FormatErrorType>,
    /// Schema violations (empty when none or no schema).
    pub violations: Vec<SchemaViolation>,
    /// The parse error, for [`FormatErrorType::NotJson`].
    pub message: Option<String>,
}

/// Extracts JSON from `output` and, when `schema` is given, checks it.
pub fn check_output(output: &str, schema: Option<&SchemaChecker>) -> FormatVerdict {
    match extract_json(output) {
        Err(e) => FormatVerdict {
            value: None,
            correct: false,
            error_type: Some(FormatErrorType::NotJson),
            violations: Vec::new(),
            message: Some(e.to_string()),
        },
        Ok(found) => {
            let violations = schema
                .map(|s| s.violations(&found.value))
                .unwrap_or_default();
            FormatVerdict {
                correct: violations.is_empty(),
                error_type: (!violations.is_empty()).then_some(FormatErrorType::SchemaViolation),
                value: Some(found.value),
                violations,
                message: None,
            }
        }
    }
}
