//! Writing a loaded model as a Hugging Face model folder: `config.json`,
//! `model.safetensors` (f32, HF tensor names and row order), the tokenizer
//! files and the chat template. Full fine-tuning saves its result this way
//! and `tuneup merge --format safetensors` writes base + adapter this way;
//! `tuneup chat -m DIR` and Python `transformers` load the folder.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};
use tuneup_generate::ChatModel;
use tuneup_models::{
    Activation, Architecture, Decoder, DecoderConfig, EmbeddingTable, ModelFiles, WeightName,
};
use tuneup_tokenize::Tokenizer;

use crate::durable;
use crate::error::{Error, Result};
use crate::peft::QkRowOrder;

/// The weights file of a written folder.
pub const MODEL_FILE: &str = "model.safetensors";

/// Tokenizer files copied from an HF base folder when present.
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];

fn cpu_f32(t: &Tensor) -> Result<Tensor> {
    Ok(t.to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .contiguous()?)
}

/// Whether the written folder keeps the output head tied to the embeddings:
/// only when the model ties them and no adapter changed the head.
fn head_is_tied(decoder: &Decoder) -> bool {
    decoder.config().tie_word_embeddings && !decoder.lm_head().storage_kind().contains("LoRA")
}

/// Every weight of `decoder` as dense f32 on the CPU under its HF name, with
/// query/key rows in HF order (undoing the GGUF llama permutation) and
/// Gemma norm scales stored as `w − 1`. Adapted layers contribute their
/// merged weight `W + scale·B·A`.
pub fn hf_tensors(decoder: &Decoder) -> Result<Vec<(String, Tensor)>> {
    let order = QkRowOrder::of(decoder);
    let mut out = Vec::new();
    let table = match decoder.embedding() {
        EmbeddingTable::Quantized(q) => q.dequantize(&Device::Cpu)?,
        EmbeddingTable::Dense(t) => t.clone(),
    };
    out.push((
        format!("{}.weight", WeightName::TokenEmbedding.hf_module()),
        cpu_f32(&table)?,
    ));
    let tied = head_is_tied(decoder);
    for (name, layer) in decoder.linears() {
        if name == WeightName::Output && tied {
            continue;
        }
        let module = name.hf_module();
        let w = order.to_hf(&module, &cpu_f32(&layer.dense_weight()?)?)?;
        out.push((format!("{module}.weight"), w.contiguous()?));
        if let Some(b) = layer.bias() {
            let b = cpu_f32(b)?;
            let n = b.dims1()?;
            let b = order.to_hf(&module, &b.reshape((n, 1))?)?.reshape(n)?;
            out.push((format!("{module}.bias"), b.contiguous()?));
        }
    }
    let gemma = decoder.config().architecture == Architecture::Gemma;
    for (name, w) in decoder.norm_weights() {
        let mut w = cpu_f32(&w)?;
        if gemma {
            w = (w - 1.0)?;
        }
        out.push((format!("{}.weight", name.hf_module()), w));
    }
    Ok(out)
}

/// An `f32` written the way people write it (`1e-5`, not `9.99…e-6`).
fn short_f32(x: f32) -> Value {
    format!("{x}")
        .parse::<f64>()
        .map(Value::from)
        .unwrap_or(Value::from(x as f64))
}

/// `config.json` for `cfg` (HF spelling of every field the loaders read).
pub fn hf_config(cfg: &DecoderConfig, tied: bool, tokenizer: &Tokenizer) -> Value {
    let (model_type, class) = match cfg.architecture {
        Architecture::Llama => ("llama", "LlamaForCausalLM"),
        Architecture::Qwen2 => ("qwen2", "Qwen2ForCausalLM"),
        Architecture::Phi3 => ("phi3", "Phi3ForCausalLM"),
        Architecture::Gemma => ("gemma", "GemmaForCausalLM"),
    };
    let rope_scaling = cfg.rope_scaling.map(|s| {
        json!({
            "rope_type": "llama3",
            "factor": short_f32(s.factor),
            "low_freq_factor": short_f32(s.low_freq_factor),
            "high_freq_factor": short_f32(s.high_freq_factor),
            "original_max_position_embeddings": s.original_max_position_embeddings,
        })
    });
    json!({
        "architectures": [class],
        "model_type": model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "rms_norm_eps": short_f32(cfg.rms_norm_eps),
        "rope_theta": short_f32(cfg.rope_theta),
        "rope_scaling": rope_scaling,
        "max_position_embeddings": cfg.max_position_embeddings,
        "tie_word_embeddings": tied,
        "hidden_act": match cfg.activation {
            Activation::Silu => "silu",
            Activation::GeluTanh => "gelu_pytorch_tanh",
        },
        "attention_bias": false,
        "mlp_bias": false,
        "torch_dtype": "float32",
        "bos_token_id": tokenizer.bos_id(),
        "eos_token_id": tokenizer.eos_id(),
    })
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON serialises");
    fs_err::write(path, text).map_err(|e| Error::io(path, e))
}

