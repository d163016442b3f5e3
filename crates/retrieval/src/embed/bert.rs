//! A BERT encoder on packed sequences: the tokens of every text in a batch sit one after another, with no
//! padding, so the projections see exactly the real tokens and attention runs per text over its own length.
//!
//! Projections are f32 matrix products through `tuneup_nn::sgemm` (split over the rayon pool); the element-wise
//! work (bias + GELU, residual + layer norm, softmax) goes through the vectorized [`kernels`](super::kernels),
//! also split over the pool. The result equals Hugging Face's `BertModel` last hidden state.

use std::path::Path;

use candle_core::{safetensors::MmapedSafetensors, DType, Device};
use rayon::prelude::*;
use serde::Deserialize;
use tuneup_nn::bf16_gemm::PackedBf16;
use tuneup_nn::sgemm::{self, MatRef};

use super::kernels::{self, Activation};

/// Rows of element-wise work one parallel task takes.
const ROWS_PER_TASK: usize = 64;

/// The fields of a BERT `config.json` the encoder uses.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub(crate) hidden_size: usize,
    pub(crate) num_attention_heads: usize,
    pub(crate) num_hidden_layers: usize,
    pub(crate) intermediate_size: usize,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_eps")]
    layer_norm_eps: f32,
    #[serde(default = "default_positions")]
    pub(crate) max_position_embeddings: usize,
    #[serde(default = "default_position_kind")]
    position_embedding_type: String,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_eps() -> f32 {
    1e-12
}
fn default_positions() -> usize {
    512
}
fn default_position_kind() -> String {
    "absolute".into()
}

struct Norm {
    weight: Vec<f32>,
    shift: Vec<f32>,
}

/// A projection's weight `(out, in)`: f32, or packed for the bf16 kernel.
enum Weight {
    F32 { w: Vec<f32>, k: usize },
    Bf16(PackedBf16),
}

impl Weight {
    fn new(w: Vec<f32>, n: usize, k: usize, precision: Precision) -> Self {
        let packed = match precision {
            Precision::Fast => PackedBf16::pack(&w, n, k),
            Precision::F32 => None,
        };
        packed.map_or(Weight::F32 { w, k }, Weight::Bf16)
    }

    /// `out = x · Wᵀ`.
    fn apply(&self, x: &[f32], out: &mut [f32]) -> Result<(), String> {
        match self {
            Weight::Bf16(packed) => {
                packed.matmul_t(x, out);
                Ok(())
            }
            Weight::F32 { w, k } => {
                let rows = x.len() / k;
                let a = MatRef::new(x, rows, *k).map_err(err)?;
                let b = MatRef::new(w, w.len() / k, *k).map_err(err)?.t();
                sgemm::matmul(a, b, out).map_err(err)
            }
        }
    }

    fn is_bf16(&self) -> bool {
        matches!(self, Weight::Bf16(_))
    }
}

/// The arithmetic of the projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// bf16 products with f32 sums where the CPU has AVX512-BF16 (twice the f32 rate; cosine to the f32 model
    /// ≥ 0.9999), f32 elsewhere.
    #[default]
    Fast,
    /// f32 products everywhere.
    F32,
}

struct Layer {
    /// Query, key and value projections stacked: `(3·hidden, hidden)`.
    qkv: Weight,
    qkv_bias: Vec<f32>,
    attn_out: Weight,
    attn_out_bias: Vec<f32>,
    attn_norm: Norm,
    up: Weight,
    up_bias: Vec<f32>,
    down: Weight,
    down_bias: Vec<f32>,
    out_norm: Norm,
}

/// A loaded BERT-family encoder.
pub(crate) struct BertEncoder {
    hidden: usize,
    heads: usize,
    inter: usize,
    eps: f32,
    act: Activation,
    words: Vec<f32>,
    positions: Vec<f32>,
    /// Token type 0's vector (sentence embedders feed one segment).
    segment: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
}

/// Where a text's rows sit in the packed batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// The spans of texts of the given lengths packed one after another.
pub(crate) fn spans(lengths: impl IntoIterator<Item = usize>) -> Vec<Span> {
    let mut start = 0;
    lengths
        .into_iter()
        .map(|len| {
            let span = Span { start, len };
            start += len;
            span
        })
        .collect()
}

