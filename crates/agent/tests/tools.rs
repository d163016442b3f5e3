//! The built-in tools against real back-ends: the example SQLite shop database, a local HTTP server, a
//! PostgreSQL server (`TUNEUP_TEST_POSTGRES_URL`, skipped when unset) and a `tuneup rag` index built with
//! all-MiniLM-L6-v2 (`TUNEUP_MINILM_DIR`, skipped when unset).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use serde_json::json;
use tuneup_agent::{AgentConfig, ToolError, Toolbox};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/agent")
}

/// Tools from TOML text whose relative paths resolve against the examples folder.
fn toolbox(toml: &str) -> Toolbox {
    let mut config = AgentConfig::parse(toml, Path::new("test.toml")).unwrap();
    config.base_dir = examples();
    Toolbox::from_config(&config).unwrap()
}

fn query(tools: &mut Toolbox, name: &str, sql: &str) -> Result<String, ToolError> {
    tools.call(name, &json!({ "query": sql }).to_string())
}

#[test]
fn sql_example_answers_and_describes_its_schema() {
    let config = AgentConfig::from_file(&examples().join("sql.toml")).unwrap();
    let mut tools = Toolbox::from_config(&config).unwrap();
    let spec = &tools.openai_tools()[0]["function"];
    assert_eq!(spec["name"], "query_db");
    let description = spec["description"].as_str().unwrap();
    assert!(
        description.contains("CREATE TABLE orders") && description.contains("CREATE TABLE users"),
        "{description}"
    );
    assert_eq!(spec["parameters"]["required"], json!(["query"]));
    let out = query(
        &mut tools,
        "query_db",
        "SELECT u.name, SUM(o.amount) AS total FROM users u JOIN orders o ON o.user_id = u.id \
         GROUP BY u.id ORDER BY total DESC LIMIT 1",
    )
    .unwrap();
    assert_eq!(out, "1 row\n[\"Lee Junho\",210]");
}

#[test]
fn sql_refuses_writes_and_reports_errors() {
    let mut tools =
        toolbox("[[tools]]\nname = \"db\"\ntype = \"sql\"\ndatabase = \"shop.sql\"\nmax_rows = 2");
    for write in [
        "DELETE FROM orders",
        "INSERT INTO users VALUES (9, 'x', 'y', '2024-01-01')",
        "DROP TABLE users",
        "UPDATE users SET name = 'x'",
        "PRAGMA writable_schema = 1",
        "ATTACH DATABASE '/tmp/x.db' AS x",
    ] {
        let e = query(&mut tools, "db", write).unwrap_err();
        assert!(matches!(e, ToolError::Refused(_)), "{write}: {e}");
        assert!(e.to_string().contains("read-only"), "{e}");
    }
    // The data is untouched.
    assert_eq!(
        query(&mut tools, "db", "SELECT COUNT(*) FROM orders").unwrap(),
        "1 row\n[6]"
    );
    let out = query(&mut tools, "db", "SELECT id FROM orders ORDER BY id").unwrap();
    assert_eq!(out, "6 rows, the first 2 shown\n[1]\n[2]");
    let e = query(&mut tools, "db", "SELECT nope FROM orders").unwrap_err();
    assert!(e.to_string().contains("no such column"), "{e}");
    let e = query(
        &mut tools,
        "db",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) SELECT i FROM n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("add a LIMIT"), "{e}");
    let e = tools.call("db", r#"{"sql": "SELECT 1"}"#).unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments { .. }), "{e}");
}

/// Answers `n` requests on 127.0.0.1: `/big` with 100 bytes, `/moved` with a redirect, `/missing` with 404,
/// anything else with JSON echoing the request path.
fn serve(n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let mut stream = stream.unwrap();
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut line).unwrap();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                    break;
                }
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let (status, extra, body) = match path.as_str() {
                "/big" => ("200 OK", String::new(), "x".repeat(100)),
                "/moved" => (
                    "302 Found",
                    "Location: http://example.com/\r\n".into(),
                    String::new(),
                ),
                "/missing" => ("404 Not Found", String::new(), "no such page".into()),
                _ => ("200 OK", String::new(), json!({ "path": path }).to_string()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes()).unwrap();
        }
    });
    port
}

