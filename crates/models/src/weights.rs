//! Where weights come from: a memory-mapped GGUF file or HF safetensors
//! shards. Both hand out [`LinearRef`]s, so the decoder never knows which.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use tuneup_nn::{DenseLinear, LinearRef, QuantLinear};

use crate::error::{ggml_type_name, Error, Result};
use crate::gguf_check::{check_header, HeaderProblem};
use crate::names::WeightName;

/// A token embedding table, kept in the checkpoint's storage format.
#[derive(Debug, Clone)]
pub enum EmbeddingTable {
    /// Quantized rows, dequantized on lookup.
    Quantized(Arc<QTensor>),
    /// Dense rows.
    Dense(Tensor),
}

impl EmbeddingTable {
    /// Rows of the table.
    pub fn rows(&self) -> usize {
        match self {
            Self::Quantized(q) => q.shape().dims()[0],
            Self::Dense(t) => t.dims()[0],
        }
    }

    /// Looks up `ids` of any shape; the result has one more dimension.
    pub fn lookup(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Quantized(q) => q.embedding(ids),
            Self::Dense(t) => {
                let mut dims = ids.dims().to_vec();
                dims.push(t.dims()[1]);
                t.index_select(&ids.flatten_all()?, 0)?.reshape(dims)
            }
        }
    }

    /// The table as a linear layer (tied output projection).
    pub fn as_linear(&self) -> candle_core::Result<LinearRef> {
        Ok(match self {
            Self::Quantized(q) => Arc::new(QuantLinear::new(q.clone(), None)?),
            Self::Dense(t) => Arc::new(DenseLinear::new(t.clone(), None)?),
        })
    }
}

/// A checkpoint that can hand out weights by logical name.
pub trait WeightSource {
    /// Human-readable description (the path) for error messages.
    fn describe(&self) -> String;
    /// Whether the weight exists.
    fn has(&self, name: WeightName) -> bool;
    /// A linear layer (weight plus bias when the checkpoint has one).
    fn linear(&self, name: WeightName) -> Result<LinearRef>;
    /// A dense f32 vector (norm scales).
    fn vector(&self, name: WeightName) -> Result<Tensor>;
    /// The token embedding table.
    fn embedding(&self, name: WeightName) -> Result<EmbeddingTable>;
    /// Shape of a weight, `(rows, cols)` for matrices.
    fn shape(&self, name: WeightName) -> Result<Vec<usize>>;
}

/// A GGUF file, memory-mapped; tensors are decoded from the map.
pub struct GgufWeights {
    path: PathBuf,
    mmap: memmap2::Mmap,
    content: Content,
    device: Device,
}

impl std::fmt::Debug for GgufWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufWeights")
            .field("path", &self.path)
            .finish()
    }
}

fn map_gguf_error(path: &Path, e: candle_core::Error) -> Error {
    let message = e.to_string();
    if let Some(rest) = message.strip_prefix("unknown dtype for tensor ") {
        // The message may carry a backtrace after the number.
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(id) = digits.parse::<u32>() {
            return Error::UnsupportedQuantization {
                tensor: "?".into(),
                type_name: ggml_type_name(id),
            };
        }
    }
    Error::BadGguf {
        path: path.to_path_buf(),
        message,
    }
}

impl GgufWeights {
    /// Opens and maps `path`, parsing the header and tensor directory.
    pub fn open(path: &Path, device: &Device) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // SAFETY: the map is read-only; tuneup never writes to model files
        // while they are loaded.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // candle's reader trusts the header; check it first so a crafted file is an error, not a panic.
        check_header(&mmap[..]).map_err(|problem| match problem {
            HeaderProblem::Invalid(message) => Error::BadGguf {
                path: path.to_path_buf(),
                message,
            },
            HeaderProblem::UnsupportedType { tensor, type_id } => Error::UnsupportedQuantization {
                tensor,
                type_name: ggml_type_name(type_id),
            },
        })?;
        let mut cursor = Cursor::new(&mmap[..]);
        let content = Content::read(&mut cursor).map_err(|e| map_gguf_error(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            content,
            device: device.clone(),
        })
    }

    /// The metadata key/value table (tokenizer, chat template, hyper-parameters).
    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    /// Names of all tensors in the file.
    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.content.tensor_infos.keys().map(String::as_str)
    }

    fn qtensor(&self, name: &str) -> Result<QTensor> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_string(),
                source_desc: self.describe(),
            })?;
        let mut cursor = Cursor::new(&self.mmap[..]);
        info.read(&mut cursor, self.content.tensor_data_offset, &self.device)
            .map_err(|e| Error::BadGguf {
                path: self.path.clone(),
                message: format!("tensor '{name}': {e}"),
            })
    }

    /// Reads any tensor by its GGUF name as dense f32.
    pub fn dense(&self, name: &str) -> Result<Tensor> {
        let q = self.qtensor(name)?;
        Ok(q.dequantize(&self.device)?.to_dtype(DType::F32)?)
    }

    /// Whether a tensor with this GGUF name exists.
    pub fn has_raw(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }
}

