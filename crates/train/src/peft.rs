//! Adapters in Hugging Face PEFT's on-disk format: `adapter_config.json`
//! plus `adapter_model.safetensors` with PEFT's tensor names
//! (`base_model.model.<module>.lora_A.weight`, `(r, in)`; `lora_B.weight`,
//! `(out, r)`), loadable by Python `peft` and written by it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};

use crate::durable;
use crate::error::{Error, Result};
use crate::lora::{AdapterSet, LoraConfig};

/// File name of the adapter weights.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// File name of the adapter configuration.
pub const CONFIG_FILE: &str = "adapter_config.json";
const PREFIX: &str = "base_model.model.";

/// How the model's query/key rows are ordered relative to Hugging Face's.
///
/// GGUF files of llama-architecture models store `q_proj`/`k_proj` rows
/// permuted per head (adjacent rotary pairs); PEFT adapters use HF's order,
/// so `B` of those modules is permuted on save and load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QkRowOrder {
    /// Same order as HF checkpoints.
    #[default]
    Hf,
    /// GGUF llama permutation with this head dimension.
    GgufInterleaved {
        /// Rows per attention head.
        head_dim: usize,
    },
}

impl QkRowOrder {
    /// The order of a loaded decoder's rows.
    pub fn of(decoder: &tuneup_models::Decoder) -> Self {
        let cfg = decoder.config();
        match cfg.rope_layout {
            tuneup_nn::RopeLayout::Interleaved => Self::GgufInterleaved {
                head_dim: cfg.head_dim,
            },
            tuneup_nn::RopeLayout::Halves => Self::Hf,
        }
    }

    fn applies(self, module: &str) -> Option<usize> {
        match self {
            Self::GgufInterleaved { head_dim }
                if module.ends_with(".q_proj") || module.ends_with(".k_proj") =>
            {
                Some(head_dim)
            }
            _ => None,
        }
    }

    /// Rows of `b` `(out, r)` from the model's order to HF's.
    pub fn to_hf(self, module: &str, b: &Tensor) -> Result<Tensor> {
        match self.applies(module) {
            Some(hd) => permute_rows(b, hd, true),
            None => Ok(b.clone()),
        }
    }

    /// Rows of `b` `(out, r)` from HF's order to the model's.
    pub fn from_hf(self, module: &str, b: &Tensor) -> Result<Tensor> {
        match self.applies(module) {
            Some(hd) => permute_rows(b, hd, false),
            None => Ok(b.clone()),
        }
    }
}

/// GGUF row `h·hd + 2i + j` is HF row `h·hd + j·hd/2 + i`.
fn permute_rows(b: &Tensor, head_dim: usize, to_hf: bool) -> Result<Tensor> {
    let (out, r) = b.dims2()?;
    if !head_dim.is_multiple_of(2) || !out.is_multiple_of(head_dim) {
        return Err(Error::Config(format!(
            "cannot permute {out} rows into heads of {head_dim}"
        )));
    }
    let heads = out / head_dim;
    let half = head_dim / 2;
    let shape = if to_hf {
        (heads, half, 2, r)
    } else {
        (heads, 2, half, r)
    };
    Ok(b.reshape(shape)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, r))?)
}

/// Writes `set` as a PEFT adapter folder. The folder is written as a whole:
/// into a temporary folder beside `dir`, flushed to disk, then renamed into
/// place (replacing an older adapter), so a reader never sees half an adapter.
pub fn save(
    dir: &Path,
    set: &AdapterSet,
    config: &LoraConfig,
    base_model: &str,
    order: QkRowOrder,
) -> Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs_err::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let tmp = durable::fresh_sibling(dir)?;
    write_files(&tmp, set, config, base_model, order)?;
    durable::publish_dir(&tmp, dir)
}

/// Writes the adapter's two files into the existing folder `dir` (a checkpoint
/// folder, which is itself published as a whole).
pub(crate) fn write_files(
    dir: &Path,
    set: &AdapterSet,
    config: &LoraConfig,
    base_model: &str,
    order: QkRowOrder,
) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut modules: Vec<String> = Vec::new();
    for (module, pair) in &set.modules {
        let a = pair
            .a
            .as_tensor()
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?;
        let b = order.to_hf(module, &pair.b.as_tensor().to_device(&Device::Cpu)?)?;
        tensors.insert(format!("{PREFIX}{module}.lora_A.weight"), a);
        tensors.insert(format!("{PREFIX}{module}.lora_B.weight"), b);
        let last = module.rsplit('.').next().unwrap_or(module).to_string();
        if !modules.contains(&last) {
            modules.push(last);
        }
    }
    modules.sort();
    candle_core::safetensors::save(&tensors, dir.join(WEIGHTS_FILE))?;
    let cfg = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": config.rank,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": modules,
        "use_rslora": config.use_rslora,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "modules_to_save": null,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "use_dora": false,
        "revision": null
    });
    let path = dir.join(CONFIG_FILE);
    let text = serde_json::to_string_pretty(&cfg).expect("json");
    fs_err::write(&path, text).map_err(|e| Error::io(&path, e))
}

