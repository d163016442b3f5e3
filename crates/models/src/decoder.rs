//! The decoder: one implementation for every supported architecture.

use candle_core::{DType, Device, Tensor, D};
use rayon::prelude::*;
use tuneup_nn::attention::{
    causal_mask, causal_self_attention, fused_rotary_self_attention, grouped_query_attention_with,
    packed_self_attention, round_f16, AttentionPrecision,
};
use tuneup_nn::{KvCache, LinearRef, RmsNorm, RotaryEmbedding, Segments};

use crate::config::{Activation, DecoderConfig};
use crate::error::{Error, Result};
use crate::loader::LinearWrapper;
use crate::weights::EmbeddingTable;

/// Multi-token steps up to this length over a cache (speculative
/// verification, short chat turns) attend one query row at a time so that
/// each row is computed exactly as single-token decoding computes it.
const EXACT_ROWS_MAX: usize = 16;

/// The attention input projections: separate, or fused (Phi-3).
#[derive(Debug, Clone)]
pub enum QkvProjection {
    /// Three projections.
    Separate {
        /// Query.
        q: LinearRef,
        /// Key.
        k: LinearRef,
        /// Value.
        v: LinearRef,
    },
    /// One projection whose output is `[q | k | v]`.
    Fused(LinearRef),
}

/// The feed-forward input projections: separate, or fused `[gate | up]` (Phi-3).
#[derive(Debug, Clone)]
pub enum GateUpProjection {
    /// Two projections.
    Separate {
        /// Gate.
        gate: LinearRef,
        /// Up.
        up: LinearRef,
    },
    /// One projection whose output is `[gate | up]`.
    Fused(LinearRef),
}

/// Which keys the queries of a pass see: the additive `mask` (causal), or
/// for packed training rows their own example's (`segments`).
#[derive(Clone, Copy)]
struct Mask<'a> {
    mask: Option<&'a Tensor>,
    segments: Option<&'a Segments>,
}

/// One pre-norm transformer block.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    /// Norm before attention.
    pub attn_norm: RmsNorm,
    /// Query/key/value projections.
    pub qkv: QkvProjection,
    /// Attention output projection.
    pub o: LinearRef,
    /// Norm before the feed-forward block.
    pub ffn_norm: RmsNorm,
    /// Gate/up projections.
    pub gate_up: GateUpProjection,
    /// Down projection.
    pub down: LinearRef,
}

/// Per-sequence decoding state: the key/value cache of every layer.
#[derive(Debug, Clone)]
pub struct DecoderState {
    caches: Vec<KvCache>,
}

impl DecoderState {
    /// Number of positions already processed.
    pub fn len(&self) -> usize {
        self.caches.first().map_or(0, KvCache::len)
    }

    /// Whether nothing has been processed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every position.
    pub fn reset(&mut self) {
        self.caches.iter_mut().for_each(KvCache::reset);
    }

    /// Keeps the first `len` positions (rolls back rejected draft tokens).
    pub fn truncate(&mut self, len: usize) {
        self.caches.iter_mut().for_each(|c| c.truncate(len));
    }
}

/// Which positions to compute logits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsFor {
    /// Only the last position (generation).
    Last,
    /// Every position (scoring, speculative verification, training).
    All,
}

/// A decoder-only language model of the Llama family.
#[derive(Debug, Clone)]
pub struct Decoder {
    cfg: DecoderConfig,
    embedding: EmbeddingTable,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: LinearRef,
    rope: RotaryEmbedding,
    device: Device,
    dtype: DType,
    kv_precision: AttentionPrecision,
}

impl Decoder {
    /// Assembles a decoder from its parts (see [`crate::load`] for loading).
    pub fn from_parts(
        cfg: DecoderConfig,
        embedding: EmbeddingTable,
        layers: Vec<DecoderLayer>,
        norm: RmsNorm,
        lm_head: LinearRef,
        device: &Device,
    ) -> Result<Self> {
        let freq_factors = cfg
            .rope_scaling
            .map(|s| s.freq_factors(cfg.head_dim, cfg.rope_theta));
        Self::from_parts_with_rope_factors(
            cfg,
            embedding,
            layers,
            norm,
            lm_head,
            device,
            freq_factors,
        )
    }