impl BertEncoder {
    /// Reads the weights named in Hugging Face's BERT layout (with or without a `bert.` prefix; `gamma`/`beta`
    /// or `weight`/`bias` layer norms) from `weights`; any float dtype is widened to f32.
    pub(crate) fn load(
        config: &BertConfig,
        weights: &Path,
        precision: Precision,
    ) -> Result<Self, String> {
        let act = Activation::from_name(&config.hidden_act).ok_or_else(|| {
            format!(
                "hidden_act {:?} is not supported (gelu, gelu_new, relu are)",
                config.hidden_act
            )
        })?;
        if config.position_embedding_type != "absolute" {
            return Err(format!(
                "position_embedding_type {:?} is not supported (absolute is)",
                config.position_embedding_type
            ));
        }
        let (h, heads) = (config.hidden_size, config.num_attention_heads);
        if heads == 0 || !h.is_multiple_of(heads) {
            return Err(format!(
                "hidden_size {h} is not a multiple of num_attention_heads {heads}"
            ));
        }
        // SAFETY: the file is memory-mapped read-only; tuneup never writes model files in place.
        let file = unsafe { MmapedSafetensors::new(weights) }
            .map_err(|e| format!("{}: {e}", weights.display()))?;
        let reader = Reader::new(&file)?;
        let norm = |name: &str| -> Result<Norm, String> {
            Ok(Norm {
                weight: reader
                    .first(&[&format!("{name}.weight"), &format!("{name}.gamma")], &[h])?,
                shift: reader.first(&[&format!("{name}.bias"), &format!("{name}.beta")], &[h])?,
            })
        };
        let words = reader.tensor("embeddings.word_embeddings.weight", &[0, h])?;
        let positions = reader.tensor(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?;
        let segment = match reader.optional("embeddings.token_type_embeddings.weight", &[0, h])? {
            Some(types) if types.len() >= h => types[..h].to_vec(),
            _ => vec![0.0; h],
        };
        let embed_norm = norm("embeddings.LayerNorm")?;
        let inter = config.intermediate_size;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                let mut qkv = Vec::with_capacity(3 * h * h);
                let mut qkv_bias = Vec::with_capacity(3 * h);
                for part in ["query", "key", "value"] {
                    qkv.extend(
                        reader.tensor(&format!("{p}.attention.self.{part}.weight"), &[h, h])?,
                    );
                    qkv_bias
                        .extend(reader.tensor(&format!("{p}.attention.self.{part}.bias"), &[h])?);
                }
                let weight = |name: &str, n: usize, k: usize| -> Result<Weight, String> {
                    Ok(Weight::new(
                        reader.tensor(&format!("{p}.{name}"), &[n, k])?,
                        n,
                        k,
                        precision,
                    ))
                };
                Ok(Layer {
                    qkv: Weight::new(qkv, 3 * h, h, precision),
                    qkv_bias,
                    attn_out: weight("attention.output.dense.weight", h, h)?,
                    attn_out_bias: reader
                        .tensor(&format!("{p}.attention.output.dense.bias"), &[h])?,
                    attn_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                    up: weight("intermediate.dense.weight", inter, h)?,
                    up_bias: reader.tensor(&format!("{p}.intermediate.dense.bias"), &[inter])?,
                    down: weight("output.dense.weight", h, inter)?,
                    down_bias: reader.tensor(&format!("{p}.output.dense.bias"), &[h])?,
                    out_norm: norm(&format!("{p}.output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(BertEncoder {
            hidden: h,
            heads,
            inter,
            eps: config.layer_norm_eps,
            act,
            words,
            positions,
            segment,
            embed_norm,
            layers,
        })
    }

    /// Whether the projections run in bf16.
    pub(crate) fn uses_bf16(&self) -> bool {
        self.layers.first().is_some_and(|l| l.qkv.is_bf16())
    }

    /// Vocabulary size (rows of the word embedding).
    pub(crate) fn vocab(&self) -> usize {
        self.words.len() / self.hidden
    }

    /// The last hidden state of the packed texts `ids` (row `t` of the result is token `t`, `hidden` wide);
    /// `spans` says where each text sits. Every id must be below [`vocab`](Self::vocab) and every text
    /// no longer than the position table (the caller checks).
    pub(crate) fn forward(&self, ids: &[u32], spans: &[Span]) -> Result<Vec<f32>, String> {
        let h = self.hidden;
        let tokens = ids.len();
        let mut x = vec![0f32; tokens * h];
        for span in spans {
            for p in 0..span.len {
                let t = span.start + p;
                let word = &self.words[ids[t] as usize * h..][..h];
                let position = &self.positions[p * h..][..h];
                x[t * h..][..h]
                    .iter_mut()
                    .zip(word.iter().zip(position).zip(&self.segment))
                    .for_each(|(v, ((w, p), s))| *v = w + p + s);
            }
        }
        par_rows(&mut x, h, |rows| {
            kernels::layer_norm(
                rows,
                &self.embed_norm.weight,
                &self.embed_norm.shift,
                self.eps,
            )
        });
        let mut qkv = vec![0f32; tokens * 3 * h];
        let mut context = vec![0f32; tokens * h];
        let mut projected = vec![0f32; tokens * h];
        let mut up = vec![0f32; tokens * self.inter];
        for layer in &self.layers {
            layer.qkv.apply(&x, &mut qkv)?;
            par_rows(&mut qkv, 3 * h, |rows| add_bias(rows, &layer.qkv_bias));
            self.attention(&qkv, spans, &mut context)?;
            layer.attn_out.apply(&context, &mut projected)?;
            self.add_and_norm(&mut x, &projected, &layer.attn_out_bias, &layer.attn_norm);
            layer.up.apply(&x, &mut up)?;
            par_rows(&mut up, self.inter, |rows| {
                kernels::bias_activation(rows, &layer.up_bias, self.act)
            });
            layer.down.apply(&up, &mut projected)?;
            self.add_and_norm(&mut x, &projected, &layer.down_bias, &layer.out_norm);
        }
        Ok(x)
    }

    /// `x ← LayerNorm(x + y + bias)`, split over the pool.
    fn add_and_norm(&self, x: &mut [f32], y: &[f32], bias: &[f32], norm: &Norm) {
        let h = self.hidden;
        x.par_chunks_mut(ROWS_PER_TASK * h)
            .zip(y.par_chunks(ROWS_PER_TASK * h))
            .for_each(|(x, y)| {
                kernels::residual_layer_norm(x, y, bias, &norm.weight, &norm.shift, self.eps)
            });
    }

    /// Scaled dot-product self-attention of every text over its own tokens, heads side by side in `context`.
    fn attention(&self, qkv: &[f32], spans: &[Span], context: &mut [f32]) -> Result<(), String> {
        let h = self.hidden;
        let d = h / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        // Each text owns a contiguous block of context rows.
        let mut blocks = Vec::with_capacity(spans.len());
        let mut rest = context;
        for span in spans {
            let (block, tail) = rest.split_at_mut(span.len * h);
            blocks.push((span, block));
            rest = tail;
        }
        blocks.into_par_iter().try_for_each(|(span, block)| {
            let n = span.len;
            if n == 0 {
                return Ok(());
            }
            let rows = &qkv[span.start * 3 * h..(span.start + n) * 3 * h];
            let mut scores = vec![0f32; n * n];
            let mut out = vec![0f32; n * d];
            for head in 0..self.heads {
                let view =
                    |part: usize| MatRef::strided(&rows[part * h + head * d..], n, d, 3 * h, 1);
                let (q, k, v) = (
                    view(0).map_err(err)?,
                    view(1).map_err(err)?,
                    view(2).map_err(err)?,
                );
                sgemm::matmul_serial(q, k.t(), &mut scores).map_err(err)?;
                kernels::scaled_softmax(&mut scores, n, scale);
                let probs = MatRef::new(&scores, n, n).map_err(err)?;
                sgemm::matmul_serial(probs, v, &mut out).map_err(err)?;
                for (row, src) in block.chunks_exact_mut(h).zip(out.chunks_exact(d)) {
                    row[head * d..(head + 1) * d].copy_from_slice(src);
                }
            }
            Ok(())
        })
    }
}

fn err(e: candle_core::Error) -> String {
    e.to_string()
}

fn add_bias(rows: &mut [f32], bias: &[f32]) {
    for row in rows.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
}

/// Runs `f` over blocks of whole rows (`width` values each) in parallel.
fn par_rows(x: &mut [f32], width: usize, f: impl Fn(&mut [f32]) + Sync + Send) {
    x.par_chunks_mut(ROWS_PER_TASK * width).for_each(f);
}

/// Tensor lookup in a safetensors file, with Hugging Face's optional model prefixes.
struct Reader<'a> {
    file: &'a MmapedSafetensors,
    prefix: &'static str,
}

impl<'a> Reader<'a> {
    fn new(file: &'a MmapedSafetensors) -> Result<Self, String> {
        ["", "bert.", "model."]
            .into_iter()
            .find(|p| {
                file.get(&format!("{p}embeddings.word_embeddings.weight"))
                    .is_ok()
            })
            .map(|prefix| Reader { file, prefix })
            .ok_or_else(|| {
                "no embeddings.word_embeddings.weight tensor: not a BERT model".to_string()
            })
    }

    /// The tensor `name` as f32 values; `shape` is checked (a 0 accepts any size in that dimension).
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
        self.optional(name, shape)?
            .ok_or_else(|| format!("tensor {}{name} is missing", self.prefix))
    }

    fn optional(&self, name: &str, shape: &[usize]) -> Result<Option<Vec<f32>>, String> {
        let full = format!("{}{name}", self.prefix);
        if self.file.get(&full).is_err() {
            return Ok(None);
        }
        let t = self
            .file
            .load(&full, &Device::Cpu)
            .map_err(|e| format!("{full}: {e}"))?;
        let dims = t.dims();
        let fits =
            dims.len() == shape.len() && dims.iter().zip(shape).all(|(d, s)| *s == 0 || d == s);
        if !fits {
            return Err(format!(
                "{full} has shape {dims:?}, want {shape:?} (0 = any)"
            ));
        }
        let values = t
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| format!("{full}: {e}"))?;
        Ok(Some(values))
    }

