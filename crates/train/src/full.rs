//! Full fine-tuning: every weight of the decoder layers (projections,
//! biases, RMSNorm scales) becomes a trainable variable, optionally with the
//! token embeddings and output head.
//!
//! [`FullWrapper`] replaces each projection at load time by a dense f32
//! layer over a [`Var`] (a GGUF base is dequantized); [`FullParams::attach`]
//! then swaps the norm scales (and embeddings) of the loaded decoder for
//! variables. [`TrainableLinear`] and the norms take candle's
//! differentiable ops when their weight tracks a graph, so the same forward
//! and backward passes (and activation recomputation) as LoRA reach the
//! base weights.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor, Var};
use tuneup_models::{Decoder, EmbeddingTable, LinearWrapper, ModelFiles, WeightName};
use tuneup_nn::{DenseLinear, Linear, LinearRef};

use crate::error::{Error, Result};

/// The weights file of a full fine-tuning checkpoint.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// One trainable tensor.
#[derive(Debug, Clone)]
pub struct FullParam {
    /// HF tensor name (`model.layers.0.self_attn.q_proj.weight`); rows in
    /// the loaded model's order.
    pub name: String,
    /// The variable the model computes with.
    pub var: Var,
    /// Whether AdamW's weight decay applies (not to norms and biases).
    pub decay: bool,
}

/// Makes every decoder-layer projection a dense layer over a trainable
/// variable while loading; the output head is made dense but stays frozen.
#[derive(Debug, Default)]
pub struct FullWrapper {
    params: Mutex<Vec<FullParam>>,
}

/// A projection whose weight (and bias) are trainable variables. Inputs
/// are flattened to rows so the weight gradient is one `(out, in)` product
/// (a batched product over a broadcast weight would materialise one
/// weight-sized gradient per sequence).
#[derive(Debug, Clone)]
pub struct TrainableLinear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl TrainableLinear {
    /// A layer computing `x·Wᵀ + b` with `weight` `(out, in)` and `bias` `(out,)`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> candle_core::Result<Self> {
        let (out, _) = weight.dims2()?;
        if let Some(b) = &bias {
            if b.dims1()? != out {
                candle_core::bail!("bias has {} elements for {out} output rows", b.dims1()?);
            }
        }
        Ok(Self { weight, bias })
    }
}

impl Linear for TrainableLinear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (out, k) = self.weight.dims2()?;
        let mut dims = x.dims().to_vec();
        if dims.last() != Some(&k) {
            candle_core::bail!("input {:?} does not end in {k}", x.dims());
        }
        let rows = tuneup_nn::trained_matmul::trained_matmul(&x.reshape(((), k))?, &self.weight)?;
        let rows = match &self.bias {
            Some(b) => rows.broadcast_add(b)?,
            None => rows,
        };
        *dims.last_mut().expect("non-empty dims") = out;
        rows.reshape(dims)
    }
    fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }
    fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }
    fn dense_weight(&self) -> candle_core::Result<Tensor> {
        self.weight.to_dtype(DType::F32)
    }
    fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
    fn storage_kind(&self) -> String {
        "F32 (trained)".into()
    }
}

fn dense_f32(layer: &LinearRef) -> candle_core::Result<Tensor> {
    layer.dense_weight()?.to_dtype(DType::F32)
}

impl LinearWrapper for FullWrapper {
    fn wrap(&self, module: &str, base: LinearRef) -> tuneup_models::Result<LinearRef> {
        let weight = dense_f32(&base)?;
        let bias = base.bias().map(|b| b.to_dtype(DType::F32)).transpose()?;
        if module == WeightName::Output.hf_module() {
            return Ok(Arc::new(DenseLinear::new(weight, bias)?));
        }
        let w = Var::from_tensor(&weight)?;
        let b = bias.as_ref().map(Var::from_tensor).transpose()?;
        let layer = TrainableLinear::new(
            w.as_tensor().clone(),
            b.as_ref().map(|b| b.as_tensor().clone()),
        )?;
        let mut params = self.params.lock().expect("full wrapper lock");
        params.push(FullParam {
            name: format!("{module}.weight"),
            var: w,
            decay: true,
        });
        if let Some(b) = b {
            params.push(FullParam {
                name: format!("{module}.bias"),
                var: b,
                decay: false,
            });
        }
        Ok(Arc::new(layer))
    }
}

/// Every trainable tensor of a fully fine-tuned model.
#[derive(Debug, Clone, Default)]
pub struct FullParams {
    /// The tensors, projections first (load order), then norms, then the
    /// embeddings when trained.
    pub params: Vec<FullParam>,
}

