//! `fixed`: answers from the TOML, optionally chosen by one argument (demos and tests).

use serde_json::Value;

use super::{arg_text, Builtin, Run, ToolSpec};
use crate::config::FixedConfig;
use crate::error::ToolError;

/// The fixed answers of one tool.
#[derive(Debug, Clone)]
pub struct Fixed {
    config: FixedConfig,
}

/// A `fixed` tool.
pub type FixedTool = Builtin<Fixed>;

impl FixedTool {
    /// The tool `spec` answering from `config`.
    pub fn new(spec: ToolSpec, config: FixedConfig) -> Self {
        Builtin {
            spec,
            runner: Fixed { config },
        }
    }
}

fn normalize(s: &str) -> String {
    s.trim().to_lowercase()
}

impl Run for Fixed {
    fn run(&mut self, args: &Value) -> Result<String, ToolError> {
        let c = &self.config;
        if let Some(key) = &c.key {
            if let Some(v) = args.get(key) {
                let wanted = normalize(&arg_text(v));
                let found = c.responses.iter().find(|(k, _)| normalize(k) == wanted);
                if let Some((_, answer)) = found {
                    return Ok(arg_text(answer));
                }
                if c.response.is_none() {
                    let known: Vec<&str> = c.responses.keys().map(String::as_str).collect();
                    return Err(ToolError::Failed(format!(
                        "no data for {key} = {}; known values: {}",
                        arg_text(v),
                        known.join(", ")
                    )));
                }
            }
        }
        c.response
            .as_ref()
            .map(arg_text)
            .ok_or_else(|| ToolError::Failed("no answer configured".into()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tool::Tool;

    fn tool(fallback: Option<Value>) -> FixedTool {
        let config = FixedConfig {
            response: fallback,
            key: Some("city".into()),
            responses: json!({"Seoul": {"temperature_c": 18, "condition": "맑음"}, "Busan": "비"})
                .as_object()
                .unwrap()
                .clone(),
        };
        let spec = ToolSpec {
            name: "get_weather".into(),
            description: "Weather".into(),
            parameters: json!({"type": "object"}),
        };
        FixedTool::new(spec, config)
    }

    #[test]
    fn keyed_answers() {
        let mut t = tool(None);
        assert_eq!(
            t.call(&json!({"city": " seoul "})).unwrap(),
            r#"{"temperature_c":18,"condition":"맑음"}"#
        );
        assert_eq!(t.call(&json!({"city": "Busan"})).unwrap(), "비");
        let e = t.call(&json!({"city": "Paris"})).unwrap_err().to_string();
        assert_eq!(e, "no data for city = Paris; known values: Seoul, Busan");
    }

    #[test]
    fn fallback_answer() {
        let mut t = tool(Some(json!("unknown city")));
        assert_eq!(t.call(&json!({"city": "Paris"})).unwrap(), "unknown city");
        assert_eq!(t.call(&json!({})).unwrap(), "unknown city");
    }
}