impl WeightSource for GgufWeights {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
    fn has(&self, name: WeightName) -> bool {
        self.has_raw(&format!("{}.weight", name.gguf_prefix()))
    }
    fn linear(&self, name: WeightName) -> Result<LinearRef> {
        let prefix = name.gguf_prefix();
        let q = self.qtensor(&format!("{prefix}.weight"))?;
        let bias_name = format!("{prefix}.bias");
        let bias = if self.has_raw(&bias_name) {
            Some(self.dense(&bias_name)?)
        } else {
            None
        };
        Ok(match q.dtype() {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
                let w = q.dequantize(&self.device)?;
                Arc::new(DenseLinear::new(w, bias)?)
            }
            _ => Arc::new(QuantLinear::new(Arc::new(q), bias)?),
        })
    }
    fn vector(&self, name: WeightName) -> Result<Tensor> {
        self.dense(&format!("{}.weight", name.gguf_prefix()))
    }
    fn embedding(&self, name: WeightName) -> Result<EmbeddingTable> {
        let q = self.qtensor(&format!("{}.weight", name.gguf_prefix()))?;
        Ok(match q.dtype() {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
                EmbeddingTable::Dense(q.dequantize(&self.device)?)
            }
            _ => EmbeddingTable::Quantized(Arc::new(q)),
        })
    }
    fn shape(&self, name: WeightName) -> Result<Vec<usize>> {
        let full = format!("{}.weight", name.gguf_prefix());
        self.content
            .tensor_infos
            .get(&full)
            .map(|i| i.shape.dims().to_vec())
            .ok_or_else(|| Error::MissingTensor {
                name: full,
                source_desc: self.describe(),
            })
    }
}

/// HF safetensors shards (memory-mapped), loaded as dense tensors of `dtype`.
pub struct SafetensorsWeights {
    desc: String,
    tensors: candle_core::safetensors::MmapedSafetensors,
    names: std::collections::HashSet<String>,
    device: Device,
    dtype: DType,
}

impl std::fmt::Debug for SafetensorsWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsWeights")
            .field("desc", &self.desc)
            .finish()
    }
}

impl SafetensorsWeights {
    /// Maps every shard; `dtype` is what weights are converted to (F32 on CPU).
    pub fn open(shards: &[PathBuf], device: &Device, dtype: DType) -> Result<Self> {
        let desc = shards
            .first()
            .and_then(|p| p.parent())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        for p in shards {
            let file = std::fs::File::open(p).map_err(|source| Error::Io {
                path: p.clone(),
                source,
            })?;
            // SAFETY: read-only map, dropped at the end of this iteration.
            let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| Error::Io {
                path: p.clone(),
                source,
            })?;
            // Validate the header eagerly so a truncated shard names itself.
            safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::BadSafetensors {
                path: p.clone(),
                message: e.to_string(),
            })?;
        }
        // SAFETY: read-only maps of files that are not modified while loaded.
        let tensors = unsafe { candle_core::safetensors::MmapedSafetensors::multi(shards) }
            .map_err(|e| Error::BadSafetensors {
                path: shards.first().cloned().unwrap_or_default(),
                message: e.to_string(),
            })?;
        let names = tensors.tensors().into_iter().map(|(n, _)| n).collect();
        Ok(Self {
            desc,
            tensors,
            names,
            device: device.clone(),
            dtype,
        })
    }

    fn load(&self, name: &str) -> Result<Tensor> {
        if !self.names.contains(name) {
            return Err(Error::MissingTensor {
                name: name.to_string(),
                source_desc: self.desc.clone(),
            });
        }
        Ok(self
            .tensors
            .load(name, &self.device)?
            .to_dtype(self.dtype)?)
    }
}

impl WeightSource for SafetensorsWeights {
    fn describe(&self) -> String {
        self.desc.clone()
    }
    fn has(&self, name: WeightName) -> bool {
        self.names.contains(&format!("{}.weight", name.hf_module()))
    }
    fn linear(&self, name: WeightName) -> Result<LinearRef> {
        let m = name.hf_module();
        let w = self.load(&format!("{m}.weight"))?;
        let bias_name = format!("{m}.bias");
        let bias = if self.names.contains(&bias_name) {
            Some(self.load(&bias_name)?)
        } else {
            None
        };
        Ok(Arc::new(DenseLinear::new(w, bias)?))
    }
    fn vector(&self, name: WeightName) -> Result<Tensor> {
        Ok(self
            .load(&format!("{}.weight", name.hf_module()))?
            .to_dtype(DType::F32)?)
    }
    fn embedding(&self, name: WeightName) -> Result<EmbeddingTable> {
        Ok(EmbeddingTable::Dense(
            self.load(&format!("{}.weight", name.hf_module()))?,
        ))
    }
    fn shape(&self, name: WeightName) -> Result<Vec<usize>> {
        let full = format!("{}.weight", name.hf_module());
        if !self.names.contains(&full) {
            return Err(Error::MissingTensor {
                name: full,
                source_desc: self.desc.clone(),
            });
        }
        Ok(self.tensors.get(&full)?.shape().to_vec())
    }
}