impl FullParams {
    /// Takes the projections `wrapper` made trainable while loading
    /// `decoder`, and makes its norm scales (and with `train_embeddings`
    /// the embedding table and output head; a tied head shares the table's
    /// variable) trainable too.
    pub fn attach(
        wrapper: &FullWrapper,
        decoder: &mut Decoder,
        train_embeddings: bool,
    ) -> Result<Self> {
        let mut params = std::mem::take(&mut *wrapper.params.lock().expect("full wrapper lock"));
        if params.is_empty() {
            return Err(Error::Config(
                "full fine-tuning found no projection to train (was the model loaded with the full-fine-tuning wrapper?)"
                    .into(),
            ));
        }
        decoder.map_norm_weights(|name, w| {
            let var = Var::from_tensor(&w.to_dtype(DType::F32)?)?;
            params.push(FullParam {
                name: format!("{}.weight", name.hf_module()),
                var: var.clone(),
                decay: false,
            });
            Ok(var.as_tensor().clone())
        })?;
        if train_embeddings {
            let table = match decoder.embedding() {
                EmbeddingTable::Quantized(q) => q.dequantize(decoder.device())?,
                EmbeddingTable::Dense(t) => t.to_dtype(DType::F32)?,
            };
            let table = Var::from_tensor(&table)?;
            params.push(FullParam {
                name: format!("{}.weight", WeightName::TokenEmbedding.hf_module()),
                var: table.clone(),
                decay: true,
            });
            let head: LinearRef = if decoder.config().tie_word_embeddings {
                Arc::new(TrainableLinear::new(table.as_tensor().clone(), None)?)
            } else {
                let head = decoder.lm_head().clone();
                let w = Var::from_tensor(&dense_f32(&head)?)?;
                params.push(FullParam {
                    name: format!("{}.weight", WeightName::Output.hf_module()),
                    var: w.clone(),
                    decay: true,
                });
                Arc::new(TrainableLinear::new(
                    w.as_tensor().clone(),
                    head.bias().cloned(),
                )?)
            };
            decoder.set_embeddings(EmbeddingTable::Dense(table.as_tensor().clone()), head);
        }
        Ok(Self { params })
    }

    /// The trainable tensors as `(name, var)`.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.var.clone()))
            .collect()
    }

    /// Names of the tensors without weight decay.
    pub fn no_decay(&self) -> HashSet<String> {
        self.params
            .iter()
            .filter(|p| !p.decay)
            .map(|p| p.name.clone())
            .collect()
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.params
            .iter()
            .map(|p| p.var.as_tensor().elem_count())
            .sum()
    }

    /// Writes every trainable tensor (a checkpoint's weights) to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let map = self
            .params
            .iter()
            .map(|p| Ok((p.name.clone(), p.var.as_tensor().to_device(&Device::Cpu)?)))
            .collect::<Result<std::collections::HashMap<_, _>>>()?;
        let tmp = path.with_extension("safetensors.tmp");
        candle_core::safetensors::save(&map, &tmp)?;
        fs_err::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Restores what [`FullParams::save`] wrote; every tensor must be
    /// present with its shape.
    pub fn load(&self, path: &Path) -> Result<()> {
        let mut map = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| Error::bad_file(path, e.to_string()))?;
        for p in &self.params {
            let t = map.remove(&p.name).ok_or_else(|| {
                Error::bad_file(path, format!("checkpoint has no weight {}", p.name))
            })?;
            if t.dims() != p.var.as_tensor().dims() {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "{} has shape {:?}, expected {:?}",
                        p.name,
                        t.dims(),
                        p.var.as_tensor().dims()
                    ),
                ));
            }
            p.var
                .set(&t.to_dtype(DType::F32)?.to_device(p.var.device())?)?;
        }
        Ok(())
    }
}

/// Scalars stored in a model's files (every tensor, embeddings included),
/// read from the GGUF directory or the safetensors headers without loading
/// any weight.
pub fn stored_parameter_count(files: &ModelFiles) -> Result<u64> {
    match files {
        ModelFiles::Gguf(path) => {
            let mut file = fs_err::File::open(path).map_err(|e| Error::io(path, e))?;
            let content = gguf_file::Content::read(&mut file)
                .map_err(|e| Error::bad_file(path, e.to_string()))?;
            Ok(content
                .tensor_infos
                .values()
                .map(|i| i.shape.elem_count() as u64)
                .sum())
        }
        ModelFiles::HfFolder(dir) => {
            let mut total = 0u64;
            for shard in tuneup_models::loader::safetensors_shards(dir)? {
                total += safetensors_header_count(&shard)?;
            }
            Ok(total)
        }
    }
}

/// Scalars in one safetensors file, from its JSON header.
fn safetensors_header_count(path: &Path) -> Result<u64> {
    let bad = |m: &str| Error::bad_file(path, m.to_string());
    let mut file = fs_err::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| Error::io(path, e))?;
    let len = u64::from_le_bytes(len);
    if len > 100_000_000 {
        return Err(bad("safetensors header is implausibly large"));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| Error::io(path, e))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| bad("safetensors header is not JSON"))?;
    let entries = json
        .as_object()
        .ok_or_else(|| bad("safetensors header is not an object"))?;
    Ok(entries
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(_, v)| v.get("shape")?.as_array().cloned())
        .map(|shape| shape.iter().filter_map(|d| d.as_u64()).product::<u64>())
        .sum())
}