#[test]
fn http_get_reaches_only_allowed_hosts() {
    let port = serve(4);
    let toml = format!(
        r#"
[[tools]]
name = "weather"
type = "http_get"
url = "http://{{host}}:{port}/forecast?city={{city}}"
allow_hosts = ["127.0.0.1"]
timeout_secs = 5
allow_private = true
ports = [{port}]
[[tools]]
name = "page"
type = "http_get"
url = "http://127.0.0.1:{port}/{{page}}"
allow_hosts = ["127.0.0.1"]
max_bytes = 10
allow_private = true
ports = [{port}]
"#
    );
    let mut tools = toolbox(&toml);
    let out = tools
        .call("weather", r#"{"host": "127.0.0.1", "city": "서울 시"}"#)
        .unwrap();
    assert_eq!(
        out,
        r#"{"path":"/forecast?city=%EC%84%9C%EC%9A%B8%20%EC%8B%9C"}"#
    );
    for host in ["example.com", "localhost", "127.0.0.2"] {
        let e = tools
            .call(
                "weather",
                &json!({"host": host, "city": "Seoul"}).to_string(),
            )
            .unwrap_err();
        assert!(matches!(e, ToolError::Refused(_)), "{host}: {e}");
        assert!(
            e.to_string().contains("not in allow_hosts (127.0.0.1)"),
            "{e}"
        );
    }
    let out = tools.call("page", r#"{"page": "big"}"#).unwrap();
    assert_eq!(out, "xxxxxxxxxx\n[response cut at 10 bytes]");
    let e = tools
        .call("page", r#"{"page": "moved"}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("302") && e.contains("not followed"), "{e}");
    let e = tools
        .call("page", r#"{"page": "missing"}"#)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("HTTP 404 from 127.0.0.1: no such pa"), "{e}");
}

#[test]
fn http_get_refuses_private_addresses_and_other_ports() {
    let port = serve(1);
    // `localhost` is allow-listed, but it resolves to a loopback address.
    let config = |extra: &str| {
        format!(
            "[[tools]]\nname = \"local\"\ntype = \"http_get\"\nurl = \"http://localhost:{port}/{{page}}\"\n\
             allow_hosts = [\"localhost\"]\n{extra}"
        )
    };
    let mut tools = toolbox(&config(&format!("ports = [{port}]")));
    let e = tools.call("local", r#"{"page": "secret"}"#).unwrap_err();
    assert!(matches!(e, ToolError::Refused(_)), "{e}");
    let message = e.to_string();
    assert!(
        message.contains("loopback address") && message.contains("allow_private = true"),
        "{message}"
    );
    // Only ports 80 and 443 without `ports`.
    let mut tools = toolbox(&config("allow_private = true"));
    let e = tools.call("local", r#"{"page": "secret"}"#).unwrap_err();
    assert!(
        matches!(e, ToolError::Refused(_))
            && e.to_string()
                .contains(&format!("port {port} is not in ports (80, 443)")),
        "{e}"
    );
    // Both allowed: the request reaches the server (its only one).
    let mut tools = toolbox(&config(&format!("allow_private = true\nports = [{port}]")));
    let out = tools.call("local", r#"{"page": "secret"}"#).unwrap();
    assert_eq!(out, r#"{"path":"/secret"}"#);
    // The cloud metadata address, by number.
    let mut tools = toolbox(
        "[[tools]]\nname = \"meta\"\ntype = \"http_get\"\nurl = \"http://169.254.169.254/latest/{page}\"\n\
         allow_hosts = [\"169.254.169.254\"]\ntimeout_secs = 1",
    );
    let e = tools.call("meta", r#"{"page": "meta-data"}"#).unwrap_err();
    assert!(
        matches!(e, ToolError::Refused(_)) && e.to_string().contains("link-local"),
        "{e}"
    );
}

#[test]
fn postgres_sql_is_read_only() {
    let Some(url) = tuneup_test_utils::postgres_test_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = dir.path().join("shop.db");
    let script = std::fs::read_to_string(examples().join("shop.sql")).unwrap();
    rusqlite::Connection::open(&lite)
        .unwrap()
        .execute_batch(&script)
        .unwrap();
    let mut client = tuneup_eval::sql::postgres::connect(&url).unwrap();
    tuneup_eval::sql::postgres::copy_sqlite_to_postgres(
        &lite,
        &mut client,
        "tuneup_test_agent_shop",
    )
    .unwrap();
    let sql_tool = |extra: &str| {
        format!(
            "[[tools]]\nname = \"db\"\ntype = \"sql\"\ndatabase = \"{url}\"\nschema = \"tuneup_test_agent_shop\"\n{extra}"
        )
    };
    // The test server's role is a superuser: refused unless opted in.
    let mut config = AgentConfig::parse(&sql_tool(""), Path::new("test.toml")).unwrap();
    config.base_dir = examples();
    let Err(e) = Toolbox::from_config(&config).map(|_| ()) else {
        panic!("a superuser was accepted for model SQL")
    };
    let e = e.to_string();
    assert!(
        e.contains("superuser") && e.contains("CREATE ROLE") && e.contains("allow_privileged_role"),
        "{e}"
    );
    let mut tools = toolbox(&sql_tool("allow_privileged_role = true"));
    let description = tools.openai_tools()[0]["function"]["description"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        description.contains("PostgreSQL") && description.contains("CREATE TABLE users (id bigint"),
        "{description}"
    );
    assert_eq!(
        query(
            &mut tools,
            "db",
            "SELECT name FROM users WHERE city = 'Busan'"
        )
        .unwrap(),
        "1 row\n[\"Lee Junho\"]"
    );
    for write in [
        "DELETE FROM orders",
        "DROP TABLE users",
        "COMMIT",
        "SET TRANSACTION READ WRITE",
        ";COPY (SELECT 1) TO PROGRAM 'true'",
        "WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d",
    ] {
        let e = query(&mut tools, "db", write).unwrap_err();
        assert!(matches!(e, ToolError::Refused(_)), "{write}: {e}");
    }
    assert_eq!(
        query(&mut tools, "db", "SELECT COUNT(*) FROM orders").unwrap(),
        "1 row\n[6]"
    );
}

#[test]
fn retrieve_searches_a_rag_index() {
    let Some(minilm) = tuneup_test_utils::minilm_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(
        docs.join("lunch.md"),
        "# Cafeteria\n\nThe cafeteria serves bibimbap on Mondays and kimchi stew on Fridays.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("vpn.md"),
        "# VPN\n\nConnect to the office VPN with the WireGuard profile from the IT portal.\n",
    )
    .unwrap();
    let store_path = dir.path().join("index.db");
    let embedder_spec = minilm.to_string_lossy().to_string();
    {
        use tuneup_retrieval::{embed::Embedder, ingest, store};
        let embedder = Embedder::from_spec(&embedder_spec, &mut tuneup_hub::NoProgress).unwrap();
        let mut store = store::open_index(&store_path, "docs").unwrap();
        let opts = ingest::IngestOptions {
            chunk: Default::default(),
            tags: Vec::new(),
        };
        ingest::ingest(
            &[docs],
            store.as_mut(),
            &embedder,
            &opts,
            &mut ingest::NoProgress,
        )
        .unwrap();
    }
    let mut tools = toolbox(&format!(
        "[[tools]]\nname = \"search\"\ntype = \"retrieve\"\nstore = {:?}\nembedder = {:?}\nk = 1\nmode = \"hybrid\"",
        store_path.to_string_lossy(),
        embedder_spec
    ));
    let out = tools
        .call(
            "search",
            r#"{"query": "what does the cafeteria serve on Friday?"}"#,
        )
        .unwrap();
    assert!(out.starts_with("[1] ") && out.contains("lunch.md"), "{out}");
    assert!(out.contains("kimchi stew"), "{out}");
}
