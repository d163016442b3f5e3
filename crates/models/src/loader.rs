//! Loading a [`Decoder`] from a GGUF file or an HF model folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::gguf_file::Value;
use candle_core::{DType, Device};
use tuneup_nn::{LinearRef, RmsNorm};

use crate::config::{Architecture, DecoderConfig};
use crate::decoder::{Decoder, DecoderLayer, GateUpProjection, QkvProjection};
use crate::error::{Error, Result};
use crate::names::{LayerWeight, WeightName};
use crate::weights::{GgufWeights, SafetensorsWeights, WeightSource};

/// Where a model's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFiles {
    /// One GGUF file (weights, tokenizer and chat template inside).
    Gguf(PathBuf),
    /// An HF folder: `config.json`, `tokenizer.json`, safetensors (sharded or not).
    HfFolder(PathBuf),
}

impl ModelFiles {
    /// Classifies a local path: a `.gguf` file or a folder with `config.json`.
    pub fn from_path(path: &Path) -> Result<Self> {
        if path.is_dir() {
            if path.join("config.json").is_file() {
                return Ok(Self::HfFolder(path.to_path_buf()));
            }
            return Err(Error::Config {
                source_desc: path.display().to_string(),
                message: "folder has no config.json (expected an HF model folder)".into(),
            });
        }
        if path.is_file() {
            return Ok(Self::Gguf(path.to_path_buf()));
        }
        Err(Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "model file not found"),
        })
    }
}

/// Wraps base linear layers at load time, by HF module path
/// (`model.layers.3.self_attn.q_proj`). LoRA and QLoRA plug in here, so the
/// model code never mentions adapters.
pub trait LinearWrapper: Send + Sync {
    /// Returns the layer to use in place of `base` for `module`.
    fn wrap(&self, module: &str, base: LinearRef) -> Result<LinearRef>;
}

/// How to load.
#[derive(Clone)]
pub struct LoadOptions {
    /// Where the weights go.
    pub device: Device,
    /// Dense weight type for safetensors checkpoints (F32 on CPU).
    pub dtype: DType,
    /// Caps the context window below the model's own.
    pub max_context: Option<usize>,
    /// Adapter hook applied to every projection.
    pub wrapper: Option<Arc<dyn LinearWrapper>>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            dtype: DType::F32,
            max_context: None,
            wrapper: None,
        }
    }
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("device", &self.device)
            .field("dtype", &self.dtype)
            .field("max_context", &self.max_context)
            .field("wrapper", &self.wrapper.is_some())
            .finish()
    }
}

/// A loaded decoder plus what else its file carried.
#[derive(Debug)]
pub struct LoadedModel {
    /// The network.
    pub decoder: Decoder,
    /// GGUF metadata (tokenizer, chat template) when loaded from GGUF.
    pub gguf_metadata: Option<HashMap<String, Value>>,
    /// The files it came from.
    pub files: ModelFiles,
}

/// Loads a model.
pub fn load(files: &ModelFiles, opts: &LoadOptions) -> Result<LoadedModel> {
    match files {
        ModelFiles::Gguf(path) => {
            let w = GgufWeights::open(path, &opts.device)?;
            let vocab = match w.shape(WeightName::TokenEmbedding)?.as_slice() {
                [rows, _] => *rows,
                other => {
                    return Err(Error::Config {
                        source_desc: w.describe(),
                        message: format!(
                            "token_embd.weight has shape {other:?}; expected a matrix (vocabulary × hidden size)"
                        ),
                    })
                }
            };
            let mut cfg = DecoderConfig::from_gguf(w.metadata(), vocab, &w.describe())?;
            cfg.tie_word_embeddings = !w.has(WeightName::Output);
            let freq = if w.has_raw("rope_freqs.weight") {
                Some(w.dense("rope_freqs.weight")?.to_vec1::<f32>()?)
            } else {
                None
            };
            let decoder = build(&w, false, cfg, opts, freq)?;
            Ok(LoadedModel {
                decoder,
                gguf_metadata: Some(w.metadata().clone()),
                files: files.clone(),
            })
        }
        ModelFiles::HfFolder(dir) => {
            let cfg_path = dir.join("config.json");
            let text = std::fs::read_to_string(&cfg_path).map_err(|source| Error::Io {
                path: cfg_path.clone(),
                source,
            })?;
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::Config {
                    source_desc: cfg_path.display().to_string(),
                    message: e.to_string(),
                })?;
            let cfg = DecoderConfig::from_hf_json(&json, &cfg_path.display().to_string())?;
            let shards = safetensors_shards(dir)?;
            let w = SafetensorsWeights::open(&shards, &opts.device, opts.dtype)?;
            let decoder = build(&w, true, cfg, opts, None)?;
            Ok(LoadedModel {
                decoder,
                gguf_metadata: None,
                files: files.clone(),
            })
        }
    }
}

/// Lists the safetensors files of an HF folder (sharded via
/// `model.safetensors.index.json`, or a single `model.safetensors`).
pub fn safetensors_shards(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|source| Error::Io {
            path: index.clone(),
            source,
        })?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config {
            source_desc: index.display().to_string(),
            message: e.to_string(),
        })?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::Config {
                source_desc: index.display().to_string(),
                message: "weight_map is missing".into(),
            })?;
        let mut files: Vec<String> = map
            .values()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(Error::MissingTensor {
        name: "model.safetensors (or model.safetensors.index.json)".into(),
        source_desc: dir.display().to_string(),
    })
}

