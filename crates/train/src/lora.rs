//! LoRA: a trainable low-rank update `B·A` beside a frozen linear layer.
//!
//! [`LoraLinear`] wraps any [`Linear`] (dense or GGUF-quantized — the latter
//! is QLoRA), so the model code is the same for inference, adapters and
//! training. [`LoraWrapper`] plugs into the loader and creates one adapter
//! per targeted module; its [`AdapterSet`] holds the trainable tensors.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tuneup_models::LinearWrapper;
use tuneup_nn::frozen_lora::{add_lora_update, frozen_lora_matmul, Dropout, LoraFactors};
use tuneup_nn::swiglu::silu_mul;
use tuneup_nn::swiglu_lora::frozen_lora_silu_mul;
use tuneup_nn::{Linear, LinearRef};

use crate::error::{Error, Result};

/// The modules PEFT calls "all-linear" for decoder models: every projection
/// except the output head.
pub const ALL_LINEAR: &[&str] = &[
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "qkv_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "gate_up_proj",
];

/// Hyper-parameters of a LoRA adapter (PEFT's `LoraConfig` subset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    /// Rank `r` of the update.
    pub rank: usize,
    /// Scale numerator: the update is multiplied by `alpha / r`
    /// (or `alpha / √r` with rsLoRA).
    pub alpha: f64,
    /// Dropout on the adapter's input while training.
    pub dropout: f32,
    /// Which modules get an adapter: names (`q_proj`, matched against the
    /// last path component or a path suffix), glob patterns over the whole
    /// path (`model.layers.1*.mlp.*`), or `all-linear`.
    pub target_modules: Vec<String>,
    /// rsLoRA scaling `alpha / √r`.
    pub use_rslora: bool,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 16,
            alpha: 32.0,
            dropout: 0.05,
            target_modules: ALL_LINEAR.iter().map(|s| s.to_string()).collect(),
            use_rslora: false,
        }
    }
}

impl LoraConfig {
    /// The factor applied to `B·A·x`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            return Err(Error::Config("lora rank must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "lora dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if self.target_modules.is_empty() {
            return Err(Error::Config("lora target_modules is empty".into()));
        }
        Ok(())
    }

    /// Whether `module` (an HF path like `model.layers.0.self_attn.q_proj`)
    /// gets an adapter.
    pub fn targets(&self, module: &str) -> bool {
        self.target_modules.iter().any(|t| {
            if t == "all-linear" {
                let last = module.rsplit('.').next().unwrap_or(module);
                ALL_LINEAR.contains(&last)
            } else if t.contains('*') || t.contains('?') {
                glob_match(t, module)
            } else {
                module == t || module.ends_with(&format!(".{t}"))
            }
        })
    }
}

/// `*` matches any run of characters, `?` one character.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Switches every adapter of a model between inference and training.
///
/// In training mode the adapters use their trainable variables (a gradient
/// graph is recorded) and apply dropout with masks that are a function of
/// (micro-batch key, module), so the forward pass recomputed for activation
/// checkpointing draws the same mask. In inference mode (the default) they
/// use plain views of the same storage: no graph, no dropout.
#[derive(Debug, Default)]
pub struct TrainSwitch {
    key: Mutex<Option<u64>>,
}

impl TrainSwitch {
    /// Training mode with dropout masks derived from `key` (one per
    /// micro-batch), or inference mode with `None`.
    pub fn set(&self, key: Option<u64>) {
        *self.key.lock().expect("train switch lock") = key;
    }

    /// Runs `f` in training mode with dropout key `key`, back in inference
    /// mode afterwards (also when `f` fails).
    pub fn training<T>(&self, key: u64, f: impl FnOnce() -> T) -> T {
        self.set(Some(key));
        let out = f();
        self.set(None);
        out
    }

    fn key(&self) -> Option<u64> {
        *self.key.lock().expect("train switch lock")
    }
}

/// A frozen base layer plus the update `scale · B·A`.
pub struct LoraLinear {
    module: String,
    base: LinearRef,
    pair: LoraPair,
    a: Tensor,
    b: Tensor,
    scale: f64,
    dropout: f32,
    control: Arc<TrainSwitch>,
}

