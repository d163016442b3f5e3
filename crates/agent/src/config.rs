//! The agent TOML: model, system prompt, memory window, step limit, generation settings and `[[tools]]`.
//!
//! ```toml
//! model = "qwen2.5-coder-0.5b"
//! system = "You are a helpful assistant."
//! memory = 10       # messages kept between turns (the system message is always kept)
//! max_steps = 5     # model calls per question
//!
//! [generation]
//! temperature = 0.0
//! max_tokens = 512
//!
//! [[tools]]
//! name = "get_weather"
//! type = "fixed"            # fixed | http_get | sql | retrieve
//! description = "Current weather for a city"
//! key = "city"
//! parameters = { type = "object", properties = { city = { type = "string" } }, required = ["city"] }
//! responses = { Seoul = { temperature_c = 18, condition = "clear" } }
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{AgentError, Result};

/// Messages kept between turns by default.
pub const DEFAULT_MEMORY: usize = 10;
/// Model calls per question by default.
pub const DEFAULT_MAX_STEPS: usize = 5;

/// A whole agent definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Model name, alias or path (a relative path is resolved against the TOML's folder by the caller).
    #[serde(default)]
    pub model: Option<String>,
    /// System prompt.
    #[serde(default)]
    pub system: Option<String>,
    /// Messages (user, assistant, tool) kept between turns; the current turn is always kept whole.
    #[serde(default = "default_memory")]
    pub memory: usize,
    /// Most model calls for one question; reaching it ends the turn without an answer.
    #[serde(default = "default_max_steps")]
    pub max_steps: usize,
    /// Sampling and length.
    #[serde(default)]
    pub generation: GenerationConfig,
    /// The tools offered to the model.
    #[serde(default)]
    pub tools: Vec<ToolConfig>,
    /// Folder relative paths in the file are resolved against (set by [`AgentConfig::from_file`]).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

fn default_memory() -> usize {
    DEFAULT_MEMORY
}

fn default_max_steps() -> usize {
    DEFAULT_MAX_STEPS
}

/// Sampling settings (llama.cpp names); greedy by default so runs repeat.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerationConfig {
    /// Temperature; 0 = greedy.
    pub temperature: f32,
    /// Top-p (1 = off).
    pub top_p: f32,
    /// Top-k (0 = off).
    pub top_k: usize,
    /// Min-p (0 = off).
    pub min_p: f32,
    /// Repetition penalty (1 = off).
    pub repeat_penalty: f32,
    /// Most tokens per model call.
    pub max_tokens: usize,
    /// Random seed.
    pub seed: u64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            max_tokens: 512,
            seed: 42,
        }
    }
}

/// One `[[tools]]` entry: name, description, JSON-schema parameters and the kind's own fields.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolConfig {
    /// Function name the model calls.
    pub name: String,
    /// What the tool does, for the model.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON schema of the arguments (an `object` schema); built-ins have defaults.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// The kind (`type = ...`) and its settings.
    #[serde(flatten)]
    pub kind: ToolKind,
}

/// The built-in tool kinds. There is no shell tool.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolKind {
    /// Fixed text or JSON, optionally chosen by one argument's value.
    Fixed(FixedConfig),
    /// GET of a URL template on allow-listed hosts.
    HttpGet(HttpConfig),
    /// Read-only SQL on SQLite or PostgreSQL.
    Sql(SqlConfig),
    /// Search of a `tuneup rag` index.
    Retrieve(RetrieveConfig),
}

impl ToolKind {
    /// The `type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            ToolKind::Fixed(_) => "fixed",
            ToolKind::HttpGet(_) => "http_get",
            ToolKind::Sql(_) => "sql",
            ToolKind::Retrieve(_) => "retrieve",
        }
    }
}

/// Settings of a `fixed` tool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedConfig {
    /// The answer when no keyed response matches (or when there is no `key`).
    #[serde(default)]
    pub response: Option<Value>,
    /// Argument whose value selects the response in `responses`.
    #[serde(default)]
    pub key: Option<String>,
    /// Responses by the `key` argument's value (matched without regard to case and surrounding spaces).
    #[serde(default)]
    pub responses: Map<String, Value>,
}

/// Settings of an `http_get` tool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// URL with `{argument}` placeholders, filled percent-encoded.
    pub url: String,
    /// Hosts the tool may reach; anything else is refused.
    pub allow_hosts: Vec<String>,
    /// Request timeout in seconds.
    #[serde(default = "default_http_timeout")]
    pub timeout_secs: f64,
    /// Most response bytes returned to the model (the rest is cut, and said so).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Allow addresses that are not public: loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7),
    /// link-local (169.254/16, fe80::/10), CGNAT (100.64/10), unspecified, multicast and reserved. Off by
    /// default: an allow-listed name that resolves to one of them is refused.
    #[serde(default)]
    pub allow_private: bool,
    /// Ports the tool may connect to; default 80 and 443.
    #[serde(default = "default_ports")]
    pub ports: Vec<u16>,
}