/// Most context positions × head dimension the RoPE tables may cover (2 million positions of heads of 128).
pub const MAX_ROPE_ENTRIES: usize = 1 << 28;

/// A weight whose shape disagrees with the configuration, naming the file.
fn shape_error(
    src: &dyn WeightSource,
    name: WeightName,
    expected: &[usize],
    actual: &[usize],
) -> Error {
    Error::Config {
        source_desc: src.describe(),
        message: format!(
            "weight {} has shape {actual:?}, but the configuration implies {expected:?}",
            name.hf_module()
        ),
    }
}

fn build(
    src: &dyn WeightSource,
    hf_checkpoint: bool,
    mut cfg: DecoderConfig,
    opts: &LoadOptions,
    freq_factors: Option<Vec<f32>>,
) -> Result<Decoder> {
    if let Some(cap) = opts.max_context {
        cfg.max_position_embeddings = cfg.max_position_embeddings.min(cap.max(1));
    }
    // The RoPE tables hold every position of the window: refuse what no machine could allocate.
    let rope_entries = cfg.max_position_embeddings.saturating_mul(cfg.head_dim);
    if rope_entries > MAX_ROPE_ENTRIES {
        return Err(Error::Config {
            source_desc: src.describe(),
            message: format!(
                "a context of {} positions with heads of {} needs RoPE tables of {rope_entries} entries (at most \
                 {MAX_ROPE_ENTRIES}); use a smaller context window (--ctx-size)",
                cfg.max_position_embeddings, cfg.head_dim
            ),
        });
    }
    let embed_shape = src.shape(WeightName::TokenEmbedding)?;
    if embed_shape.len() != 2 || embed_shape[1] != cfg.hidden_size {
        return Err(Error::BadShape {
            name: "token embedding".into(),
            expected: vec![cfg.vocab_size, cfg.hidden_size],
            actual: embed_shape,
        });
    }
    // Shapes are checked against the configuration here, so a file whose tensors disagree with its metadata
    // is an error at load time rather than a failed (or out-of-bounds) kernel later.
    let (hidden, inter) = (cfg.hidden_size, cfg.intermediate_size);
    let (q_rows, kv_rows) = (
        cfg.num_heads * cfg.head_dim,
        cfg.num_kv_heads * cfg.head_dim,
    );
    let linear = |name: WeightName, rows: usize, cols: usize| -> Result<LinearRef> {
        let base = src.linear(name)?;
        let actual = (base.out_features(), base.in_features());
        if actual != (rows, cols) {
            return Err(shape_error(src, name, &[rows, cols], &[actual.0, actual.1]));
        }
        match &opts.wrapper {
            Some(w) => w.wrap(&name.hf_module(), base),
            None => Ok(base),
        }
    };
    // Gemma's HF checkpoints store norm scales as w with the model using
    // (1 + w); GGUF files have the 1 added at conversion time.
    let gemma_hf_norm = cfg.architecture == Architecture::Gemma && hf_checkpoint;
    let norm = |name: WeightName| -> Result<RmsNorm> {
        let mut w = src.vector(name)?;
        if w.dims() != [hidden] {
            return Err(shape_error(src, name, &[hidden], w.dims()));
        }
        if gemma_hf_norm {
            w = (w + 1.0)?;
        }
        Ok(RmsNorm::new(w, cfg.rms_norm_eps))
    };
    let mut layers = Vec::with_capacity(cfg.num_layers);
    for i in 0..cfg.num_layers {
        let l = |w: LayerWeight| WeightName::Layer(i, w);
        let qkv = if src.has(l(LayerWeight::Qkv)) {
            QkvProjection::Fused(linear(l(LayerWeight::Qkv), q_rows + 2 * kv_rows, hidden)?)
        } else {
            QkvProjection::Separate {
                q: linear(l(LayerWeight::Q), q_rows, hidden)?,
                k: linear(l(LayerWeight::K), kv_rows, hidden)?,
                v: linear(l(LayerWeight::V), kv_rows, hidden)?,
            }
        };
        let gate_up = if cfg.architecture == Architecture::Phi3 {
            GateUpProjection::Fused(linear(l(LayerWeight::GateUp), 2 * inter, hidden)?)
        } else {
            GateUpProjection::Separate {
                gate: linear(l(LayerWeight::Gate), inter, hidden)?,
                up: linear(l(LayerWeight::Up), inter, hidden)?,
            }
        };
        layers.push(DecoderLayer {
            attn_norm: norm(l(LayerWeight::AttnNorm))?,
            qkv,
            o: linear(l(LayerWeight::O), hidden, q_rows)?,
            ffn_norm: norm(l(LayerWeight::FfnNorm))?,
            gate_up,
            down: linear(l(LayerWeight::Down), hidden, inter)?,
        });
    }
    let embedding = src.embedding(WeightName::TokenEmbedding)?;
    let lm_head = if src.has(WeightName::Output) {
        linear(WeightName::Output, embed_shape[0], hidden)?
    } else {
        let base = embedding.as_linear()?;
        match &opts.wrapper {
            Some(w) => w.wrap(&WeightName::Output.hf_module(), base)?,
            None => base,
        }
    };
    let out_norm = norm(WeightName::OutputNorm)?;
    let freq_factors = freq_factors.or_else(|| {
        cfg.rope_scaling
            .map(|s| s.freq_factors(cfg.head_dim, cfg.rope_theta))
    });
    Decoder::from_parts_with_rope_factors(
        cfg,
        embedding,
        layers,
        out_norm,
        lm_head,
        &opts.device,
        freq_factors,
    )
}
