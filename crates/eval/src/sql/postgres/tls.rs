//! Connection strings with TLS, as libpq reads them.
//!
//! `postgres://…?sslmode=…&sslrootcert=…` URLs and `key=value` strings work the way `psql` takes them:
//!
//! | `sslmode` | encryption | server certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (the default) | when the server offers it | not checked |
//! | `require` | always | not checked; checked against `sslrootcert` when one is given (as `verify-ca`) |
//! | `verify-ca` | always | signed by a root in `sslrootcert` |
//! | `verify-full` | always | signed by a root in `sslrootcert` and issued for the host name |
//!
//! `sslrootcert` is a PEM file, or `system` for the Mozilla roots; without it `verify-ca`/`verify-full` read
//! `~/.postgresql/root.crt`, as libpq does. TLS is rustls (ring). Client certificates (`sslcert`, `sslkey`)
//! are refused with a clear error.

use std::path::PathBuf;
use std::sync::Arc;

use postgres::config::SslMode;
use postgres::{Client, Config, NoTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Connection settings and the TLS that goes with them.
#[derive(Clone)]
pub struct PgTarget {
    /// Everything but TLS (host, user, database, timeouts, …).
    pub config: Config,
    tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("ssl_mode", &self.config.get_ssl_mode())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl PgTarget {
    /// Reads a libpq URL or `key=value` string; an error says what is wrong (never repeats a password).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (rest, ssl) = take_ssl_params(url)?;
        let mut config: Config = rest.parse().map_err(|e: postgres::Error| e.to_string())?;
        let mode = ssl.mode.as_deref().unwrap_or("prefer");
        let verify = match mode {
            "disable" => {
                config.ssl_mode(SslMode::Disable);
                return Ok(PgTarget { config, tls: None });
            }
            "allow" | "prefer" => {
                config.ssl_mode(SslMode::Prefer);
                None
            }
            "require" => {
                config.ssl_mode(SslMode::Require);
                ssl.root_cert.is_some().then_some(false)
            }
            "verify-ca" | "verify-full" => {
                config.ssl_mode(SslMode::Require);
                Some(mode == "verify-full")
            }
            other => {
                return Err(format!(
                    "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ))
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = match verify {
            None => None,
            Some(_) => {
                let roots = load_roots(ssl.root_cert.as_deref())?;
                let chain =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| format!("sslrootcert: {e}"))?;
                Some(chain)
            }
        };
        let verifier = Arc::new(CertCheck {
            chain,
            check_host: verify == Some(true),
            algorithms: provider.signature_verification_algorithms,
        });
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(PgTarget {
            config,
            tls: Some(MakeRustlsConnect::new(client)),
        })
    }

    /// Opens a connection (TLS as the `sslmode` said).
    pub fn connect(&self) -> Result<Client, postgres::Error> {
        match &self.tls {
            None => self.config.connect(NoTls),
            Some(tls) => self.config.connect(tls.clone()),
        }
    }
}

/// The TLS parameters taken out of a connection string.
#[derive(Debug, Default, PartialEq, Eq)]
struct SslParams {
    mode: Option<String>,
    root_cert: Option<String>,
}

/// Splits `sslmode` and `sslrootcert` (which `postgres::Config` does not read, or reads only in part) off `url`,
/// returning the rest unchanged.
fn take_ssl_params(url: &str) -> Result<(String, SslParams), String> {
    let mut ssl = SslParams::default();
    let mut take = |key: &str, value: String| -> Result<bool, String> {
        match key {
            "sslmode" => ssl.mode = Some(value),
            "sslrootcert" => ssl.root_cert = Some(value),
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(format!("{key}: client certificates are not supported"))
            }
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(key, percent_decode(value)?)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (key, value) in key_values(url)? {
            if !take(&key, value.clone())? {
                kept.push(format!(
                    "{key}='{}'",
                    value.replace('\\', "\\\\").replace('\'', "\\'")
                ));
            }
        }
        kept.join(" ")
    };
    Ok((rest, ssl))
}

/// `%XX` escapes of a URL query value decoded.
fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| format!("bad %-escape in URL parameter {value:?}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("URL parameter {value:?} is not UTF-8"))
}

/// The pairs of a libpq `key=value` string (values optionally single-quoted, with `\'` and `\\` escapes).
fn key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("connection string: {key:?} has no '=' value"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("connection string: unterminated quote in {key}")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// The trusted roots: `system` (Mozilla's), a PEM file, or libpq's default `~/.postgresql/root.crt`.
fn load_roots(root_cert: Option<&str>) -> Result<RootCertStore, String> {
    if root_cert == Some("system") {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    }
    let path = match root_cert {
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".postgresql/root.crt"))
            .filter(|p| p.is_file())
            .ok_or(
                "verifying the server certificate needs sslrootcert=FILE (or sslrootcert=system)",
            )?,
    };
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "sslrootcert {}: no certificates in the file",
            path.display()
        ));
    }
    Ok(roots)
}