    /// Like [`Decoder::from_parts`] with explicit RoPE frequency divisors
    /// (GGUF `rope_freqs.weight`).
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts_with_rope_factors(
        cfg: DecoderConfig,
        embedding: EmbeddingTable,
        layers: Vec<DecoderLayer>,
        norm: RmsNorm,
        lm_head: LinearRef,
        device: &Device,
        freq_factors: Option<Vec<f32>>,
    ) -> Result<Self> {
        let rope = RotaryEmbedding::new(
            cfg.head_dim,
            cfg.max_position_embeddings,
            cfg.rope_theta,
            freq_factors.as_deref(),
            cfg.rope_layout,
            device,
        )?;
        Ok(Self {
            cfg,
            embedding,
            layers,
            norm,
            lm_head,
            rope,
            device: device.clone(),
            dtype: DType::F32,
            kv_precision: AttentionPrecision::F16Inputs,
        })
    }

    /// Sets the precision of cached attention. The default rounds keys,
    /// values, queries and attention weights to f16 as llama.cpp's default
    /// f16 KV cache does; `F32` keeps full precision.
    pub fn set_kv_precision(&mut self, precision: AttentionPrecision) {
        self.kv_precision = precision;
    }

    /// The configuration.
    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The layers (for adapters and inspection).
    pub fn layers(&self) -> &[DecoderLayer] {
        &self.layers
    }

    /// Wraps every projection of the loaded model with `wrapper`, by HF
    /// module path — for adapters that need the loaded model first (their
    /// row order depends on the checkpoint format).
    pub fn wrap_linears(&mut self, wrapper: &dyn LinearWrapper) -> Result<()> {
        use crate::names::{LayerWeight as L, WeightName as W};
        let wrap = |name: W, base: &mut LinearRef| -> Result<()> {
            *base = wrapper.wrap(&name.hf_module(), base.clone())?;
            Ok(())
        };
        for (i, layer) in self.layers.iter_mut().enumerate() {
            match &mut layer.qkv {
                QkvProjection::Separate { q, k, v } => {
                    wrap(W::Layer(i, L::Q), q)?;
                    wrap(W::Layer(i, L::K), k)?;
                    wrap(W::Layer(i, L::V), v)?;
                }
                QkvProjection::Fused(qkv) => wrap(W::Layer(i, L::Qkv), qkv)?,
            }
            wrap(W::Layer(i, L::O), &mut layer.o)?;
            match &mut layer.gate_up {
                GateUpProjection::Separate { gate, up } => {
                    wrap(W::Layer(i, L::Gate), gate)?;
                    wrap(W::Layer(i, L::Up), up)?;
                }
                GateUpProjection::Fused(gu) => wrap(W::Layer(i, L::GateUp), gu)?,
            }
            wrap(W::Layer(i, L::Down), &mut layer.down)?;
        }
        wrap(W::Output, &mut self.lm_head)
    }