impl fmt::Debug for LoraLinear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoraLinear")
            .field("module", &self.module)
            .field("base", &self.base)
            .field("rank", &self.a.dims()[0])
            .field("scale", &self.scale)
            .finish()
    }
}

impl LoraLinear {
    /// The adapted module's path.
    pub fn module(&self) -> &str {
        &self.module
    }

    /// The dropout of a training pass with mask key `key` (none at 0).
    fn dropout(&self, key: u64) -> Option<Dropout> {
        (self.dropout > 0.0).then(|| Dropout {
            seed: key ^ stable_hash(&self.module),
            keep: 1.0 - self.dropout,
        })
    }
}

impl LoraLinear {
    /// The factors in use: the trained variables (and this step's dropout)
    /// while training, else the adapter as loaded or last synced.
    fn factors(&self) -> LoraFactors {
        let (a, b, dropout) = match self.control.key() {
            Some(key) => (
                self.pair.a.as_tensor(),
                self.pair.b.as_tensor(),
                self.dropout(key),
            ),
            None => (&self.a, &self.b, None),
        };
        LoraFactors {
            a: a.clone(),
            b: b.clone(),
            scale: self.scale,
            dropout,
        }
    }

    /// `y` plus the base layer's bias, if it has one (the training ops
    /// compute the products only).
    fn add_bias(&self, y: Tensor) -> candle_core::Result<Tensor> {
        match self.base.bias() {
            Some(bias) => y.broadcast_add(&bias.to_dtype(y.dtype())?),
            None => Ok(y),
        }
    }
}

impl Linear for LoraLinear {
    fn forward_silu_mul(&self, gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
        match self.base.frozen_weight() {
            // Training on a frozen base: the activation inside the op.
            Some(weight) if gate.track_op() || up.track_op() => {
                self.add_bias(frozen_lora_silu_mul(gate, up, weight, &self.factors())?)
            }
            _ => self.forward(&silu_mul(gate, up)?),
        }
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let lora = self.factors();
        if x.track_op() {
            if let Some(weight) = self.base.frozen_weight() {
                // Training: base product and LoRA update as one op.
                return self.add_bias(frozen_lora_matmul(x, weight, &lora)?);
            }
        }
        add_lora_update(&self.base.forward(x)?, x, &lora)
    }
    fn in_features(&self) -> usize {
        self.base.in_features()
    }
    fn out_features(&self) -> usize {
        self.base.out_features()
    }
    fn dense_weight(&self) -> candle_core::Result<Tensor> {
        let delta = (self.b.matmul(&self.a)? * self.scale)?;
        self.base.dense_weight()? + delta
    }
    fn bias(&self) -> Option<&Tensor> {
        self.base.bias()
    }
    fn storage_kind(&self) -> String {
        format!("{}+LoRA(r={})", self.base.storage_kind(), self.a.dims()[0])
    }
}

/// The two factors of one module's adapter, in the model's row order.
#[derive(Debug, Clone)]
pub struct LoraPair {
    /// `A`: `(r, in)`.
    pub a: Var,
    /// `B`: `(out, r)`.
    pub b: Var,
}

/// Every adapter of a model, by module path.
#[derive(Debug, Clone, Default)]
pub struct AdapterSet {
    /// The adapters, sorted by module path.
    pub modules: BTreeMap<String, LoraPair>,
}

impl AdapterSet {
    /// The trainable tensors as `(name, var)`, `A` then `B` per module.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        self.modules
            .iter()
            .flat_map(|(m, p)| {
                [
                    (format!("{m}.lora_A"), p.a.clone()),
                    (format!("{m}.lora_B"), p.b.clone()),
                ]
            })
            .collect()
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.modules
            .values()
            .map(|p| p.a.as_tensor().elem_count() + p.b.as_tensor().elem_count())
            .sum()
    }
}

/// Where the initial factors come from.
#[derive(Debug, Clone)]
pub enum LoraInit {
    /// PEFT's default: `A` Kaiming-uniform (`±1/√in`), `B` zero, from a seed.
    Fresh {
        /// Seed of `A`.
        seed: u64,
    },
    /// Given factors by module path (a saved adapter), already in the
    /// model's row order.
    Given(BTreeMap<String, (Tensor, Tensor)>),
}

