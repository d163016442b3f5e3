//! What a run trains: LoRA adapters or the model's own weights. The trainer
//! loop only sees named variables; this is where the two differ — what is
//! saved as the result, and what a checkpoint holds besides the optimiser.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use candle_core::Var;
use tuneup_generate::ChatModel;
use tuneup_models::{LoadOptions, ModelFiles};
use tuneup_nn::bf16_linear::Bf16FrozenLinear;
use tuneup_nn::frozen::FrozenWeight;
use tuneup_nn::{DenseLinear, LinearRef};

use crate::config::{Method, Precision, TrainConfig, FULL_PARAMETER_LIMIT};
use crate::error::{Error, Result};
use crate::full::{self, stored_parameter_count, FullParams, FullWrapper};
use crate::hf_model;
use crate::lora::{AdapterSet, LoraConfig, LoraInit, LoraWrapper, TrainSwitch};
use crate::peft::{self, QkRowOrder};

/// The trainable parameters of a run.
#[derive(Debug, Clone)]
pub enum Trainable {
    /// LoRA factors beside a frozen base (LoRA, QLoRA).
    Adapters {
        /// The factors by module.
        set: AdapterSet,
        /// Their shape and scale.
        config: LoraConfig,
    },
    /// The base weights themselves (full fine-tuning).
    Full(FullParams),
}

impl Trainable {
    /// The variables the optimiser updates, by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        match self {
            Self::Adapters { set, .. } => set.named_vars(),
            Self::Full(p) => p.named_vars(),
        }
    }

    /// Names left out of weight decay.
    pub fn no_decay(&self) -> HashSet<String> {
        match self {
            Self::Adapters { .. } => HashSet::new(),
            Self::Full(p) => p.no_decay(),
        }
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        match self {
            Self::Adapters { set, .. } => set.parameter_count(),
            Self::Full(p) => p.parameter_count(),
        }
    }

    /// Number of trained tensors (adapted modules, or weight tensors).
    pub fn tensor_count(&self) -> usize {
        match self {
            Self::Adapters { set, .. } => set.modules.len(),
            Self::Full(p) => p.params.len(),
        }
    }

    /// Folder name of the result inside the output folder: `adapter` or
    /// `model` (the best one by validation is `…-best`).
    pub fn output_name(&self) -> &'static str {
        match self {
            Self::Adapters { .. } => "adapter",
            Self::Full(_) => "model",
        }
    }

    /// Writes the result to `dir`: a PEFT adapter, or an HF model folder.
    pub fn save_result(&self, dir: &Path, model: &ChatModel, base_name: &str) -> Result<()> {
        match self {
            Self::Adapters { set, config } => peft::save(
                dir,
                set,
                config,
                base_name,
                QkRowOrder::of(&model.model.decoder),
            ),
            Self::Full(_) => hf_model::write_model_folder(dir, model),
        }
    }

    /// Writes the trained weights into a checkpoint folder.
    pub fn save_checkpoint(&self, dir: &Path, model: &ChatModel, base_name: &str) -> Result<()> {
        match self {
            Self::Adapters { set, config } => peft::write_files(
                dir,
                set,
                config,
                base_name,
                QkRowOrder::of(&model.model.decoder),
            ),
            Self::Full(p) => p.save(&dir.join(full::WEIGHTS_FILE)),
        }
    }

    /// Restores the trained weights from a checkpoint folder.
    pub fn load_checkpoint(&self, dir: &Path, order: QkRowOrder) -> Result<()> {
        match self {
            Self::Adapters { set, .. } => {
                let loaded = peft::load(dir, order)?;
                for (module, pair) in &set.modules {
                    let (a, b) = loaded.factors.get(module).ok_or_else(|| {
                        Error::bad_file(dir, format!("checkpoint has no adapter for {module}"))
                    })?;
                    pair.a.set(&a.to_device(pair.a.device())?)?;
                    pair.b.set(&b.to_device(pair.b.device())?)?;
                }
                Ok(())
            }
            Self::Full(p) => p.load(&dir.join(full::WEIGHTS_FILE)),
        }
    }
}

/// A quantized layer as its dequantized dense copy; other layers as they are.
fn dense_base(base: LinearRef) -> tuneup_models::Result<LinearRef> {
    if matches!(base.frozen_weight(), Some(FrozenWeight::Quant(_))) {
        Ok(Arc::new(DenseLinear::new(
            base.dense_weight()?,
            base.bias().cloned(),
        )?))
    } else {
        Ok(base)
    }
}

/// Loads every quantized projection as a dense f32 layer: exact base
/// weights for references such as `tuneup merge`'s check (the quantized
/// kernels also quantize the activations).
pub struct DequantizeBase;