fn default_ports() -> Vec<u16> {
    vec![80, 443]
}

fn default_http_timeout() -> f64 {
    10.0
}

fn default_max_bytes() -> usize {
    16 * 1024
}

/// Settings of a `sql` tool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// A SQLite file, a `.sql` script loaded into a temporary SQLite database, or a `postgres://` URL.
    pub database: String,
    /// PostgreSQL schema to query (`search_path`); default the server's.
    #[serde(default)]
    pub schema: Option<String>,
    /// Most rows shown to the model.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Statement timeout in seconds.
    #[serde(default = "default_sql_timeout")]
    pub timeout_secs: f64,
    /// Run the model's SQL on PostgreSQL even when the role is a superuser or a member of
    /// `pg_read_server_files`, `pg_write_server_files` or `pg_execute_server_program` (refused by default:
    /// such a role lets a query read the server's files). Better: connect as a read-only role.
    #[serde(default)]
    pub allow_privileged_role: bool,
}

fn default_max_rows() -> usize {
    50
}

fn default_sql_timeout() -> f64 {
    5.0
}

/// Settings of a `retrieve` tool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrieveConfig {
    /// Index name (as `tuneup rag --index`).
    #[serde(default = "default_index")]
    pub index: String,
    /// Where indexes live (as `tuneup rag --store`): folder, `.db` file or `postgres://` URL; default
    /// `$TUNEUP_HOME/rag`.
    #[serde(default)]
    pub store: Option<String>,
    /// The embedding model the index was built with.
    #[serde(default = "default_embedder")]
    pub embedder: String,
    /// Chunks returned per query.
    #[serde(default = "default_k")]
    pub k: usize,
    /// `dense`, `bm25` or `hybrid`.
    #[serde(default = "default_mode")]
    pub mode: String,
}

fn default_index() -> String {
    "default".into()
}

fn default_embedder() -> String {
    "all-minilm-l6-v2".into()
}

fn default_k() -> usize {
    4
}

fn default_mode() -> String {
    "hybrid".into()
}

impl AgentConfig {
    /// Reads and checks an agent TOML; relative paths in it are resolved against its folder.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| AgentError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(config)
    }

    /// Parses and checks TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let err = |message: String| AgentError::Config {
            path: origin.to_path_buf(),
            message,
        };
        let de = toml::Deserializer::new(text);
        let config: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            let inner = e.into_inner();
            let line = inner
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let mut message = inner.message().trim().to_string();
            if at != "." && !at.is_empty() {
                message = format!("{at}: {message}");
            }
            if let Some(line) = line {
                message.push_str(&format!(" (line {line})"));
            }
            err(message)
        })?;
        config.check().map_err(err)?;
        Ok(config)
    }

    /// A path from the file, resolved against its folder.
    pub fn resolve_path(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.max_steps == 0 {
            return Err("max_steps must be at least 1".into());
        }
        if self.generation.max_tokens == 0 {
            return Err("generation.max_tokens must be at least 1".into());
        }
        if !(0.0..=2.0).contains(&self.generation.temperature) {
            return Err(format!(
                "generation.temperature must be between 0 and 2, got {}",
                self.generation.temperature
            ));
        }
        let mut seen = HashSet::new();
        for (i, t) in self.tools.iter().enumerate() {
            let at = format!("tools[{i}]");
            let valid = !t.name.is_empty()
                && t.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(format!(
                    "{at}.name: {:?} is not a function name (letters, digits, _ and - only)",
                    t.name
                ));
            }
            if !seen.insert(t.name.as_str()) {
                return Err(format!("{at}.name: tool '{}' is declared twice", t.name));
            }
            if let Some(p) = &t.parameters {
                if p.get("type").and_then(Value::as_str) != Some("object") {
                    return Err(format!(
                        "{at}.parameters: must be a JSON schema with type = \"object\""
                    ));
                }
            }
            t.check_kind().map_err(|m| format!("{at}: {m}"))?;
        }
        Ok(())
    }
}

/// A finite number above zero (a usable timeout).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

impl ToolConfig {
    fn check_kind(&self) -> std::result::Result<(), String> {
        match &self.kind {
            ToolKind::Fixed(f) => {
                if f.response.is_none() && f.responses.is_empty() {
                    return Err("a fixed tool needs `response` or `responses`".into());
                }
                if !f.responses.is_empty() && f.key.is_none() {
                    return Err("`responses` needs `key` (the argument that selects one)".into());
                }
            }
            ToolKind::HttpGet(h) => {
                if h.allow_hosts.is_empty() {
                    return Err("allow_hosts: list the hosts the tool may reach".into());
                }
                if !positive(h.timeout_secs) {
                    return Err("timeout_secs must be positive".into());
                }
                let declared = self.parameter_schema();
                for name in crate::tools::http::placeholders(&h.url) {
                    if declared["properties"].get(&name).is_none() {
                        return Err(format!(
                            "url: placeholder {{{name}}} is not a declared parameter"
                        ));
                    }
                }
            }
            ToolKind::Sql(s) => {
                if s.max_rows == 0 {
                    return Err("max_rows must be at least 1".into());
                }
                if !positive(s.timeout_secs) {
                    return Err("timeout_secs must be positive".into());
                }
            }
            ToolKind::Retrieve(r) => {
                r.mode
                    .parse::<tuneup_retrieval::search::Mode>()
                    .map_err(|e| format!("mode: {e}"))?;
                if r.k == 0 {
                    return Err("k must be at least 1".into());
                }
            }
        }
        Ok(())
    }