/// Creates a [`LoraLinear`] for every targeted module at load time.
pub struct LoraWrapper {
    config: LoraConfig,
    device: Device,
    init: LoraInit,
    control: Arc<TrainSwitch>,
    set: Mutex<AdapterSet>,
}

impl LoraWrapper {
    /// A wrapper for `config` with factors from `init`, on `device` (the
    /// model's).
    pub fn new(config: LoraConfig, init: LoraInit, device: &Device) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            device: device.clone(),
            init,
            control: Arc::new(TrainSwitch::default()),
            set: Mutex::new(AdapterSet::default()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// The training switch shared by every adapter.
    pub fn train_switch(&self) -> Arc<TrainSwitch> {
        self.control.clone()
    }

    /// The adapters created so far (all of them once the model is loaded).
    pub fn adapters(&self) -> AdapterSet {
        self.set.lock().expect("adapter lock").clone()
    }

    fn factors(&self, module: &str, base: &LinearRef, device: &Device) -> Result<(Tensor, Tensor)> {
        let (inp, out, r) = (base.in_features(), base.out_features(), self.config.rank);
        match &self.init {
            LoraInit::Fresh { seed } => {
                let mut rng =
                    rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(stable_hash(module)));
                let bound = 1.0 / (inp as f32).sqrt();
                let a: Vec<f32> = (0..r * inp)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                Ok((
                    Tensor::from_vec(a, (r, inp), device)?,
                    Tensor::zeros((out, r), DType::F32, device)?,
                ))
            }
            LoraInit::Given(map) => {
                let (a, b) = map.get(module).ok_or_else(|| {
                    Error::Config(format!("the adapter has no weights for module {module}"))
                })?;
                if a.dims() != [r, inp] || b.dims() != [out, r] {
                    return Err(Error::Config(format!(
                        "adapter for {module}: A {:?} and B {:?} do not fit a ({out}, {inp}) layer at rank {r}",
                        a.dims(),
                        b.dims()
                    )));
                }
                Ok((
                    a.to_dtype(DType::F32)?.to_device(device)?,
                    b.to_dtype(DType::F32)?.to_device(device)?,
                ))
            }
        }
    }
}

impl LinearWrapper for LoraWrapper {
    fn wrap(&self, module: &str, base: LinearRef) -> tuneup_models::Result<LinearRef> {
        if !self.config.targets(module) {
            return Ok(base);
        }
        let (a, b) = self
            .factors(module, &base, &self.device)
            .map_err(|e| tuneup_models::Error::Tensor(candle_core::Error::Msg(e.to_string())))?;
        let a = Var::from_tensor(&a)?;
        let b = Var::from_tensor(&b)?;
        let pair = LoraPair { a, b };
        let layer = LoraLinear {
            module: module.to_string(),
            base,
            // Plain views of the same storage: the optimiser updates the
            // vars in place and the layer sees it, but inference with a
            // loaded adapter does not record a gradient graph.
            a: pair.a.as_detached_tensor(),
            b: pair.b.as_detached_tensor(),
            pair: pair.clone(),
            scale: self.config.scale(),
            dropout: self.config.dropout,
            control: self.control.clone(),
        };
        self.set
            .lock()
            .expect("adapter lock")
            .modules
            .insert(module.to_string(), pair);
        Ok(Arc::new(layer))
    }
}

/// FNV-1a: a hash that is the same in every build and on every machine.
pub(crate) fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_matching() {
        let c = LoraConfig {
            target_modules: vec!["q_proj".into(), "model.layers.1*.mlp.*".into()],
            ..LoraConfig::default()
        };
        assert!(c.targets("model.layers.0.self_attn.q_proj"));
        assert!(!c.targets("model.layers.0.self_attn.k_proj"));
        assert!(c.targets("model.layers.12.mlp.down_proj"));
        assert!(!c.targets("model.layers.2.mlp.down_proj"));
        let all = LoraConfig {
            target_modules: vec!["all-linear".into()],
            ..LoraConfig::default()
        };
        assert!(all.targets("model.layers.3.mlp.gate_proj"));
        assert!(!all.targets("lm_head"));
    }

    #[test]
    fn rslora_scale() {
        let c = LoraConfig {
            rank: 16,
            alpha: 32.0,
            use_rslora: true,
            ..LoraConfig::default()
        };
        assert!((c.scale() - 8.0).abs() < 1e-12);
    }
}
