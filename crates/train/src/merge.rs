//! Folding a LoRA adapter into the base weights: a new GGUF file whose
//! adapted projections are `W + scale·B·A`, in F16 or Q8_0.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use tuneup_models::{LayerWeight, WeightName};

use crate::error::{Error, Result};
use crate::peft::{self, QkRowOrder};

/// What [`merge_gguf`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeReport {
    /// Tensors written.
    pub tensors: usize,
    /// Of which merged with the adapter.
    pub merged: usize,
    /// Storage type of the matrices.
    pub dtype: GgmlDType,
}

/// GGUF tensor name of every projection an adapter may target, by HF module path.
fn module_names(layers: usize) -> HashMap<String, String> {
    use LayerWeight::*;
    let mut map = HashMap::new();
    for i in 0..layers {
        for w in [Q, K, V, Qkv, O, Gate, Up, GateUp, Down] {
            let n = WeightName::Layer(i, w);
            map.insert(n.hf_module(), format!("{}.weight", n.gguf_prefix()));
        }
    }
    map.insert(WeightName::Output.hf_module(), "output.weight".into());
    map
}

/// Writes `out`: every tensor of the GGUF `base`, the adapter in
/// `adapter_dir` folded into the projections it targets, and every matrix
/// stored as `dtype` (F16 or Q8_0; norms and other vectors stay F32). The
/// metadata (tokenizer, chat template) is copied.
pub fn merge_gguf(
    base: &Path,
    adapter_dir: &Path,
    order: QkRowOrder,
    out: &Path,
    dtype: GgmlDType,
) -> Result<MergeReport> {
    if !matches!(dtype, GgmlDType::F16 | GgmlDType::Q8_0 | GgmlDType::F32) {
        return Err(Error::Config(format!(
            "merge writes F32, F16 or Q8_0, not {dtype:?}"
        )));
    }
    let adapter = peft::load(adapter_dir, order)?;
    let scale = adapter.config.scale();
    let mut file = fs_err::File::open(base).map_err(|e| Error::io(base, e))?;
    let content =
        gguf_file::Content::read(&mut file).map_err(|e| Error::bad_file(base, e.to_string()))?;
    let layers = content
        .tensor_infos
        .keys()
        .filter_map(|k| {
            k.strip_prefix("blk.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |m| m + 1);
    let names = module_names(layers);
    let mut deltas: HashMap<String, (Tensor, Tensor)> = HashMap::new();
    for (module, ab) in adapter.factors {
        let name = names.get(&module).ok_or_else(|| {
            Error::bad_file(
                adapter_dir,
                format!("module {module} has no GGUF counterpart"),
            )
        })?;
        if !content.tensor_infos.contains_key(name) {
            return Err(Error::bad_file(
                adapter_dir,
                format!(
                    "{module} ({name}) is not in {} (a tied output head cannot be merged)",
                    base.display()
                ),
            ));
        }
        deltas.insert(name.clone(), ab);
    }
    let mut tensor_names: Vec<String> = content.tensor_infos.keys().cloned().collect();
    tensor_names.sort();
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(tensor_names.len());
    let mut merged = 0;
    for name in &tensor_names {
        let q = content
            .tensor(&mut file, name, &Device::Cpu)
            .map_err(|e| Error::bad_file(base, format!("{name}: {e}")))?;
        let dims = q.shape().dims().to_vec();
        let out_tensor = if dims.len() == 2 {
            let mut w = q.dequantize(&Device::Cpu)?;
            if let Some((a, b)) = deltas.get(name) {
                let delta = (b.matmul(a)? * scale)?;
                w = (w + delta)?;
                merged += 1;
            }
            let (_, cols) = w.dims2()?;
            let target = if dtype == GgmlDType::Q8_0 && cols % 32 != 0 {
                GgmlDType::F16
            } else {
                dtype
            };
            QTensor::quantize(&w.to_dtype(DType::F32)?, target)?
        } else {
            q
        };
        tensors.push((name.clone(), out_tensor));
    }
    let file_type: u32 = match dtype {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        _ => 7,
    };
    let mut metadata: Vec<(String, Value)> = content
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.file_type")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    metadata.push(("general.file_type".into(), Value::U32(file_type)));
    let tmp = out.with_extension("gguf.tmp");
    {
        let mut w =
            std::io::BufWriter::new(fs_err::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?);
        let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        gguf_file::write(&mut w, &md, &ts).map_err(|e| Error::bad_file(&tmp, e.to_string()))?;
        use std::io::Write as _;
        w.flush().map_err(|e| Error::io(&tmp, e))?;
    }
    fs_err::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    Ok(MergeReport {
        tensors: tensors.len(),
        merged,
        dtype,
    })
}