/// Writes `tensors` (f32) to `path` with the `{"format": "pt"}` metadata
/// `transformers` expects.
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let mut bytes: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let data: Vec<f32> = cpu_f32(t)?.flatten_all()?.to_vec1()?;
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes.push((name.clone(), t.dims().to_vec(), raw));
    }
    let mut views = Vec::with_capacity(bytes.len());
    for (name, shape, raw) in &bytes {
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), raw)
                .map_err(|e| Error::bad_file(path, format!("{name}: {e}")))?;
        views.push((name.clone(), view));
    }
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), path)
        .map_err(|e| Error::bad_file(path, e.to_string()))
}

/// Writes the tokenizer files: copied from an HF base folder, or derived
/// from the GGUF tokenizer (`tokenizer.json`, `tokenizer_config.json` with
/// the special tokens and chat template, `generation_config.json` with the
/// end-of-generation ids).
fn write_tokenizer(dir: &Path, model: &ChatModel) -> Result<()> {
    if let ModelFiles::HfFolder(src) = &model.model.files {
        for name in TOKENIZER_FILES {
            let from = src.join(name);
            if from.is_file() {
                let to = dir.join(name);
                fs_err::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
            }
        }
        return Ok(());
    }
    let tok = &model.tokenizer;
    let path = dir.join("tokenizer.json");
    let text = tok
        .hf_tokenizer()
        .to_string(true)
        .map_err(|e| Error::bad_file(&path, e.to_string()))?;
    fs_err::write(&path, text).map_err(|e| Error::io(&path, e))?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({
            "bos_token": tok.bos_token(),
            "eos_token": tok.eos_token(),
            "add_bos_token": tok.add_bos(),
            "add_eos_token": false,
            "chat_template": tok.chat_template(),
            "tokenizer_class": "PreTrainedTokenizerFast",
        }),
    )?;
    write_json(
        &dir.join("generation_config.json"),
        &json!({
            "bos_token_id": tok.bos_id(),
            "eos_token_id": tok.eog_ids(),
        }),
    )
}

/// A GGUF base with `rope_freqs` (Llama 3.1+ scaling stored as divisors)
/// has no `rope_scaling` to put into `config.json`: refused rather than
/// written as a model that computes something else.
pub(crate) fn refuse_unwritable_rope(model: &ChatModel) -> Result<()> {
    let ModelFiles::Gguf(path) = &model.model.files else {
        return Ok(());
    };
    if model.model.decoder.config().rope_scaling.is_some() {
        return Ok(());
    }
    let mut file = fs_err::File::open(path).map_err(|e| Error::io(path, e))?;
    let content = candle_core::quantized::gguf_file::Content::read(&mut file)
        .map_err(|e| Error::bad_file(path, e.to_string()))?;
    if content.tensor_infos.contains_key("rope_freqs.weight") {
        return Err(Error::bad_file(
            path,
            "the model has rope_freqs (Llama 3.1-style RoPE scaling), which cannot be written \
             to an HF config.json yet; merge an adapter into GGUF instead (tuneup merge --format gguf)",
        ));
    }
    Ok(())
}

/// Writes `model` (with whatever adapters or trained weights it holds) as an
/// HF model folder at `dir`. The folder is written beside `dir` and renamed
/// into place, replacing an older one, so a reader never sees half a model.
pub fn write_model_folder(dir: &Path, model: &ChatModel) -> Result<()> {
    let decoder = &model.model.decoder;
    refuse_unwritable_rope(model)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs_err::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let tmp = durable::fresh_sibling(dir)?;
    write_safetensors(&tmp.join(MODEL_FILE), &hf_tensors(decoder)?)?;
    write_json(
        &tmp.join("config.json"),
        &hf_config(decoder.config(), head_is_tied(decoder), &model.tokenizer),
    )?;
    write_tokenizer(&tmp, model)?;
    durable::publish_dir(&tmp, dir)
}
