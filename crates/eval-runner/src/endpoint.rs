//! OpenAI-compatible chat completions (`POST {endpoint}/v1/chat/completions`) over `http://` or `https://`
//! (rustls; the public web roots, plus a private CA from `model.ca_cert`), streamed as server-sent events so the
//! time to the first token can be measured. Local servers (llama.cpp, vLLM, Ollama, `tuneup serve`) and hosted
//! APIs with a bearer key (`model.api_key_env`) alike.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::backend::{Backend, Completion};
use crate::error::{Error, Result as RunResult};
use crate::prompt::Prompt;
use crate::task::Generation;

/// A client for one endpoint and model.
pub struct Endpoint {
    url: String,
    model: String,
    api_key: Option<String>,
    agent: ureq::Agent,
}

/// `{base}/v1/chat/completions`, accepting a base with or without `/v1` or the full path.
pub fn chat_url(base: &str) -> String {
    let b = base.trim_end_matches('/');
    if b.ends_with("/chat/completions") {
        b.to_owned()
    } else if b.ends_with("/v1") {
        format!("{b}/chat/completions")
    } else {
        format!("{b}/v1/chat/completions")
    }
}

fn agent_builder() -> ureq::AgentBuilder {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout_read(Duration::from_secs(600))
}

/// A TLS client configuration trusting the public web roots and the CA certificates in the PEM file `ca_cert`.
/// The error names the file and what is wrong with it.
pub fn tls_config(ca_cert: &Path) -> std::result::Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let what = |e: &dyn std::fmt::Display| format!("CA certificate {}: {e}", ca_cert.display());
    let pem = std::fs::read(ca_cert).map_err(|e| what(&e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| what(&e))?;
    if certs.is_empty() {
        return Err(what(
            &"no certificate in the file (expected PEM `-----BEGIN CERTIFICATE-----`)",
        ));
    }
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for (i, cert) in certs.into_iter().enumerate() {
        roots
            .add(cert)
            .map_err(|e| what(&format!("certificate {}: {e}", i + 1)))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| what(&e))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Default)]
struct PartialCall {
    name: String,
    arguments: String,
}

impl Endpoint {
    /// A client for `base` serving `model`; `api_key` is sent as a bearer token. `https://` bases are checked
    /// against the public web roots.
    pub fn new(base: &str, model: &str, api_key: Option<String>) -> Self {
        Self::build(base, model, api_key, agent_builder())
    }

    /// [`Endpoint::new`], also trusting the CA certificates in the PEM file `ca_cert` (when given) for
    /// `https://` bases — a server with a private CA. Fails when the file cannot be read or holds no
    /// certificate.
    pub fn with_ca_cert(
        base: &str,
        model: &str,
        api_key: Option<String>,
        ca_cert: Option<&Path>,
    ) -> RunResult<Self> {
        let mut builder = agent_builder();
        if let Some(path) = ca_cert {
            builder = builder.tls_config(tls_config(path).map_err(|message| Error::Model {
                name: base.to_owned(),
                message,
            })?);
        }
        Ok(Self::build(base, model, api_key, builder))
    }

    fn build(base: &str, model: &str, api_key: Option<String>, agent: ureq::AgentBuilder) -> Self {
        Self {
            url: chat_url(base),
            model: model.to_owned(),
            api_key,
            agent: agent.build(),
        }
    }

    fn body(&self, prompt: &Prompt, g: &Generation) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": prompt.messages,
            "max_tokens": g.max_tokens,
            "temperature": g.temperature,
            "seed": g.seed,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if !g.stop.is_empty() {
            body["stop"] = json!(g.stop);
        }
        if let Some(t) = &prompt.tools {
            body["tools"] = json!(t);
        }
        if let (true, Some(schema)) = (g.constrained, &prompt.json_schema) {
            body["response_format"] = crate::constrain::response_format(schema);
        }
        body
    }
}

impl Backend for Endpoint {
    fn describe(&self) -> String {
        format!("endpoint: {} ({})", self.url, self.model)
    }

