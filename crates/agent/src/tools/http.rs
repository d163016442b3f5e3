//! `http_get`: GET of a URL template filled from the arguments, on allow-listed hosts only, with a timeout
//! and a response size limit. Redirects are not followed (they could leave the allow-list).
//!
//! The host name is resolved once, before the request; every address it resolves to must be public
//! ([`non_public`]: no loopback, private, link-local incl. 169.254.169.254, CGNAT, unspecified, multicast or
//! reserved address) unless `allow_private = true`, and the port must be in `ports` (default 80 and 443). The
//! connection then goes to exactly the addresses checked (the client's resolver hands back the pinned
//! addresses, so a second DNS answer cannot rebind the name).

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use super::{arg_text, Builtin, Run, ToolSpec};
use crate::config::HttpConfig;
use crate::error::ToolError;

/// The host and port (`host:port`, as the client names them) and the addresses checked for it.
type Pinned = Arc<Mutex<Option<(String, Vec<SocketAddr>)>>>;

/// The HTTP client and settings of one tool.
pub struct HttpGet {
    config: HttpConfig,
    agent: ureq::Agent,
    pinned: Pinned,
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
        let pinned: Pinned = Arc::default();
        let slot = Arc::clone(&pinned);
        // The client resolves nothing itself: it gets the addresses `run` checked, or an error.
        let resolver = move |netloc: &str| -> std::io::Result<Vec<SocketAddr>> {
            match &*slot.lock().unwrap_or_else(PoisonError::into_inner) {
                Some((checked, addrs)) if checked == netloc => Ok(addrs.clone()),
                _ => Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{netloc} was not checked against the address rules"),
                )),
            }
        };
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs_f64(config.timeout_secs))
            .redirects(0)
            .try_proxy_from_env(false)
            .resolver(resolver)
            .build();
        Ok(Builtin {
            spec,
            runner: HttpGet {
                config,
                agent,
                pinned,
            },
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

/// Why `ip` is not a public address (`"loopback"`, `"private"`, ...), or `None` when it is. IPv4 addresses
/// inside IPv6 ones (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`)
/// are judged as IPv4.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    match (a, b) {
        (0, _) => Some("unspecified"),
        (127, _) => Some("loopback"),
        (10, _) | (192, 168) => Some("private"),
        (172, 16..=31) => Some("private"),
        (169, 254) => Some("link-local"),
        (100, 64..=127) => Some("shared (CGNAT)"),
        (224..=239, _) => Some("multicast"),
        (240..=255, _) => Some("reserved"),
        (192, 0) if c == 0 => Some("reserved"),
        (198, 18..=19) => Some("reserved"),
        _ => None,
    }
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] => {
            return non_public_v4(embedded(hi, lo))
        }
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return non_public_v4(embedded(hi, lo)),
        [0x2002, hi, lo, ..] => return non_public_v4(embedded(hi, lo)),
        _ => {}
    }
    match s[0] {
        0xfc00..=0xfdff => Some("private (unique local)"),
        0xfe80..=0xfebf => Some("link-local"),
        0xfec0..=0xfeff => Some("site-local"),
        0xff00..=0xffff => Some("multicast"),
        _ => None,
    }
}

impl HttpGet {
    /// Resolves `url`'s host once and checks the port and every address; the addresses are pinned for the
    /// client's connection.
    fn pin(&self, url: &url::Url) -> Result<(), ToolError> {
        let host = url.host_str().unwrap_or_default();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| ToolError::Failed(format!("no port for {url}")))?;
        if !self.config.ports.contains(&port) {
            let ports: Vec<String> = self.config.ports.iter().map(u16::to_string).collect();
            return Err(ToolError::Refused(format!(
                "port {port} is not in ports ({})",
                ports.join(", ")
            )));
        }
        let addrs = url
            .socket_addrs(|| None)
            .map_err(|e| ToolError::Failed(format!("resolving {host}: {e}")))?;
        if addrs.is_empty() {
            return Err(ToolError::Failed(format!("{host} resolves to no address")));
        }
        if !self.config.allow_private {
            if let Some((addr, why)) = addrs
                .iter()
                .find_map(|a| non_public(a.ip()).map(|why| (a, why)))
            {
                return Err(ToolError::Refused(format!(
                    "{host} resolves to {}, a {why} address (set allow_private = true to allow it)",
                    addr.ip()
                )));
            }
        }
        *self.pinned.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((format!("{host}:{port}"), addrs));
        Ok(())
    }

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
        self.pin(&url)?;
        let response = self.agent.request_url("GET", &url).call();
        *self.pinned.lock().unwrap_or_else(PoisonError::into_inner) = None;
        match response {
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

    #[test]
    fn private_addresses_are_recognised() {
        for (ip, why) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.31.0.1", "private"),
            ("192.168.0.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.100.0.1", "shared (CGNAT)"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "private (unique local)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::a00:1", "private"),
            ("2002:c0a8:0101::", "private"),
        ] {
            assert_eq!(non_public(ip.parse().unwrap()), Some(why), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "8.8.8.8",
            "2606:4700::1111",
        ] {
            assert_eq!(non_public(ip.parse().unwrap()), None, "{ip}");
        }
    }
}