impl tuneup_models::LinearWrapper for DequantizeBase {
    fn wrap(&self, _module: &str, base: LinearRef) -> tuneup_models::Result<LinearRef> {
        dense_base(base)
    }
}

/// How the loader prepares each base layer before the LoRA wrapper sees it:
/// bf16 precision packs every frozen layer (the output head too) for the
/// bf16 GEMM; `method = "lora"` expands quantized layers to dense f32 where
/// they are not packed (a packed layer's bf16 copy is made from the same
/// dequantized values, so an f32 copy beside it would only take memory).
struct AdapterBase {
    lora: Arc<LoraWrapper>,
    dequantize: bool,
    bf16: bool,
}

impl tuneup_models::LinearWrapper for AdapterBase {
    fn wrap(&self, module: &str, base: LinearRef) -> tuneup_models::Result<LinearRef> {
        let packed = if self.bf16 {
            Bf16FrozenLinear::pack(base.clone())?
        } else {
            None
        };
        let base: LinearRef = match packed {
            Some(packed) => Arc::new(packed),
            None if self.dequantize => dense_base(base)?,
            None => base,
        };
        self.lora.wrap(module, base)
    }
}

/// The loader's wrapper for LoRA (`dequantize`) or QLoRA adapters on a base
/// in the given precision.
pub(crate) fn adapter_wrapper(
    lora: Arc<LoraWrapper>,
    method: Method,
    precision: Precision,
    device: &candle_core::Device,
) -> Arc<dyn tuneup_models::LinearWrapper> {
    Arc::new(AdapterBase {
        lora,
        dequantize: method == Method::Lora,
        bf16: device.is_cpu() && precision.uses_bf16(),
    })
}

type Loaded = (ChatModel, Trainable, Arc<TrainSwitch>);

/// Loads the model of a run with what `config.method` trains.
pub(crate) fn load(config: &TrainConfig, files: &ModelFiles, opts: &LoadOptions) -> Result<Loaded> {
    match config.method {
        Method::Full => load_full(config, files, opts),
        Method::Lora | Method::Qlora => load_lora(config, files, opts),
    }
}

/// LoRA / QLoRA: fresh adapters on the base (dequantized for `lora`).
fn load_lora(config: &TrainConfig, files: &ModelFiles, opts: &LoadOptions) -> Result<Loaded> {
    let wrapper = Arc::new(LoraWrapper::new(
        config.lora.clone(),
        LoraInit::Fresh { seed: config.seed },
        &opts.device,
    )?);
    let mut opts = opts.clone();
    opts.wrapper = Some(adapter_wrapper(
        wrapper.clone(),
        config.method,
        config.precision,
        &opts.device,
    ));
    let model = ChatModel::load(files, &opts).map_err(|e| Error::Config(e.to_string()))?;
    let set = wrapper.adapters();
    if set.modules.is_empty() {
        return Err(Error::Config(format!(
            "no module matches target_modules {:?}",
            config.lora.target_modules
        )));
    }
    let trainable = Trainable::Adapters {
        set,
        config: config.lora.clone(),
    };
    Ok((model, trainable, wrapper.train_switch()))
}

/// Full fine-tuning: the base as dense f32 with every decoder weight a
/// variable. Refuses bases above [`FULL_PARAMETER_LIMIT`] unless `force`.
fn load_full(config: &TrainConfig, files: &ModelFiles, opts: &LoadOptions) -> Result<Loaded> {
    let count = stored_parameter_count(files)?;
    if count > FULL_PARAMETER_LIMIT && !config.force {
        return Err(Error::Config(format!(
            "{} has {:.2}B parameters; full fine-tuning keeps weights, gradients and two \
             optimiser moments in f32 (about {:.0} GiB) and is limited to {:.1}B parameters. \
             Use method = \"lora\" or \"qlora\", or pass --force (force = true) to try anyway",
            config.model,
            count as f64 / 1e9,
            count as f64 * 16.0 / (1u64 << 30) as f64,
            FULL_PARAMETER_LIMIT as f64 / 1e9
        )));
    }
    let wrapper = Arc::new(FullWrapper::default());
    let mut opts = opts.clone();
    opts.wrapper = Some(wrapper.clone());
    let mut model = ChatModel::load(files, &opts).map_err(|e| Error::Config(e.to_string()))?;
    // The result is an HF folder: refuse before training what cannot be written.
    hf_model::refuse_unwritable_rope(&model)?;
    let params = FullParams::attach(&wrapper, &mut model.model.decoder, config.train_embeddings)?;
    Ok((
        model,
        Trainable::Full(params),
        Arc::new(TrainSwitch::default()),
    ))
}
