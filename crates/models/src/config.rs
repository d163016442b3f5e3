//! The decoder configuration, read from GGUF metadata or an HF `config.json`.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use serde_json::Value as Json;
use tuneup_nn::rope::Llama3Scaling;
use tuneup_nn::RopeLayout;

use crate::error::{Error, Result};

/// The model families one [`crate::Decoder`] implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama 2/3.x, SmolLM/SmolLM2, Mistral (GGUF `llama`, HF `llama`/`mistral`).
    Llama,
    /// Qwen2 / Qwen2.5: bias on the Q, K and V projections.
    Qwen2,
    /// Phi-3: fused QKV and fused gate/up projections.
    Phi3,
    /// Gemma (1): GELU, embeddings scaled by √hidden, `(1 + w)` norms.
    Gemma,
}

impl Architecture {
    /// Names accepted in GGUF `general.architecture`.
    pub const GGUF_NAMES: &'static [&'static str] = &["llama", "mistral", "qwen2", "phi3", "gemma"];
    /// Names accepted in HF `config.json` `model_type`.
    pub const HF_NAMES: &'static [&'static str] = &["llama", "mistral", "qwen2", "phi3", "gemma"];

    fn from_name(name: &str, supported: &[&str]) -> Result<Self> {
        match name {
            "llama" | "mistral" => Ok(Self::Llama),
            "qwen2" => Ok(Self::Qwen2),
            "phi3" => Ok(Self::Phi3),
            "gemma" => Ok(Self::Gemma),
            other => Err(Error::UnknownArchitecture {
                name: other.to_string(),
                supported: supported.join(", "),
            }),
        }
    }
}

/// Non-linearity of the gated feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SiLU (swish): Llama, Qwen2, Phi-3, Mistral.
    Silu,
    /// GELU, tanh approximation: Gemma.
    GeluTanh,
}

/// Everything the decoder needs to know about a checkpoint's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    /// Model family.
    pub architecture: Architecture,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (fewer than query heads for grouped-query attention).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f32,
    /// RoPE base.
    pub rope_theta: f32,
    /// RoPE pair layout.
    pub rope_layout: RopeLayout,
    /// Llama 3.x RoPE scaling, if any.
    pub rope_scaling: Option<Llama3Scaling>,
    /// Context window the model was trained for.
    pub max_position_embeddings: usize,
    /// Whether the output projection reuses the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Feed-forward activation.
    pub activation: Activation,
    /// Multiplier applied to embeddings (Gemma: √hidden).
    pub embedding_scale: Option<f32>,
}

/// Most decoder layers a configuration may declare.
pub const MAX_LAYERS: usize = 4096;
/// Most attention (or key/value) heads.
pub const MAX_HEADS: usize = 1 << 14;
/// Largest head dimension.
pub const MAX_HEAD_DIM: usize = 1 << 12;
/// Largest hidden or feed-forward width.
pub const MAX_WIDTH: usize = 1 << 20;
/// Longest context window (positions); the RoPE tables are built for all of them.
pub const MAX_CONTEXT: usize = 1 << 22;

fn md_u64(md: &HashMap<String, Value>, key: &str) -> Option<u64> {
    md.get(key).and_then(|v| match v {
        Value::U8(x) => Some(*x as u64),
        Value::U16(x) => Some(*x as u64),
        Value::U32(x) => Some(*x as u64),
        Value::U64(x) => Some(*x),
        Value::I8(x) => u64::try_from(*x).ok(),
        Value::I16(x) => u64::try_from(*x).ok(),
        Value::I32(x) => u64::try_from(*x).ok(),
        Value::I64(x) => u64::try_from(*x).ok(),
        _ => None,
    })
}

fn md_f32(md: &HashMap<String, Value>, key: &str) -> Option<f32> {
    md.get(key).and_then(|v| match v {
        Value::F32(x) => Some(*x),
        Value::F64(x) => Some(*x as f32),
        _ => None,
    })
}