    /// The first of `names` that exists.
    fn first(&self, names: &[&str], shape: &[usize]) -> Result<Vec<f32>, String> {
        for name in names {
            if let Some(t) = self.optional(name, shape)? {
                return Ok(t);
            }
        }
        Err(format!("tensor {}{} is missing", self.prefix, names[0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Expected {
        ids: Vec<u32>,
        hidden: Vec<Vec<f32>>,
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (norm(a) * norm(b))
    }

    /// A random 2-layer BERT with the tanh GELU, `bert.`-prefixed f16 tensors and gamma/beta layer norms,
    /// against Hugging Face's `BertModel` (fixture: `scripts/fixtures/make_tiny_bert.py`).
    #[test]
    fn tiny_bert_matches_transformers_packed_or_alone() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/retrieval/tiny_bert");
        let config: BertConfig =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        let expected: Vec<Expected> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        for precision in [Precision::F32, Precision::Fast] {
            let encoder =
                BertEncoder::load(&config, &dir.join("model.safetensors"), precision).unwrap();
            assert_eq!(encoder.vocab(), 40);
            let check = |hidden: &[f32], want: &Expected| {
                for (got, want) in hidden.chunks_exact(32).zip(&want.hidden) {
                    if precision == Precision::F32 {
                        let diff = got
                            .iter()
                            .zip(want)
                            .map(|(a, b)| (a - b).abs())
                            .fold(0f32, f32::max);
                        assert!(diff < 2e-4, "{:?}: max |diff| {diff}", want);
                    } else {
                        assert!(
                            cosine(got, want) > 0.999,
                            "bf16: cosine {}",
                            cosine(got, want)
                        );
                    }
                }
            };
            // All three packed into one batch, and each alone.
            let packed: Vec<u32> = expected.iter().flat_map(|e| e.ids.clone()).collect();
            let spans = spans(expected.iter().map(|e| e.ids.len()));
            let hidden = encoder.forward(&packed, &spans).unwrap();
            for (span, want) in spans.iter().zip(&expected) {
                check(&hidden[span.start * 32..(span.start + span.len) * 32], want);
                let alone = encoder
                    .forward(
                        &want.ids,
                        &[Span {
                            start: 0,
                            len: want.ids.len(),
                        }],
                    )
                    .unwrap();
                check(&alone, want);
            }
        }
    }

    #[test]
    fn unsupported_configs_are_named() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/retrieval/tiny_bert");
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["hidden_act"] = "swish".into();
        let config: BertConfig = serde_json::from_value(value.clone()).unwrap();
        let err = BertEncoder::load(&config, &dir.join("model.safetensors"), Precision::F32)
            .err()
            .unwrap();
        assert!(err.contains("swish"), "{err}");
        value["hidden_act"] = "gelu".into();
        value["position_embedding_type"] = "relative_key".into();
        let config: BertConfig = serde_json::from_value(value.clone()).unwrap();
        let err = BertEncoder::load(&config, &dir.join("model.safetensors"), Precision::F32)
            .err()
            .unwrap();
        assert!(err.contains("relative_key"), "{err}");
        value["position_embedding_type"] = "absolute".into();
        value["intermediate_size"] = 48.into();
        let config: BertConfig = serde_json::from_value(value).unwrap();
        let err = BertEncoder::load(&config, &dir.join("model.safetensors"), Precision::F32)
            .err()
            .unwrap();
        assert!(
            err.contains("intermediate.dense.weight") && err.contains("[64, 32]"),
            "{err}"
        );
    }
}
