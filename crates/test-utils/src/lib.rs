//! Tiny random models that tests write themselves, in GGUF and in HF
//! safetensors layout, with the same weights in both so the two loading
//! paths (and GGUF's permuted Q/K rows for llama) can be checked against
//! each other. Every architecture branch of the decoder is reachable:
//! llama (interleaved RoPE), qwen2 (QKV bias), phi3 (fused projections),
//! gemma (GELU, scaled embeddings, offset norms).

pub mod gguf_bytes;
pub mod http;
pub mod ladder;

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

/// Shape and storage of a tiny model.
#[derive(Debug, Clone)]
pub struct TinySpec {
    /// GGUF architecture name: `llama`, `qwen2`, `phi3` or `gemma`.
    pub arch: &'static str,
    /// Storage of the projection matrices (norms stay F32).
    pub weight_type: GgmlDType,
    /// Storage of the embedding table.
    pub embedding_type: GgmlDType,
    /// Residual width (a multiple of 256 for k-quants).
    pub hidden: usize,
    /// Feed-forward width (a multiple of 256 for k-quants).
    pub intermediate: usize,
    /// Layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Vocabulary size (≥ 259 when `with_tokenizer`).
    pub vocab: usize,
    /// Context length.
    pub context: usize,
    /// Whether the output projection reuses the embedding.
    pub tied: bool,
    /// Whether to write a byte-level tokenizer and a ChatML template.
    pub with_tokenizer: bool,
    /// Seed of the weights.
    pub seed: u64,
}

impl TinySpec {
    /// A small llama-architecture model with F32 weights.
    pub fn llama() -> Self {
        Self {
            arch: "llama",
            weight_type: GgmlDType::F32,
            embedding_type: GgmlDType::F32,
            hidden: 256,
            intermediate: 512,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            vocab: 320,
            context: 512,
            tied: false,
            with_tokenizer: true,
            seed: 7,
        }
    }

    /// The same shape with another architecture.
    pub fn with_arch(mut self, arch: &'static str) -> Self {
        self.arch = arch;
        if arch == "gemma" {
            self.tied = true;
        }
        self
    }

    /// The same model with projections stored as `t`.
    pub fn with_weight_type(mut self, t: GgmlDType) -> Self {
        self.weight_type = t;
        self
    }

    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}

/// The weights of a tiny model in HF naming and orientation (`(out, in)`).
pub struct TinyWeights {
    /// Tensors by HF name.
    pub tensors: HashMap<String, Tensor>,
}

fn random(rng: &mut rand::rngs::StdRng, shape: (usize, usize), std: f32) -> Tensor {
    let n = shape.0 * shape.1;
    let data: Vec<f32> = (0..n)
        .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * std * 1.732)
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).expect("shape matches data")
}

fn random_vec(rng: &mut rand::rngs::StdRng, n: usize, center: f32, spread: f32) -> Tensor {
    let data: Vec<f32> = (0..n)
        .map(|_| center + (rng.random::<f32>() * 2.0 - 1.0) * spread)
        .collect();
    Tensor::from_vec(data, n, &Device::Cpu).expect("shape matches data")
}