    /// The parameter schema: as declared, or the kind's default.
    pub fn parameter_schema(&self) -> Value {
        if let Some(p) = &self.parameters {
            return p.clone();
        }
        let strings = |names: Vec<String>, what: &str| {
            let props: Map<String, Value> = names
                .iter()
                .map(|n| (n.clone(), json!({"type": "string", "description": what})))
                .collect();
            json!({"type": "object", "properties": props, "required": names})
        };
        match &self.kind {
            ToolKind::Fixed(f) => match &f.key {
                Some(k) => strings(vec![k.clone()], ""),
                None => json!({"type": "object", "properties": {}}),
            },
            ToolKind::HttpGet(h) => strings(crate::tools::http::placeholders(&h.url), ""),
            ToolKind::Sql(_) => {
                strings(vec!["query".into()], "One read-only SQL SELECT statement.")
            }
            ToolKind::Retrieve(_) => strings(vec!["query".into()], "What to search for."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AgentConfig> {
        AgentConfig::parse(text, Path::new("agent.toml"))
    }

    fn message(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn full_config() {
        let c = parse(
            r#"
model = "qwen2.5-coder-0.5b"
system = "Be brief."
memory = 6
[generation]
temperature = 0.0
max_tokens = 128
[[tools]]
name = "get_weather"
type = "fixed"
key = "city"
responses = { Seoul = { temperature_c = 18 } }
[[tools]]
name = "db"
type = "sql"
database = "shop.sql"
"#,
        )
        .unwrap();
        assert_eq!(c.memory, 6);
        assert_eq!(c.max_steps, DEFAULT_MAX_STEPS);
        assert_eq!(c.generation.max_tokens, 128);
        assert_eq!(c.tools.len(), 2);
        assert_eq!(c.tools[0].kind.type_name(), "fixed");
        assert_eq!(c.tools[0].parameter_schema()["required"], json!(["city"]));
        assert_eq!(
            c.tools[1].parameter_schema()["properties"]["query"]["type"],
            "string"
        );
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.memory, DEFAULT_MEMORY);
        assert_eq!(c.max_steps, 5);
        assert_eq!(c.generation.temperature, 0.0);
        assert!(c.tools.is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        let m = message("memroy = 3");
        assert!(m.contains("memroy") && m.contains("agent.toml"), "{m}");
        let m = message("max_steps = \"five\"");
        assert!(m.contains("max_steps"), "{m}");
        let m = message("[generation]\ntemprature = 0.5");
        assert!(m.contains("generation") && m.contains("temprature"), "{m}");
        let m = message("[[tools]]\nname = \"x\"\ntype = \"http_get\"\nallow_hosts = []");
        assert!(m.contains("tools[0]") && m.contains("url"), "{m}");
        let m = message("[[tools]]\nname = \"sh\"\ntype = \"shell\"");
        assert!(m.contains("tools[0]") && m.contains("shell"), "{m}");
        let m = message("[[tools]]\nname = \"db\"\ntype = \"sql\"\ndatabse = \"a.db\"");
        assert!(m.contains("tools[0]") && m.contains("databse"), "{m}");
        let m = message("[[tools]]\nname = \"bad name\"\ntype = \"fixed\"\nresponse = \"x\"");
        assert!(m.contains("tools[0].name"), "{m}");
        let m = message(
            "[[tools]]\nname = \"w\"\ntype = \"http_get\"\nurl = \"http://h/{city}\"\nallow_hosts = [\"h\"]\nparameters = { type = \"object\", properties = { town = { type = \"string\" } } }",
        );
        assert!(m.contains("tools[0]") && m.contains("{city}"), "{m}");
        let m = message("max_steps = 0");
        assert!(m.contains("max_steps"), "{m}");
        let m = message(
            "[[tools]]\nname = \"a\"\ntype = \"fixed\"\nresponse = 1\n[[tools]]\nname = \"a\"\ntype = \"fixed\"\nresponse = 2",
        );
        assert!(m.contains("tools[1].name") && m.contains("twice"), "{m}");
    }

    #[test]
    fn http_parameters_default_from_placeholders() {
        let c = parse(
            "[[tools]]\nname = \"w\"\ntype = \"http_get\"\nurl = \"https://api.open-meteo.com/v1/forecast?latitude={latitude}&longitude={longitude}\"\nallow_hosts = [\"api.open-meteo.com\"]",
        )
        .unwrap();
        assert_eq!(
            c.tools[0].parameter_schema()["required"],
            json!(["latitude", "longitude"])
        );
    }
}