    fn complete(
        &mut self,
        prompt: &Prompt,
        g: &Generation,
    ) -> std::result::Result<Completion, String> {
        let body = self.body(prompt, g);
        let start = Instant::now();
        let mut req = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/json")
            .set("Accept", "text/event-stream");
        if let Some(k) = &self.api_key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        let resp = match req.send_string(&body.to_string()) {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                return Err(format!(
                    "{} answered HTTP {code}: {}",
                    self.url,
                    text.trim()
                ));
            }
            Err(e) => return Err(format!("{}: {e}", self.url)),
        };
        let streamed = resp.content_type() == "text/event-stream";
        let reader = BufReader::new(resp.into_reader());
        let mut out = Completion {
            prompt_text: serde_json::to_string(&prompt.messages).unwrap_or_default(),
            finish_reason: "stop".into(),
            ..Completion::default()
        };
        let mut first: Option<Duration> = None;
        let mut chunks = 0usize;
        let mut calls: Vec<PartialCall> = Vec::new();
        let mut usage: Option<Value> = None;
        if streamed {
            for line in reader.lines() {
                let line = line.map_err(|e| format!("reading the event stream: {e}"))?;
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let data = data.trim();
                if data == "[DONE]" {
                    break;
                }
                let v: Value = serde_json::from_str(data)
                    .map_err(|e| format!("bad event from {}: {e}: {data}", self.url))?;
                if let Some(err) = v.get("error") {
                    return Err(format!("{} reported an error: {err}", self.url));
                }
                if v.get("usage").is_some_and(|u| !u.is_null()) {
                    usage = v.get("usage").cloned();
                }
                let Some(choice) = v["choices"].get(0) else {
                    continue;
                };
                let delta = &choice["delta"];
                let mut got = false;
                if let Some(t) = delta["content"].as_str() {
                    got |= !t.is_empty();
                    out.text.push_str(t);
                }
                if let Some(tc) = delta["tool_calls"].as_array() {
                    got = true;
                    for c in tc {
                        let i = c["index"].as_u64().unwrap_or(0) as usize;
                        if calls.len() <= i {
                            calls.resize_with(i + 1, PartialCall::default);
                        }
                        calls[i]
                            .name
                            .push_str(c["function"]["name"].as_str().unwrap_or(""));
                        calls[i]
                            .arguments
                            .push_str(c["function"]["arguments"].as_str().unwrap_or(""));
                    }
                }
                if got {
                    chunks += 1;
                    first.get_or_insert_with(|| start.elapsed());
                }
                if let Some(r) = choice["finish_reason"].as_str() {
                    out.finish_reason = r.to_owned();
                }
            }
        } else {
            // A server that ignores `stream`: one JSON body; TTFT is then the whole request.
            let v: Value = serde_json::from_reader(reader)
                .map_err(|e| format!("bad response from {}: {e}", self.url))?;
            let msg = &v["choices"][0]["message"];
            out.text = msg["content"].as_str().unwrap_or("").to_owned();
            for c in msg["tool_calls"].as_array().into_iter().flatten() {
                calls.push(PartialCall {
                    name: c["function"]["name"].as_str().unwrap_or("").into(),
                    arguments: c["function"]["arguments"].as_str().unwrap_or("").into(),
                });
            }
            if let Some(r) = v["choices"][0]["finish_reason"].as_str() {
                out.finish_reason = r.to_owned();
            }
            usage = v.get("usage").cloned();
            chunks = 1;
        }
        out.total = start.elapsed();
        out.ttft = first.unwrap_or(out.total);
        for c in calls {
            let args: Value =
                serde_json::from_str(&c.arguments).unwrap_or(Value::String(c.arguments));
            out.text.push_str(&format!(
                "\n<tool_call>\n{}\n</tool_call>",
                json!({"name": c.name, "arguments": args})
            ));
        }
        // Without usage, each content event counts as one token (servers send one token per event).
        let u = usage.unwrap_or(Value::Null);
        out.prompt_tokens = u["prompt_tokens"].as_u64().unwrap_or(0) as usize;
        out.completion_tokens = u["completion_tokens"]
            .as_u64()
            .map_or(chunks, |n| n as usize);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constrained_requests_ask_for_a_strict_json_schema() {
        let schema = json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]});
        let prompt = Prompt {
            messages: vec![json!({"role": "user", "content": "q"})],
            tools: None,
            shot_ids: Vec::new(),
            json_schema: Some(schema.clone()),
        };
        let e = Endpoint::new("http://127.0.0.1:1", "m", None);
        let mut g = Generation::default();
        assert!(e.body(&prompt, &g).get("response_format").is_none());
        g.constrained = true;
        assert_eq!(
            e.body(&prompt, &g)["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": true}})
        );
    }
}