/// Draws the weights of `spec` deterministically from its seed.
pub fn tiny_weights(spec: &TinySpec) -> TinyWeights {
    let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed);
    let (h, f, hd) = (spec.hidden, spec.intermediate, spec.head_dim());
    let (q_out, kv_out) = (spec.heads * hd, spec.kv_heads * hd);
    let lin_std = 1.0 / (h as f32).sqrt();
    let mut t = HashMap::new();
    t.insert(
        "model.embed_tokens.weight".to_string(),
        random(&mut rng, (spec.vocab, h), 1.0),
    );
    for i in 0..spec.layers {
        let p = format!("model.layers.{i}");
        t.insert(
            format!("{p}.input_layernorm.weight"),
            random_vec(&mut rng, h, 1.0, 0.2),
        );
        t.insert(
            format!("{p}.post_attention_layernorm.weight"),
            random_vec(&mut rng, h, 1.0, 0.2),
        );
        let q = random(&mut rng, (q_out, h), lin_std);
        let k = random(&mut rng, (kv_out, h), lin_std);
        let v = random(&mut rng, (kv_out, h), lin_std);
        if spec.arch == "phi3" {
            let qkv = Tensor::cat(&[&q, &k, &v], 0).expect("same width");
            t.insert(format!("{p}.self_attn.qkv_proj.weight"), qkv);
        } else {
            t.insert(format!("{p}.self_attn.q_proj.weight"), q);
            t.insert(format!("{p}.self_attn.k_proj.weight"), k);
            t.insert(format!("{p}.self_attn.v_proj.weight"), v);
        }
        if spec.arch == "qwen2" {
            t.insert(
                format!("{p}.self_attn.q_proj.bias"),
                random_vec(&mut rng, q_out, 0.0, 0.5),
            );
            t.insert(
                format!("{p}.self_attn.k_proj.bias"),
                random_vec(&mut rng, kv_out, 0.0, 0.5),
            );
            t.insert(
                format!("{p}.self_attn.v_proj.bias"),
                random_vec(&mut rng, kv_out, 0.0, 0.5),
            );
        }
        t.insert(
            format!("{p}.self_attn.o_proj.weight"),
            random(&mut rng, (h, q_out), lin_std),
        );
        let gate = random(&mut rng, (f, h), lin_std);
        let up = random(&mut rng, (f, h), lin_std);
        if spec.arch == "phi3" {
            let gu = Tensor::cat(&[&gate, &up], 0).expect("same width");
            t.insert(format!("{p}.mlp.gate_up_proj.weight"), gu);
        } else {
            t.insert(format!("{p}.mlp.gate_proj.weight"), gate);
            t.insert(format!("{p}.mlp.up_proj.weight"), up);
        }
        t.insert(
            format!("{p}.mlp.down_proj.weight"),
            random(&mut rng, (h, f), 1.0 / (f as f32).sqrt()),
        );
    }
    t.insert(
        "model.norm.weight".to_string(),
        random_vec(&mut rng, h, 1.0, 0.2),
    );
    if !spec.tied {
        t.insert(
            "lm_head.weight".to_string(),
            random(&mut rng, (spec.vocab, h), lin_std),
        );
    }
    TinyWeights { tensors: t }
}

/// llama.cpp's conversion permutes llama Q/K rows so that its interleaved
/// RoPE equals HF's half-split RoPE: within each head, row `2j` takes HF row
/// `j` and row `2j + 1` takes HF row `j + head_dim / 2`.
pub fn permute_for_gguf_rope(w: &Tensor, heads: usize) -> Tensor {
    let (rows, cols) = w.dims2().expect("matrix");
    let hd = rows / heads;
    w.reshape((heads, 2, hd / 2, cols))
        .and_then(|t| t.transpose(1, 2))
        .and_then(|t| t.reshape((rows, cols)))
        .and_then(|t| t.contiguous())
        .expect("valid reshape")
}

fn gguf_name(hf: &str) -> String {
    let map = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = map.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").expect("layer tensor");
    let (i, leaf) = rest.split_once('.').expect("layer index");
    let leaf = leaf
        .replace("input_layernorm", "attn_norm")
        .replace("post_attention_layernorm", "ffn_norm")
        .replace("self_attn.qkv_proj", "attn_qkv")
        .replace("self_attn.q_proj", "attn_q")
        .replace("self_attn.k_proj", "attn_k")
        .replace("self_attn.v_proj", "attn_v")
        .replace("self_attn.o_proj", "attn_output")
        .replace("mlp.gate_up_proj", "ffn_up")
        .replace("mlp.gate_proj", "ffn_gate")
        .replace("mlp.up_proj", "ffn_up")
        .replace("mlp.down_proj", "ffn_down");
    format!("blk.{i}.{leaf}")
}