impl DecoderConfig {
    /// Reads the configuration from GGUF metadata. `vocab_size` comes from
    /// the embedding tensor, which the caller passes in.
    pub fn from_gguf(
        md: &HashMap<String, Value>,
        vocab_size: usize,
        source_desc: &str,
    ) -> Result<Self> {
        let arch_name = match md.get("general.architecture") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                return Err(Error::Config {
                    source_desc: source_desc.to_string(),
                    message: "metadata key general.architecture is missing".into(),
                })
            }
        };
        let architecture = Architecture::from_name(&arch_name, Architecture::GGUF_NAMES)?;
        let req = |key: &str| -> Result<usize> {
            md_u64(md, &format!("{arch_name}.{key}"))
                .map(|v| v as usize)
                .ok_or_else(|| Error::Config {
                    source_desc: source_desc.to_string(),
                    message: format!("metadata key {arch_name}.{key} is missing"),
                })
        };
        let hidden_size = req("embedding_length")?;
        let num_heads = req("attention.head_count")?;
        if num_heads == 0 {
            return Err(Error::Config {
                source_desc: source_desc.to_string(),
                message: "attention.head_count is 0".into(),
            });
        }
        let num_kv_heads = req("attention.head_count_kv").unwrap_or(num_heads);
        let head_dim = req("attention.key_length").unwrap_or(hidden_size / num_heads);
        let rope_layout = match architecture {
            Architecture::Llama => RopeLayout::Interleaved,
            _ => RopeLayout::Halves,
        };
        let cfg = Self {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size: req("feed_forward_length")?,
            num_layers: req("block_count")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: md_f32(md, &format!("{arch_name}.attention.layer_norm_rms_epsilon"))
                .unwrap_or(1e-5),
            rope_theta: md_f32(md, &format!("{arch_name}.rope.freq_base")).unwrap_or(10000.0),
            rope_layout,
            rope_scaling: None,
            max_position_embeddings: req("context_length").unwrap_or(4096),
            tie_word_embeddings: false,
            activation: if architecture == Architecture::Gemma {
                Activation::GeluTanh
            } else {
                Activation::Silu
            },
            embedding_scale: (architecture == Architecture::Gemma)
                .then(|| (hidden_size as f32).sqrt()),
        };
        cfg.validate(source_desc)?;
        Ok(cfg)
    }

    /// Reads an HF `config.json`.
    pub fn from_hf_json(json: &Json, source_desc: &str) -> Result<Self> {
        let err = |message: String| Error::Config {
            source_desc: source_desc.to_string(),
            message,
        };
        let model_type = json
            .get("model_type")
            .and_then(Json::as_str)
            .ok_or_else(|| err("model_type is missing".into()))?;
        let architecture = Architecture::from_name(model_type, Architecture::HF_NAMES)?;
        let get = |key: &str| -> Result<usize> {
            json.get(key)
                .and_then(Json::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| err(format!("{key} is missing or not an integer")))
        };
        let getf = |key: &str, default: f64| -> f32 {
            json.get(key).and_then(Json::as_f64).unwrap_or(default) as f32
        };
        let hidden_size = get("hidden_size")?;
        let num_heads = get("num_attention_heads")?;
        if num_heads == 0 {
            return Err(err("num_attention_heads is 0".into()));
        }
        let rope_theta = getf("rope_theta", 10000.0);
        let rope_scaling = match json.get("rope_scaling") {
            Some(Json::Object(s)) => {
                let kind = s
                    .get("rope_type")
                    .or_else(|| s.get("type"))
                    .and_then(Json::as_str)
                    .unwrap_or("");
                match kind {
                    "llama3" => Some(Llama3Scaling {
                        factor: s.get("factor").and_then(Json::as_f64).unwrap_or(8.0) as f32,
                        low_freq_factor: s
                            .get("low_freq_factor")
                            .and_then(Json::as_f64)
                            .unwrap_or(1.0) as f32,
                        high_freq_factor: s
                            .get("high_freq_factor")
                            .and_then(Json::as_f64)
                            .unwrap_or(4.0) as f32,
                        original_max_position_embeddings: s
                            .get("original_max_position_embeddings")
                            .and_then(Json::as_u64)
                            .unwrap_or(8192)
                            as usize,
                    }),
                    "default" | "" => None,
                    other => {
                        return Err(err(format!(
                            "rope_scaling type '{other}' is not supported (supported: llama3)"
                        )))
                    }
                }
            }
            _ => None,
        };
        let cfg = Self {
            architecture,
            vocab_size: get("vocab_size")?,
            hidden_size,
            intermediate_size: get("intermediate_size")?,
            num_layers: get("num_hidden_layers")?,
            num_heads,
            num_kv_heads: get("num_key_value_heads").unwrap_or(num_heads),
            head_dim: get("head_dim").unwrap_or(hidden_size / num_heads),
            rms_norm_eps: getf("rms_norm_eps", 1e-6),
            rope_theta,
            rope_layout: RopeLayout::Halves,
            rope_scaling,
            max_position_embeddings: get("max_position_embeddings").unwrap_or(4096),
            tie_word_embeddings: json
                .get("tie_word_embeddings")
                .and_then(Json::as_bool)
                .unwrap_or(architecture == Architecture::Gemma),
            activation: if architecture == Architecture::Gemma {
                Activation::GeluTanh
            } else {
                Activation::Silu
            },
            embedding_scale: (architecture == Architecture::Gemma)
                .then(|| (hidden_size as f32).sqrt()),
        };
        cfg.validate(source_desc)?;
        Ok(cfg)
    }

    fn validate(&self, source_desc: &str) -> Result<()> {
        let bad = |message: String| {
            Err(Error::Config {
                source_desc: source_desc.to_string(),
                message,
            })
        };
        if self.num_kv_heads == 0 || !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return bad(format!(
                "{} attention heads cannot be grouped over {} key/value heads",
                self.num_heads, self.num_kv_heads
            ));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return bad(format!(
                "head dimension {} must be even and > 0",
                self.head_dim
            ));
        }
        if self.num_layers == 0 || self.hidden_size == 0 || self.vocab_size == 0 {
            return bad("zero layers, hidden size or vocabulary".into());
        }
        // Bounds far above any model of these families: past them a crafted file would make the loader
        // reserve layers or RoPE tables it cannot allocate, which aborts the process.
        let limits = [
            ("layers", self.num_layers, MAX_LAYERS),
            ("hidden size", self.hidden_size, MAX_WIDTH),
            ("feed-forward size", self.intermediate_size, MAX_WIDTH),
            ("attention heads", self.num_heads, MAX_HEADS),
            ("key/value heads", self.num_kv_heads, MAX_HEADS),
            ("head dimension", self.head_dim, MAX_HEAD_DIM),
            ("context length", self.max_position_embeddings, MAX_CONTEXT),
        ];
        for (what, value, limit) in limits {
            if value > limit {
                return bad(format!(
                    "{what} is {value}, above the largest tuneup accepts ({limit})"
                ));
            }
        }
        Ok(())
    }
}