    /// Every projection with its logical name, in layer order, the output
    /// head last (for exporting weights).
    pub fn linears(&self) -> Vec<(crate::names::WeightName, LinearRef)> {
        use crate::names::{LayerWeight as L, WeightName as W};
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            match &layer.qkv {
                QkvProjection::Separate { q, k, v } => {
                    out.push((W::Layer(i, L::Q), q.clone()));
                    out.push((W::Layer(i, L::K), k.clone()));
                    out.push((W::Layer(i, L::V), v.clone()));
                }
                QkvProjection::Fused(qkv) => out.push((W::Layer(i, L::Qkv), qkv.clone())),
            }
            out.push((W::Layer(i, L::O), layer.o.clone()));
            match &layer.gate_up {
                GateUpProjection::Separate { gate, up } => {
                    out.push((W::Layer(i, L::Gate), gate.clone()));
                    out.push((W::Layer(i, L::Up), up.clone()));
                }
                GateUpProjection::Fused(gu) => out.push((W::Layer(i, L::GateUp), gu.clone())),
            }
            out.push((W::Layer(i, L::Down), layer.down.clone()));
        }
        out.push((W::Output, self.lm_head.clone()));
        out
    }

    /// Every RMSNorm scale with its logical name, the final norm last.
    pub fn norm_weights(&self) -> Vec<(crate::names::WeightName, Tensor)> {
        use crate::names::{LayerWeight as L, WeightName as W};
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            out.push((W::Layer(i, L::AttnNorm), layer.attn_norm.weight().clone()));
            out.push((W::Layer(i, L::FfnNorm), layer.ffn_norm.weight().clone()));
        }
        out.push((W::OutputNorm, self.norm.weight().clone()));
        out
    }

    /// Replaces every RMSNorm scale by `f(name, current scale)` (a trainer
    /// swaps in trainable variables). The shape must stay the same.
    pub fn map_norm_weights(
        &mut self,
        mut f: impl FnMut(crate::names::WeightName, &Tensor) -> Result<Tensor>,
    ) -> Result<()> {
        use crate::names::{LayerWeight as L, WeightName as W};
        let eps = self.cfg.rms_norm_eps;
        let mut swap = |name: W, norm: &mut RmsNorm| -> Result<()> {
            let w = f(name, norm.weight())?;
            if w.dims() != norm.weight().dims() {
                return Err(Error::BadShape {
                    name: name.hf_module(),
                    expected: norm.weight().dims().to_vec(),
                    actual: w.dims().to_vec(),
                });
            }
            *norm = RmsNorm::new(w, eps);
            Ok(())
        };
        for (i, layer) in self.layers.iter_mut().enumerate() {
            swap(W::Layer(i, L::AttnNorm), &mut layer.attn_norm)?;
            swap(W::Layer(i, L::FfnNorm), &mut layer.ffn_norm)?;
        }
        swap(W::OutputNorm, &mut self.norm)
    }

    /// Replaces the token embedding table and the output head (a trainer
    /// training the embeddings; a tied head must share the table's tensor).
    pub fn set_embeddings(&mut self, embedding: EmbeddingTable, lm_head: LinearRef) {
        self.embedding = embedding;
        self.lm_head = lm_head;
    }

    /// The output projection.
    pub fn lm_head(&self) -> &LinearRef {
        &self.lm_head
    }

    /// The embedding table.
    pub fn embedding(&self) -> &EmbeddingTable {
        &self.embedding
    }

    /// The context window.
    pub fn context_length(&self) -> usize {
        self.cfg.max_position_embeddings
    }

    /// A fresh, empty decoding state for one sequence.
    pub fn new_state(&self) -> DecoderState {
        DecoderState {
            caches: (0..self.layers.len())
                .map(|_| KvCache::new(self.cfg.max_position_embeddings))
                .collect(),
        }
    }

    /// Runs `ids` (continuing `state`) and returns logits of shape
    /// `(n, vocab)` for the positions chosen by `which`.
    pub fn forward(
        &self,
        ids: &[u32],
        state: &mut DecoderState,
        which: LogitsFor,
    ) -> Result<Tensor> {
        if ids.is_empty() {
            return Err(Error::Tensor(candle_core::Error::Msg(
                "forward called with no tokens".into(),
            )));
        }
        self.check_step(ids, state.len() + ids.len())?;
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let hidden = self.hidden_states(&input, Some(&mut state.caches))?;
        let hidden = hidden.squeeze(0)?;
        let hidden = match which {
            LogitsFor::Last => hidden.narrow(0, ids.len() - 1, 1)?,
            LogitsFor::All => hidden,
        };
        Ok(self.lm_head.forward(&hidden)?)
    }

    /// One decoding step for several independent sequences: `ids[i]` continues
    /// `states[i]`. The projections and the feed-forward blocks run once over all
    /// rows (each weight is read once per step, not once per sequence); attention
    /// runs per sequence over its own cache. Returns logits `(ids.len(), vocab)`.
    /// This is what continuous batching shares between concurrent requests.
    pub fn forward_rows(&self, ids: &[u32], states: &mut [&mut DecoderState]) -> Result<Tensor> {
        if ids.is_empty() || ids.len() != states.len() {
            return Err(Error::Tensor(candle_core::Error::Msg(format!(
                "forward_rows needs one token per sequence ({} tokens, {} sequences)",
                ids.len(),
                states.len()
            ))));
        }
        let longest = states.iter().map(|st| st.len()).max().unwrap_or(0);
        self.check_step(ids, longest + 1)?;
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let mut x = self.embed(&input)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let h = layer.attn_norm.forward(&x)?;
            let mut caches: Vec<&mut KvCache> =
                states.iter_mut().map(|st| &mut st.caches[i]).collect();
            let attn = self.attention_rows(layer, &h, &mut caches)?;
            let x1 = (x + attn)?;
            let h = layer.ffn_norm.forward(&x1)?;
            x = (&x1 + self.mlp(layer, &h)?)?;
        }
        let hidden = self.norm.forward(&x)?.squeeze(0)?;
        Ok(self.lm_head.forward(&hidden)?)
    }

    /// Checks the tokens of a cached step and that `needed` positions fit the context.
    fn check_step(&self, ids: &[u32], needed: usize) -> Result<()> {
        if needed > self.cfg.max_position_embeddings {
            return Err(Error::ContextOverflow {
                needed,
                limit: self.cfg.max_position_embeddings,
            });
        }
        let vocab = self.embedding.rows();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::BadToken { id, vocab });
        }
        Ok(())
    }

    /// Full-sequence forward without a cache, `ids` of shape `(batch, seq)`,
    /// returning logits `(batch, seq, vocab)`. Differentiable: training uses it.
    pub fn forward_batch(&self, ids: &Tensor) -> Result<Tensor> {
        let hidden = self.hidden_states(ids, None)?;
        Ok(self.lm_head.forward(&hidden)?)
    }

    /// Token embeddings `(batch, seq, hidden)` of `ids` `(batch, seq)`,
    /// scaled as the architecture asks. The first step of
    /// [`Decoder::forward_batch`], exposed so a trainer can run the layers
    /// one at a time (activation recomputation).
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let mut x = self.embedding.lookup(ids)?.to_dtype(self.dtype)?;
        if let Some(scale) = self.cfg.embedding_scale {
            x = (x * scale as f64)?;
        }
        Ok(x)
    }

    /// Runs layer `index` over whole sequences `x` `(batch, seq, hidden)`
    /// without a cache; `mask` is [`Decoder::causal_mask`] of the sequence
    /// length (or `None` for one token). With `segments` (packed rows) each
    /// token attends only to its own example and `mask` is not used.
    /// Differentiable.
    pub fn layer_forward_full(
        &self,
        index: usize,
        x: &Tensor,
        mask: Option<&Tensor>,
        segments: Option<&Segments>,
    ) -> Result<Tensor> {
        let layer = self.layers.get(index).ok_or_else(|| {
            Error::Tensor(candle_core::Error::Msg(format!(
                "layer {index} does not exist ({} layers)",
                self.layers.len()
            )))
        })?;
        self.layer_forward(layer, x, 0, Mask { mask, segments }, None)
    }

    /// The additive causal mask for `seq` tokens from position 0, or `None`
    /// for a single token.
    pub fn causal_mask(&self, seq: usize) -> Result<Option<Tensor>> {
        Ok(if seq > 1 {
            Some(causal_mask(seq, 0, &self.device)?)
        } else {
            None
        })
    }

    /// The final norm applied to the last layer's output.
    pub fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.norm.forward(x)?)
    }

    /// Final-norm hidden states `(batch, seq, hidden)`.
    fn hidden_states(&self, ids: &Tensor, mut caches: Option<&mut Vec<KvCache>>) -> Result<Tensor> {
        let (_, seq) = ids.dims2()?;
        let offset = caches
            .as_ref()
            .map_or(0, |c| c.first().map_or(0, KvCache::len));
        let mut x = self.embed(ids)?;
        let mask = if seq > 1 {
            Some(causal_mask(seq, offset, &self.device)?)
        } else {
            None
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let cache = caches.as_deref_mut().map(|c| &mut c[i]);
            let mask = Mask {
                mask: mask.as_ref(),
                segments: None,
            };
            x = self.layer_forward(layer, &x, offset, mask, cache)?;
        }
        Ok(self.norm.forward(&x)?)
    }

    fn layer_forward(
        &self,
        layer: &DecoderLayer,
        x: &Tensor,
        offset: usize,
        mask: Mask<'_>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let h = layer.attn_norm.forward(x)?;
        let attn = self.attention(layer, &h, offset, mask, cache)?;
        let x = (x + attn)?;
        let h = layer.ffn_norm.forward(&x)?;
        let ff = self.mlp(layer, &h)?;
        Ok((x + ff)?)
    }

    /// The feed-forward block on normed `h`.
    fn mlp(&self, layer: &DecoderLayer, h: &Tensor) -> Result<Tensor> {
        let (gate, up) = match &layer.gate_up {
            GateUpProjection::Separate { gate, up } => (gate.forward(h)?, up.forward(h)?),
            GateUpProjection::Fused(gu) => {
                let y = gu.forward(h)?;
                let n = self.cfg.intermediate_size;
                (y.narrow(D::Minus1, 0, n)?, y.narrow(D::Minus1, n, n)?)
            }
        };
        Ok(match self.cfg.activation {
            Activation::Silu => layer.down.forward_silu_mul(&gate, &up)?,
            Activation::GeluTanh => layer.down.forward(&(gate.gelu()? * up)?)?,
        })
    }

    /// The query, key and value projections of `h` `(b, seq, hidden)`, each `(b, seq, heads·hd)`.
    fn qkv(&self, layer: &DecoderLayer, h: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (nh, nkv, hd) = (self.cfg.num_heads, self.cfg.num_kv_heads, self.cfg.head_dim);
        Ok(match &layer.qkv {
            QkvProjection::Separate { q, k, v } => (q.forward(h)?, k.forward(h)?, v.forward(h)?),
            QkvProjection::Fused(qkv) => {
                let y = qkv.forward(h)?;
                (
                    y.narrow(D::Minus1, 0, nh * hd)?,
                    y.narrow(D::Minus1, nh * hd, nkv * hd)?,
                    y.narrow(D::Minus1, (nh + nkv) * hd, nkv * hd)?,
                )
            }
        })
    }

    /// Appends `k`, `v` to `cache` (rounded through f16 when the model keeps its
    /// cache that way) and returns everything cached with the precision to attend in.
    fn cache_append(
        &self,
        cache: &mut KvCache,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor, AttentionPrecision)> {
        Ok(if self.kv_precision == AttentionPrecision::F16Inputs {
            // Rounded once on the way in; kept as f32 so decoding does
            // not convert the whole cache at every step.
            let (k, v) = cache.append(&round_f16(k)?, &round_f16(v)?)?;
            (k, v, self.kv_precision)
        } else {
            let (k, v) = cache.append(k, v)?;
            (k, v, AttentionPrecision::F32)
        })
    }

    /// Attention for one new token per sequence: row `i` of `h` `(1, n, hidden)`
    /// continues `caches[i]` at its own position.
    fn attention_rows(
        &self,
        layer: &DecoderLayer,
        h: &Tensor,
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let n = caches.len();
        let (nh, nkv, hd) = (self.cfg.num_heads, self.cfg.num_kv_heads, self.cfg.head_dim);
        let (q, k, v) = self.qkv(layer, h)?;
        let scale = 1.0 / (hd as f64).sqrt();
        // Rows are independent (each its own cache): attend in parallel.
        let rows = caches
            .par_iter_mut()
            .enumerate()
            .map(|(i, cache)| {
                let offset = cache.len();
                let row = |t: &Tensor, heads: usize| -> Result<Tensor> {
                    Ok(t.narrow(1, i, 1)?
                        .reshape((1, 1, heads, hd))?
                        .transpose(1, 2)?)
                };
                let qi = self.rope.apply(&row(&q, nh)?, offset)?;
                let ki = self.rope.apply(&row(&k, nkv)?, offset)?;
                let vi = row(&v, nkv)?.contiguous()?;
                let (ks, vs, precision) = self.cache_append(cache, &ki, &vi)?;
                Ok(grouped_query_attention_with(
                    &qi, &ks, &vs, None, scale, precision,
                )?)
            })
            .collect::<Result<Vec<_>>>()?;
        let y = Tensor::cat(&rows, 2)?
            .transpose(1, 2)?
            .reshape((1, n, nh * hd))?;
        Ok(layer.o.forward(&y)?)
    }

    fn attention(
        &self,
        layer: &DecoderLayer,
        h: &Tensor,
        offset: usize,
        Mask { mask, segments }: Mask<'_>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, seq, _) = h.dims3()?;
        let (nh, nkv, hd) = (self.cfg.num_heads, self.cfg.num_kv_heads, self.cfg.head_dim);
        let (q, k, v) = self.qkv(layer, h)?;
        let scale = 1.0 / (hd as f64).sqrt();
        let causal = segments.is_some() || mask.map_or(seq == 1, |m| m.dims() == [seq, seq]);
        if cache.is_none() && offset == 0 && causal {
            // Training on the CPU: one op from the projections' layout to
            // the output projection's, RoPE inside.
            if let Some(y) = fused_rotary_self_attention(&q, &k, &v, &self.rope, segments, scale)? {
                return Ok(layer.o.forward(&y)?);
            }
        }
        let q = q.reshape((b, seq, nh, hd))?.transpose(1, 2)?;
        let k = k.reshape((b, seq, nkv, hd))?.transpose(1, 2)?;
        let v = v
            .reshape((b, seq, nkv, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = self.rope.apply(&q, offset)?;
        let k = self.rope.apply(&k, offset)?;
        let cached = cache.is_some();
        let (k, v, precision) = match cache {
            Some(c) => self.cache_append(c, &k, &v)?,
            // Training and scoring without a cache stay in f32.
            None => (k, v, AttentionPrecision::F32),
        };
        let y = if cached && seq > 1 && seq <= EXACT_ROWS_MAX {
            // One query row at a time, exactly as single-token decoding
            // computes it: verified speculative tokens then come out
            // bit-identical to plain greedy decoding.
            let rows = (0..seq)
                .map(|i| {
                    let len = offset + i + 1;
                    grouped_query_attention_with(
                        &q.narrow(2, i, 1)?,
                        &k.narrow(2, 0, len)?,
                        &v.narrow(2, 0, len)?,
                        None,
                        scale,
                        precision,
                    )
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::cat(&rows, 2)?
        } else if let (Some(segments), false, 0) = (segments, cached, offset) {
            // Packed training rows: each example sees only itself.
            packed_self_attention(&q, &k, &v, segments, scale)?
        } else if !cached && offset == 0 {
            // Whole sequences without a cache (training, scoring): `mask` is
            // the causal mask from position 0. In a training graph this is
            // one op with its own backward pass; otherwise it is the plain
            // f32 grouped attention.
            causal_self_attention(&q, &k, &v, mask, scale)?
        } else {
            grouped_query_attention_with(&q, &k, &v, mask, scale, precision)?
        };
        let y = y.transpose(1, 2)?.reshape((b, seq, nh * hd))?;
        Ok(layer.o.forward(&y)?)
    }
}