/// GPT-2's byte-to-unicode table: the printable stand-in for every byte.
pub fn byte_level_alphabet() -> Vec<String> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut table = vec![String::new(); 256];
    for (b, c) in bs.iter().zip(cs) {
        table[*b as usize] = char::from_u32(c).expect("valid char").to_string();
    }
    table
}

/// A ChatML template like SmolLM2's and Qwen2's.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

fn tokenizer_metadata(spec: &TinySpec) -> Vec<(String, Value)> {
    let mut tokens = byte_level_alphabet();
    let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
    tokens.extend(specials.iter().map(|s| s.to_string()));
    let mut types = vec![Value::I32(1); 256];
    types.extend(specials.iter().map(|_| Value::I32(3)));
    while tokens.len() < spec.vocab {
        tokens.push(format!("<|unused_{}|>", tokens.len()));
        types.push(Value::I32(3));
    }
    vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("gpt-2".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        ("tokenizer.ggml.merges".into(), Value::Array(vec![])),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(256)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(258)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
        (
            "tokenizer.chat_template".into(),
            Value::String(CHATML_TEMPLATE.into()),
        ),
    ]
}

/// Writes `spec` as a GGUF file at `path`.
pub fn write_tiny_gguf(path: &Path, spec: &TinySpec) -> candle_core::Result<()> {
    let w = tiny_weights(spec);
    let a = spec.arch;
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(a.into())),
        ("general.name".into(), Value::String(format!("tiny-{a}"))),
        (
            format!("{a}.context_length"),
            Value::U32(spec.context as u32),
        ),
        (
            format!("{a}.embedding_length"),
            Value::U32(spec.hidden as u32),
        ),
        (format!("{a}.block_count"), Value::U32(spec.layers as u32)),
        (
            format!("{a}.feed_forward_length"),
            Value::U32(spec.intermediate as u32),
        ),
        (
            format!("{a}.attention.head_count"),
            Value::U32(spec.heads as u32),
        ),
        (
            format!("{a}.attention.head_count_kv"),
            Value::U32(spec.kv_heads as u32),
        ),
        (
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-5),
        ),
        (format!("{a}.rope.freq_base"), Value::F32(10000.0)),
    ];
    if spec.with_tokenizer {
        md.extend(tokenizer_metadata(spec));
    }
    let mut qtensors: Vec<(String, QTensor)> = Vec::new();
    let mut names: Vec<&String> = w.tensors.keys().collect();
    names.sort();
    for name in names {
        let mut t = w.tensors[name].clone();
        if a == "llama" && (name.ends_with("q_proj.weight") || name.ends_with("k_proj.weight")) {
            let heads = if name.ends_with("q_proj.weight") {
                spec.heads
            } else {
                spec.kv_heads
            };
            t = permute_for_gguf_rope(&t, heads);
        }
        if a == "gemma" && name.ends_with("norm.weight") {
            t = (t + 1.0)?;
        }
        let is_vector = t.rank() == 1;
        let dtype = if is_vector {
            GgmlDType::F32
        } else if name == "model.embed_tokens.weight" {
            spec.embedding_type
        } else {
            spec.weight_type
        };
        qtensors.push((gguf_name(name), QTensor::quantize(&t, dtype)?));
    }
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = qtensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path)?;
    candle_core::quantized::gguf_file::write(&mut file, &md_refs, &t_refs)
}

/// Writes `spec` as an HF folder (`config.json` + `model.safetensors`) in `dir`.
pub fn write_tiny_hf(dir: &Path, spec: &TinySpec) -> candle_core::Result<()> {
    std::fs::create_dir_all(dir)?;
    let w = tiny_weights(spec);
    // HF Gemma stores w and multiplies by (1 + w); the GGUF writer adds the 1.
    let tensors = w.tensors;
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    let model_type = spec.arch;
    let config = serde_json::json!({
        "model_type": model_type,
        "vocab_size": spec.vocab,
        "hidden_size": spec.hidden,
        "intermediate_size": spec.intermediate,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "head_dim": spec.head_dim(),
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": spec.context,
        "tie_word_embeddings": spec.tied,
        "hidden_act": if spec.arch == "gemma" { "gelu_pytorch_tanh" } else { "silu" },
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&config).map_err(candle_core::Error::wrap)?,
    )?;
    Ok(())
}