/// A PEFT adapter read from disk: its configuration and `(A, B)` per module
/// path, `B` already in the model's row order.
#[derive(Debug, Clone)]
pub struct LoadedAdapter {
    /// Rank, alpha, targets.
    pub config: LoraConfig,
    /// Factors by module path (`model.layers.0.self_attn.q_proj`).
    pub factors: BTreeMap<String, (Tensor, Tensor)>,
    /// `base_model_name_or_path` from the configuration.
    pub base_model: Option<String>,
}

/// Reads a PEFT adapter folder (written by tuneup or by Python `peft`).
pub fn load(dir: &Path, order: QkRowOrder) -> Result<LoadedAdapter> {
    let cfg_path = dir.join(CONFIG_FILE);
    let text = fs_err::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let cfg: Value = serde_json::from_str(&text)
        .map_err(|e| Error::bad_file(&cfg_path, format!("not JSON: {e}")))?;
    let bad = |m: String| Error::bad_file(&cfg_path, m);
    match cfg.get("peft_type").and_then(Value::as_str) {
        Some("LORA") => {}
        other => {
            return Err(bad(format!(
                "peft_type {other:?} is not supported (only LORA)"
            )))
        }
    }
    if cfg.get("use_dora").and_then(Value::as_bool) == Some(true) {
        return Err(bad("DoRA adapters are not supported".into()));
    }
    for key in ["rank_pattern", "alpha_pattern"] {
        if cfg
            .get(key)
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
        {
            return Err(bad(format!("per-module {key} is not supported")));
        }
    }
    for key in ["lora_bias", "use_qalora", "use_bdlora"] {
        if cfg.get(key).and_then(Value::as_bool) == Some(true) {
            return Err(bad(format!("{key} adapters are not supported")));
        }
    }
    if cfg.get("fan_in_fan_out").and_then(Value::as_bool) == Some(true) {
        return Err(bad("fan_in_fan_out (Conv1D models) is not supported".into()));
    }
    let rank = cfg
        .get("r")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("missing r".into()))? as usize;
    let alpha = cfg
        .get("lora_alpha")
        .and_then(Value::as_f64)
        .ok_or_else(|| bad("missing lora_alpha".into()))?;
    let weights = dir.join(WEIGHTS_FILE);
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
        .map_err(|e| Error::bad_file(&weights, e.to_string()))?;
    let mut a_map = BTreeMap::new();
    let mut b_map = BTreeMap::new();
    for (name, t) in tensors {
        let stripped = name.strip_prefix(PREFIX).unwrap_or(&name);
        // PEFT may insert the adapter name: `….lora_A.default.weight`.
        let stripped = stripped.replace(".default.weight", ".weight");
        if let Some(m) = stripped.strip_suffix(".lora_A.weight") {
            a_map.insert(m.to_string(), t.to_dtype(DType::F32)?);
        } else if let Some(m) = stripped.strip_suffix(".lora_B.weight") {
            b_map.insert(m.to_string(), t.to_dtype(DType::F32)?);
        } else {
            return Err(Error::bad_file(
                &weights,
                format!("tensor {name} is not a LoRA factor (lora_A/lora_B)"),
            ));
        }
    }
    let mut factors = BTreeMap::new();
    for (module, a) in a_map {
        let b = b_map.remove(&module).ok_or_else(|| {
            Error::bad_file(&weights, format!("{module} has lora_A but no lora_B"))
        })?;
        if a.dims()[0] != rank || b.dims().get(1) != Some(&rank) {
            return Err(Error::bad_file(
                &weights,
                format!(
                    "{module}: factors {:?}/{:?} are not rank {rank}",
                    a.dims(),
                    b.dims()
                ),
            ));
        }
        let b = order.from_hf(&module, &b)?;
        factors.insert(module, (a, b));
    }
    if let Some(module) = b_map.keys().next() {
        return Err(Error::bad_file(
            &weights,
            format!("{module} has lora_B but no lora_A"),
        ));
    }
    if factors.is_empty() {
        return Err(Error::bad_file(&weights, "no LoRA factors in the file"));
    }
    let config = LoraConfig {
        rank,
        alpha,
        dropout: cfg
            .get("lora_dropout")
            .and_then(Value::as_f64)
            .unwrap_or(0.0) as f32,
        // Exactly the modules present, whatever the file's patterns said.
        target_modules: factors.keys().cloned().collect(),
        use_rslora: cfg.get("use_rslora").and_then(Value::as_bool) == Some(true),
    };
    Ok(LoadedAdapter {
        config,
        factors,
        base_model: cfg
            .get("base_model_name_or_path")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_round_trips_and_moves_rows() -> Result<()> {
        let b = Tensor::arange(0f32, 16.0, &Device::Cpu)?.reshape((8, 2))?;
        let order = QkRowOrder::GgufInterleaved { head_dim: 4 };
        let hf = order.to_hf("model.layers.0.self_attn.q_proj", &b)?;
        // Head 0 rows in GGUF order: (i0,j0) (i0,j1) (i1,j0) (i1,j1) → HF: j0i0 j0i1 j1i0 j1i1.
        let rows: Vec<f32> = hf.narrow(1, 0, 1)?.flatten_all()?.to_vec1()?;
        assert_eq!(rows, vec![0., 4., 2., 6., 8., 12., 10., 14.]);
        let back = order.from_hf("model.layers.0.self_attn.q_proj", &hf)?;
        assert_eq!(back.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
        let v = order.to_hf("model.layers.0.self_attn.v_proj", &b)?;
        assert_eq!(v.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
        Ok(())
    }
}
