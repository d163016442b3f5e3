//! `http_get`: GET of a URL template filled from the arguments, on allow-listed hosts only, with a timeout
//! and a response size limit. Redirects are not followed (they could leave the allow-list).

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

use super::{arg_text, Builtin, Run, ToolSpec};
use crate::config::HttpConfig;
use crate::error::ToolError;

/// The HTTP client and settings of one tool.
pub struct HttpGet {
    config: HttpConfig,
    agent: ureq::Agent,
}

impl std::fmt::Debug for HttpGet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpGet")
            .field("config", &self.config)
            .finish()
    }
}

/// An `http_get` tool.
pub type HttpGetTool = Builtin<HttpGet>;

impl HttpGetTool {
    /// The tool `spec` fetching `config.url`.
    pub fn new(spec: ToolSpec, config: HttpConfig) -> Result<Self, String> {
        let template_ok = url::Url::parse(&fill(&config.url, &|_| Some("x".into()))).is_ok();
        if !template_ok {
            return Err(format!("url {:?} is not a valid URL", config.url));
        }
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs_f64(config.timeout_secs))
            .redirects(0)
            .build();
        Ok(Builtin {
            spec,
            runner: HttpGet { config, agent },
        })
    }
}

/// The `{name}` placeholders of a URL template, in order, without repeats.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let name = &after[..close];
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
        rest = &after[close + 1..];
    }
    names
}

/// `template` with each `{name}` replaced by `value(name)` percent-encoded (left as is when `None`).
fn fill(template: &str, value: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            rest = &rest[open..];
            break;
        };
        let name = &after[..close];
        match value(name) {
            Some(v) => out.push_str(&percent_encode(&v)),
            None => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Every byte but RFC 3986's unreserved characters percent-encoded.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl HttpGet {
    /// The URL for `args`, checked against the allow-list.
    fn url(&self, args: &Value) -> Result<url::Url, ToolError> {
        let text = fill(&self.config.url, &|name| args.get(name).map(arg_text));
        let url = url::Url::parse(&text)
            .map_err(|e| ToolError::Failed(format!("bad URL {text:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ToolError::Refused(format!(
                "scheme {} is not http or https",
                url.scheme()
            )));
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let allowed = self
            .config
            .allow_hosts
            .iter()
            .any(|h| h.trim().eq_ignore_ascii_case(&host));
        if !allowed {
            return Err(ToolError::Refused(format!(
                "host {host:?} is not in allow_hosts ({})",
                self.config.allow_hosts.join(", ")
            )));
        }
        Ok(url)
    }

    fn read_body(&self, response: ureq::Response) -> Result<String, ToolError> {
        let limit = self.config.max_bytes;
        let mut bytes = Vec::new();
        response
            .into_reader()
            .take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ToolError::Failed(format!("reading the response: {e}")))?;
        let cut = bytes.len() > limit;
        bytes.truncate(limit);
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if cut {
            text.push_str(&format!("\n[response cut at {limit} bytes]"));
        }
        Ok(text)
    }
}

impl Run for HttpGet {
    fn run(&mut self, args: &Value) -> Result<String, ToolError> {
        let url = self.url(args)?;
        match self.agent.request_url("GET", &url).call() {
            Ok(response) if (300..400).contains(&response.status()) => {
                Err(ToolError::Failed(format!(
                    "HTTP {} redirect to {:?} not followed",
                    response.status(),
                    response.header("location").unwrap_or_default()
                )))
            }
            Ok(response) => self.read_body(response),
            Err(ureq::Error::Status(code, response)) => {
                let body = self.read_body(response).unwrap_or_default();
                Err(ToolError::Failed(format!(
                    "HTTP {code} from {}: {}",
                    url.host_str().unwrap_or_default(),
                    body.trim()
                )))
            }
            Err(e) => Err(ToolError::Failed(format!("GET {url}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_filling() {
        let t = "https://api.open-meteo.com/v1/forecast?latitude={latitude}&longitude={longitude}&x={latitude}";
        assert_eq!(placeholders(t), ["latitude", "longitude"]);
        let filled = fill(t, &|n| {
            Some(if n == "latitude" { "37.57" } else { "a b/서" }.into())
        });
        assert_eq!(
            filled,
            "https://api.open-meteo.com/v1/forecast?latitude=37.57&longitude=a%20b%2F%EC%84%9C&x=37.57"
        );
        assert_eq!(fill("http://h/{missing}", &|_| None), "http://h/{missing}");
    }
}