/// The non-empty value of environment variable `var`, or `None` with `skipped: {hint}` printed so the test
/// skips — unless the variable named by `require` is `1` (`scripts/test.sh` sets `TUNEUP_REQUIRE_MODELS` and
/// `TUNEUP_REQUIRE_POSTGRES`), then the test fails.
pub fn env_or_skip(var: &str, require: Option<&str>, hint: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            if let Some(require) = require {
                assert!(
                    std::env::var(require).as_deref() != Ok("1"),
                    "{var} must be set when {require}=1 ({hint})"
                );
            }
            eprintln!("skipped: {hint}");
            None
        }
    }
}

/// The real model folder or file in environment variable `var` (set by `scripts/test.sh`), or `None` with a
/// message so the test skips — unless `TUNEUP_REQUIRE_MODELS=1`, then the test fails.
pub fn env_model_path(var: &str) -> Option<std::path::PathBuf> {
    env_or_skip(
        var,
        Some("TUNEUP_REQUIRE_MODELS"),
        &format!("set {var} to run this test (scripts/test.sh does)"),
    )
    .map(Into::into)
}

/// The all-MiniLM-L6-v2 folder from `TUNEUP_MINILM_DIR` (see [`env_model_path`]).
pub fn minilm_dir() -> Option<std::path::PathBuf> {
    env_model_path("TUNEUP_MINILM_DIR")
}

/// Largest absolute element difference of two same-shape tensors (tests).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("tensors of the same shape")
}

/// `‖a − b‖ / ‖b‖` (tests).
pub fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let sq = |t: &Tensor| {
        t.sqr()
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar::<f32>())
            .expect("f32 tensor")
    };
    let diff = (a - b).expect("tensors of the same shape");
    (sq(&diff) / sq(b).max(1e-30)).sqrt()
}

/// The TLS test server (`scripts/postgres.sh start-tls DIR`: Debian's PostgreSQL, no pgvector) as its URL
/// (`TUNEUP_TEST_POSTGRES_TLS_URL`) and the path of the CA that signed its certificate
/// (`TUNEUP_TEST_POSTGRES_ROOT_CERT`); `None` with a message when either is unset, so the test skips.
pub fn postgres_tls_test_server() -> Option<(String, String)> {
    let hint = "set TUNEUP_TEST_POSTGRES_TLS_URL and TUNEUP_TEST_POSTGRES_ROOT_CERT (scripts/postgres.sh start-tls DIR)";
    // Never required: the TLS server needs Debian's postgresql, which test.sh installs only where it can.
    let url = env_or_skip("TUNEUP_TEST_POSTGRES_TLS_URL", None, hint)?;
    let root = env_or_skip("TUNEUP_TEST_POSTGRES_ROOT_CERT", None, hint)?;
    Some((url, root))
}

/// The test PostgreSQL server's URL from `TUNEUP_TEST_POSTGRES_URL` (`scripts/postgres.sh start DIR` prints one;
/// `scripts/test.sh` sets it), or `None` with a message so the test skips — unless `TUNEUP_REQUIRE_POSTGRES=1`,
/// then the test fails.
pub fn postgres_test_url() -> Option<String> {
    env_or_skip(
        "TUNEUP_TEST_POSTGRES_URL",
        Some("TUNEUP_REQUIRE_POSTGRES"),
        "set TUNEUP_TEST_POSTGRES_URL (scripts/postgres.sh start DIR prints one) to run the PostgreSQL tests",
    )
}

/// The command lines of every process on the machine (`ps -eo args`), for tests that check nothing outlived a
/// sandbox. Waits 200 ms first, for killed processes to be reaped.
pub fn process_listing() -> String {
    std::thread::sleep(std::time::Duration::from_millis(200));
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("running ps");
    String::from_utf8_lossy(&ps.stdout).into_owned()
}
