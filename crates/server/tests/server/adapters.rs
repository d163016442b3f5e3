//! LoRA adapters per request: `model: "BASE+NAME"` generates with the adapter
//! (exactly what the base decoder with the adapter attached generates), the base
//! stays the base, and adapters load and unload at run time through the
//! authenticated admin endpoints without a restart.

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use reqwest::Method;
use serde_json::{json, Value};
use tuneup_generate::{ChatModel, GenerateParams, Generator, NullSink, SamplingParams};
use tuneup_models::{load, LoadOptions, ModelFiles};
use tuneup_train::{peft, LoraConfig, LoraInit, LoraWrapper, QkRowOrder};

use crate::common::{start, TINY_ID};

const PROMPT: &str = "adapters change what comes next";

/// Writes a random (non-zero) LoRA adapter for the tiny model at `base`.
fn write_adapter(base: &Path, dir: &Path, seed: u64) {
    let cfg = LoraConfig {
        rank: 4,
        alpha: 16.0,
        dropout: 0.0,
        target_modules: vec!["all-linear".into()],
        use_rslora: false,
    };
    let w =
        Arc::new(LoraWrapper::new(cfg.clone(), LoraInit::Fresh { seed }, &Device::Cpu).unwrap());
    let m = load(
        &ModelFiles::Gguf(base.to_path_buf()),
        &LoadOptions {
            wrapper: Some(w.clone()),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    for p in w.adapters().modules.values() {
        p.b.set(&Tensor::randn(0f32, 0.5, p.b.as_tensor().dims(), &Device::Cpu).unwrap())
            .unwrap();
    }
    peft::save(dir, &w.adapters(), &cfg, "tiny", QkRowOrder::of(&m.decoder)).unwrap();
}

/// Greedy continuation of `PROMPT` computed directly (no server), with `adapter` attached.
fn reference(base: &Path, adapter: Option<&Path>) -> String {
    let mut m = ChatModel::load(
        &ModelFiles::Gguf(base.to_path_buf()),
        &LoadOptions::default(),
    )
    .unwrap();
    if let Some(dir) = adapter {
        tuneup_train::attach_adapter(&mut m.model.decoder, dir).unwrap();
    }
    let ids = m.tokenizer.encode(PROMPT, true).unwrap();
    let mut params = GenerateParams {
        max_tokens: 12,
        sampling: SamplingParams::greedy(),
        ..GenerateParams::default()
    };
    Generator::new(&m.model.decoder, &m.tokenizer)
        .generate(&ids, &mut params, &mut NullSink)
        .unwrap()
        .text
}

/// An admin request with `key` as the bearer key.
async fn admin(
    http: &reqwest::Client,
    s: &crate::common::TestServer,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = http.request(method, s.url(path));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap()
}

/// `POST /admin/adapters` with `body`.
async fn post_adapter(
    http: &reqwest::Client,
    s: &crate::common::TestServer,
    key: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    admin(http, s, Method::POST, "/admin/adapters", key, Some(body)).await
}

async fn complete(
    s: &crate::common::TestServer,
    http: &reqwest::Client,
    model: &str,
) -> reqwest::Response {
    s.post(
        http,
        "/v1/completions",
        &json!({"model": model, "prompt": PROMPT, "max_tokens": 12, "temperature": 0}),
    )
    .await
}

async fn text(s: &crate::common::TestServer, http: &reqwest::Client, model: &str) -> String {
    let r = complete(s, http, model).await;
    assert_eq!(r.status(), 200, "{model}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], model, "{v}");
    v["choices"][0]["text"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapters_per_request_and_loaded_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("tiny.gguf");
    tuneup_test_utils::write_tiny_gguf(&base, &tuneup_test_utils::TinySpec::llama()).unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    write_adapter(&base, &a, 1);
    write_adapter(&base, &b, 2);
    let want_base = reference(&base, None);
    let want_a = reference(&base, Some(&a));
    let want_b = reference(&base, Some(&b));
    assert!(
        want_a != want_base && want_b != want_a,
        "the adapters must change the output"
    );

    let model = ChatModel::load(&ModelFiles::Gguf(base.clone()), &LoadOptions::default()).unwrap();
    let a_dir = a.clone();
    let root = dir.path().to_path_buf();
    let s = start(model, TINY_ID, move |c| {
        c.adapters = vec![("a".into(), a_dir)];
        c.admin_key = Some("admin-secret".into());
        c.adapter_root = Some(root);
    })
    .await;
    let http = reqwest::Client::new();

    // Requests alternate between base and adapter; each gets its own model's output.
    for _ in 0..2 {
        assert_eq!(text(&s, &http, "tiny").await, want_base);
        assert_eq!(text(&s, &http, "tiny+a").await, want_a);
    }
    let models = s.get_json(&http, "/v1/models").await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tiny", "tiny+a"]);
    assert_eq!(complete(&s, &http, "tiny+b").await.status(), 404);

    // The admin endpoints need the admin key.
    let load_b = json!({"name": "b", "path": b});
    for key in [None, Some("wrong")] {
        let r = post_adapter(&http, &s, key, &load_b).await;
        assert_eq!(r.status(), 401, "key {key:?}");
    }
    let r = post_adapter(&http, &s, Some("admin-secret"), &load_b).await;
    assert_eq!(r.status(), 201);
    let loaded: Value = r.json().await.unwrap();
    assert_eq!(loaded["id"], "tiny+b");
    assert_eq!(loaded["modules"], 14, "7 projections × 2 layers");
    assert_eq!(text(&s, &http, "tiny+b").await, want_b);
    assert_eq!(text(&s, &http, "tiny+a").await, want_a);

    // Loading the same name twice, a bad folder, or a bad name is a clear 4xx.
    let r = post_adapter(&http, &s, Some("admin-secret"), &load_b).await;
    assert_eq!(r.status(), 409);
    let bad = json!({"name": "c", "path": dir.path().join("missing")});
    let r = post_adapter(&http, &s, Some("admin-secret"), &bad).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "path", "{e}");
    let r = post_adapter(
        &http,
        &s,
        Some("admin-secret"),
        &json!({"name": "x/y", "path": a}),
    )
    .await;
    assert_eq!(r.status(), 400);

    // Unloading: the name is gone, the base and the other adapter are untouched.
    let r = admin(
        &http,
        &s,
        Method::DELETE,
        "/admin/adapters/b",
        Some("admin-secret"),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(complete(&s, &http, "tiny+b").await.status(), 404);
    let r = admin(
        &http,
        &s,
        Method::DELETE,
        "/admin/adapters/b",
        Some("admin-secret"),
        None,
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(text(&s, &http, "tiny").await, want_base);
    assert_eq!(text(&s, &http, "tiny+a").await, want_a);
    let listed = admin(
        &http,
        &s,
        Method::GET,
        "/admin/adapters",
        Some("admin-secret"),
        None,
    )
    .await;
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_are_off_without_an_admin_key() {
    let s = crate::common::start_tiny(256, |_| {}).await;
    let http = reqwest::Client::new();
    let r = admin(
        &http,
        &s,
        Method::GET,
        "/admin/adapters",
        Some("anything"),
        None,
    )
    .await;
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "admin_disabled", "{e}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_loads_only_under_the_adapter_root() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("tiny.gguf");
    tuneup_test_utils::write_tiny_gguf(&base, &tuneup_test_utils::TinySpec::llama()).unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    write_adapter(&base, &root.join("good"), 1);
    write_adapter(&base, &outside, 2);
    std::os::unix::fs::symlink(&outside, root.join("sneaky")).unwrap();
    // A folder over the size limit (a sparse 2 MiB file).
    std::fs::create_dir_all(root.join("big")).unwrap();
    std::fs::File::create(root.join("big/adapter_model.safetensors"))
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    let model = ChatModel::load(&ModelFiles::Gguf(base.clone()), &LoadOptions::default()).unwrap();
    let root_cfg = root.clone();
    let s = start(model, TINY_ID, move |c| {
        c.admin_key = Some("k".into());
        c.adapter_root = Some(root_cfg);
        c.adapter_max_bytes = 1 << 20;
    })
    .await;
    let http = reqwest::Client::new();
    let attacks = [
        json!({"name": "up", "path": "../outside"}),
        json!({"name": "abs", "path": outside}),
        json!({"name": "link", "path": "sneaky"}),
        json!({"name": "etc", "path": "/etc"}),
        json!({"name": "big", "path": "big"}),
    ];
    for body in &attacks {
        let r = post_adapter(&http, &s, Some("k"), body).await;
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["param"], "path", "{body}: {e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("outside the adapter root") || msg.contains("at most 1 MiB"),
            "{body}: {e}"
        );
    }
    let r = post_adapter(
        &http,
        &s,
        Some("k"),
        &json!({"name": "good", "path": "good"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    s.stop().await;

    // Without an adapter root, loading by path is off.
    let model = ChatModel::load(&ModelFiles::Gguf(base), &LoadOptions::default()).unwrap();
    let s = start(model, TINY_ID, |c| c.admin_key = Some("k".into())).await;
    let r = post_adapter(
        &http,
        &s,
        Some("k"),
        &json!({"name": "good", "path": root.join("good")}),
    )
    .await;
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "adapter_root_not_set", "{e}");
    s.stop().await;
}
