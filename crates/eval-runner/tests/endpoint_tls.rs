//! The endpoint client over `https://`: a tiny TLS server (rustls, one thread) with a certificate signed by a
//! CA the test makes itself (rcgen), trusted through `model.ca_cert`; the same server without `ca_cert` is
//! refused; a closed `https://` port is a connection error, not an unsupported scheme.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use tuneup_eval_runner::{run_task, RunOptions, Task, Verdict};

/// A CA and a server certificate for 127.0.0.1 signed by it: (CA PEM, server certificate DER, server key DER).
fn certificates() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tuneup test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    (
        ca.pem(),
        cert.der().clone(),
        PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    )
}

/// Answers one request on an established TLS stream: a non-streamed chat completion saying `Paris` when the
/// bearer key is `secret`, else HTTP 401.
fn answer(stream: &mut impl ReadWrite) -> std::io::Result<()> {
    let mut reader = BufReader::new(&mut *stream);
    let mut length = 0usize;
    let mut authorized = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        authorized |= line.eq_ignore_ascii_case("authorization: bearer secret");
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, reply) = if authorized && request["model"] == "private-model" {
        (
            "200 OK",
            json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 9, "completion_tokens": 1}}),
        )
    } else {
        ("401 Unauthorized", json!({"error": "bad key or model"}))
    };
    let reply = reply.to_string();
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    stream.flush()
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Starts the TLS server on a free port; returns its base URL and the CA's PEM.
fn serve_tls() -> (String, String) {
    let (ca_pem, cert, key) = certificates();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            // A refused handshake (the client does not trust the CA) ends that connection only.
            if answer(&mut tls).is_ok() {
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
    });
    (url, ca_pem)
}

fn task(dir: &Path, model: &str) -> Task {
    std::fs::write(
        dir.join("data.jsonl"),
        "{\"id\": \"fr\", \"q\": \"Capital of France?\", \"a\": \"Paris\"}\n",
    )
    .unwrap();
    let toml = format!(
        "metrics = [\"exact_match\"]\n[dataset]\npath = \"data.jsonl\"\ninput = \"q\"\ntarget = \"a\"\nid = \"id\"\n\
         [model]\n{model}"
    );
    Task::from_toml(&toml, dir, &dir.join("t.toml")).unwrap()
}

fn quiet() -> RunOptions {
    RunOptions {
        out: None,
        progress: false,
    }
}

#[test]
fn https_endpoint_with_a_private_ca_and_an_api_key() {
    let (url, ca_pem) = serve_tls();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
    std::env::set_var("TUNEUP_TEST_TLS_KEY", "secret");
    let model = format!(
        "endpoint = \"{url}\"\nmodel = \"private-model\"\napi_key_env = \"TUNEUP_TEST_TLS_KEY\"\n"
    );
    // Trusted through `ca_cert` (relative to the task file).
    let trusted = task(dir.path(), &format!("{model}ca_cert = \"ca.pem\"\n"));
    let r = run_task(&trusted, &quiet()).unwrap();
    assert_eq!(
        r.records[0].verdict,
        Verdict::Correct,
        "{:?}",
        r.records[0].error_message
    );
    assert_eq!(r.records[0].raw_output.as_deref(), Some("Paris"));
    assert_eq!(r.records[0].prompt_tokens, 9);
    // Without it the server's certificate is refused: the example records the TLS error.
    let untrusted = task(dir.path(), &model);
    let r = run_task(&untrusted, &quiet()).unwrap();
    assert_eq!(r.records[0].verdict, Verdict::Error);
    let message = r.records[0].error_message.clone().unwrap_or_default();
    assert!(message.contains(&url), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
}

#[test]
fn https_to_a_closed_port_is_a_connection_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let t = task(
        dir.path(),
        &format!("endpoint = \"https://127.0.0.1:{port}\"\nmodel = \"m\"\n"),
    );
    let r = run_task(&t, &quiet()).unwrap();
    assert_eq!(r.records[0].verdict, Verdict::Error);
    let message = r.records[0].error_message.clone().unwrap_or_default();
    assert!(message.contains("Connection"), "{message}");
    assert!(!message.to_lowercase().contains("scheme"), "{message}");
}

#[test]
fn a_bad_ca_cert_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let t = task(
        dir.path(),
        "endpoint = \"https://127.0.0.1:1\"\nmodel = \"m\"\nca_cert = \"missing.pem\"\n",
    );
    let err = run_task(&t, &quiet()).unwrap_err().to_string();
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
    let t = task(
        dir.path(),
        "endpoint = \"https://127.0.0.1:1\"\nmodel = \"m\"\nca_cert = \"empty.pem\"\n",
    );
    let err = run_task(&t, &quiet()).unwrap_err().to_string();
    assert!(
        err.contains("empty.pem") && err.contains("no certificate"),
        "{err}"
    );
}