/// Checks the server's certificate as the `sslmode` asks. Without `chain` (`require`/`prefer` without roots) the
/// session is encrypted and the handshake signed by the certificate's key, but who issued the certificate is not
/// checked (libpq's behaviour); with it (`verify-ca`/`verify-full`) the chain must lead to a trusted root, and the
/// host name must match when `check_host`. Handshake signatures are checked in every mode.
#[derive(Debug)]
struct CertCheck {
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_host: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for CertCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the chain first and the name last, so a name error means the chain was good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_host => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_parameters_come_off_urls_and_key_value_strings() {
        let (rest, ssl) =
            take_ssl_params("postgres://u@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem")
                .unwrap();
        assert_eq!(rest, "postgres://u@h:5/db?application_name=x");
        assert_eq!(ssl.mode.as_deref(), Some("verify-full"));
        assert_eq!(ssl.root_cert.as_deref(), Some("/tmp/ca.pem"));
        let (rest, ssl) = take_ssl_params("postgresql://h/db?sslmode=require").unwrap();
        assert_eq!(
            (rest.as_str(), ssl.mode.as_deref()),
            ("postgresql://h/db", Some("require"))
        );

        let (rest, ssl) = take_ssl_params(
            "host=h  user = 'o\\'neil' sslmode=verify-ca sslrootcert='/a b/ca.pem' dbname=d",
        )
        .unwrap();
        assert_eq!(rest, "host='h' user='o\\'neil' dbname='d'");
        assert_eq!(ssl.mode.as_deref(), Some("verify-ca"));
        assert_eq!(ssl.root_cert.as_deref(), Some("/a b/ca.pem"));
        let target = PgTarget::parse("host=h user='o\\'neil' sslmode=disable").unwrap();
        assert_eq!(target.config.get_user(), Some("o'neil"));
    }

    #[test]
    fn bad_tls_settings_are_clear_errors() {
        let err = PgTarget::parse("postgres://h/db?sslmode=maybe").unwrap_err();
        assert!(err.contains("sslmode \"maybe\""), "{err}");
        let err = PgTarget::parse("postgres://h/db?sslcert=c.pem").unwrap_err();
        assert!(err.contains("client certificates"), "{err}");
        let err = PgTarget::parse("postgres://h/db?sslmode=verify-full&sslrootcert=/no/such.pem")
            .unwrap_err();
        assert!(err.contains("/no/such.pem"), "{err}");
        let err = PgTarget::parse("host=h user='open").unwrap_err();
        assert!(err.contains("unterminated"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = PgTarget::parse(&format!(
            "host=h sslmode=verify-ca sslrootcert={}",
            empty.display()
        ))
        .unwrap_err();
        assert!(err.contains("no certificates"), "{err}");
    }

    #[test]
    fn modes_choose_tls() {
        let plain = PgTarget::parse("postgres://h/db?sslmode=disable").unwrap();
        assert!(plain.tls.is_none() && plain.config.get_ssl_mode() == SslMode::Disable);
        let default = PgTarget::parse("postgres://h/db").unwrap();
        assert!(default.tls.is_some() && default.config.get_ssl_mode() == SslMode::Prefer);
        let required = PgTarget::parse("host=h sslmode=require").unwrap();
        assert!(required.tls.is_some() && required.config.get_ssl_mode() == SslMode::Require);
        let system = PgTarget::parse("host=h sslmode=verify-full sslrootcert=system").unwrap();
        assert!(system.tls.is_some());
    }
}
