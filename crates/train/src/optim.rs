//! AdamW with decoupled weight decay, global-norm gradient clipping, and
//! state that can be saved and restored exactly (checkpoints).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// AdamW hyper-parameters (PyTorch's defaults except the weight decay).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator guard.
    pub eps: f64,
    /// Decoupled weight decay (applied as `p ← p − lr·wd·p`).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
    decay: bool,
}

/// The optimiser over a fixed list of named parameters.
pub struct AdamW {
    config: AdamWConfig,
    slots: Vec<Slot>,
    step: u64,
}

impl std::fmt::Debug for AdamW {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdamW")
            .field("config", &self.config)
            .field("params", &self.slots.len())
            .field("step", &self.step)
            .finish()
    }
}

impl AdamW {
    /// An optimiser with zero moments for `params`.
    pub fn new(params: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
        let slots = params
            .into_iter()
            .map(|(name, var)| {
                let z = var.as_tensor().zeros_like()?;
                Ok(Slot {
                    name,
                    m: z.clone(),
                    v: z,
                    var,
                    decay: true,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config,
            slots,
            step: 0,
        })
    }

    /// Leaves the parameters for which `skip(name)` holds out of weight
    /// decay (norm scales and biases in full fine-tuning).
    pub fn without_decay(mut self, skip: impl Fn(&str) -> bool) -> Self {
        for s in &mut self.slots {
            s.decay = !skip(&s.name);
        }
        self
    }

    /// Updates done so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Applies one update with learning rate `lr` from `grads` (already
    /// averaged and clipped). Parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &HashMap<String, Tensor>, lr: f64) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        for slot in &mut self.slots {
            let Some(g) = grads.get(&slot.name) else {
                continue;
            };
            if fused_step(slot, g, c, lr, bc1, bc2)? {
                continue;
            }
            slot.m = ((&slot.m * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            slot.v = ((&slot.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let m_hat = (&slot.m / bc1)?;
            let v_hat = (&slot.v / bc2)?;
            let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
            let p = slot.var.as_tensor();
            let mut next = (p - (update * lr)?)?;
            if c.weight_decay > 0.0 && slot.decay {
                next = (next - (p * (lr * c.weight_decay))?)?;
            }
            slot.var.set(&next)?;
        }
        Ok(())
    }

    /// Writes the moments and step to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut map = HashMap::new();
        for s in &self.slots {
            map.insert(format!("{}.m", s.name), s.m.to_device(&Device::Cpu)?);
            map.insert(format!("{}.v", s.name), s.v.to_device(&Device::Cpu)?);
        }
        map.insert(
            "__step__".to_string(),
            Tensor::new(&[self.step as f64], &Device::Cpu)?,
        );
        candle_core::safetensors::save(&map, path)?;
        Ok(())
    }

    /// Restores what [`AdamW::save`] wrote; every parameter must be present.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let mut map = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| Error::bad_file(path, e.to_string()))?;
        for s in &mut self.slots {
            let device = s.var.device().clone();
            for (suffix, target) in [("m", &mut s.m), ("v", &mut s.v)] {
                let key = format!("{}.{suffix}", s.name);
                let t = map.remove(&key).ok_or_else(|| {
                    Error::bad_file(path, format!("optimizer state has no {key}"))
                })?;
                if t.dims() != target.dims() {
                    return Err(Error::bad_file(
                        path,
                        format!(
                            "{key} has shape {:?}, expected {:?}",
                            t.dims(),
                            target.dims()
                        ),
                    ));
                }
                *target = t.to_dtype(DType::F32)?.to_device(&device)?;
            }
        }
        let step = map
            .get("__step__")
            .ok_or_else(|| Error::bad_file(path, "optimizer state has no step"))?
            .to_vec1::<f64>()?;
        self.step = step.first().copied().unwrap_or(0.0) as u64;
        Ok(())
    }
}

/// Elements below which the fused update runs on one thread.
const PARALLEL_MIN: usize = 1 << 16;

/// One AdamW update of an f32 CPU parameter in a single pass over the
/// parameter, gradient and moments (split over threads), instead of a dozen
/// whole-tensor operations — the optimiser step of full fine-tuning touches
/// every weight of the model. Returns `false` (nothing done) for other
/// dtypes and devices.
fn fused_step(
    slot: &mut Slot,
    g: &Tensor,
    c: AdamWConfig,
    lr: f64,
    bc1: f64,
    bc2: f64,
) -> Result<bool> {
    let p = slot.var.as_tensor();
    let f32_cpu = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu();
    if ![p, g, &slot.m, &slot.v].into_iter().all(f32_cpu) || g.dims() != p.dims() {
        return Ok(false);
    }
    let mut pv: Vec<f32> = p.flatten_all()?.to_vec1()?;
    let gv: Vec<f32> = g.flatten_all()?.to_vec1()?;
    let mut mv: Vec<f32> = slot.m.flatten_all()?.to_vec1()?;
    let mut vv: Vec<f32> = slot.v.flatten_all()?.to_vec1()?;
    let (b1, b2, eps) = (c.beta1 as f32, c.beta2 as f32, c.eps as f32);
    let (step, decay) = (
        lr as f32,
        if slot.decay {
            (lr * c.weight_decay) as f32
        } else {
            0.0
        },
    );
    let (bc1, bc2) = (bc1 as f32, bc2 as f32);
    let update = |p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| {
        for i in 0..p.len() {
            m[i] = m[i] * b1 + g[i] * (1.0 - b1);
            v[i] = v[i] * b2 + g[i] * g[i] * (1.0 - b2);
            let u = (m[i] / bc1) / ((v[i] / bc2).sqrt() + eps);
            p[i] = p[i] - u * step - p[i] * decay;
        }
    };
    let n = pv.len();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    if n < PARALLEL_MIN || threads == 1 {
        update(&mut pv, &gv, &mut mv, &mut vv);
    } else {
        let chunk = n.div_ceil(threads);
        std::thread::scope(|s| {
            for (((p, g), m), v) in pv
                .chunks_mut(chunk)
                .zip(gv.chunks(chunk))
                .zip(mv.chunks_mut(chunk))
                .zip(vv.chunks_mut(chunk))
            {
                s.spawn(move || update(p, g, m, v));
            }
        });
    }
    let (dims, device) = (p.dims().to_vec(), p.device().clone());
    slot.m = Tensor::from_vec(mv, dims.as_slice(), &device)?;
    slot.v = Tensor::from_vec(vv, dims.as_slice(), &device)?;
    slot.var
        .set(&Tensor::from_vec(pv, dims.as_slice(), &device)?)?;
    Ok(true)
}

/// Gradients of `params` from `grads`, by name, summed into `acc`
/// (gradient accumulation).
pub fn accumulate(
    acc: &mut HashMap<String, Tensor>,
    params: &[(String, Var)],
    grads: &GradStore,
) -> Result<()> {
    for (name, var) in params {
        if let Some(g) = grads.get(var.as_tensor()) {
            let g = g.detach();
            let sum = match acc.remove(name) {
                Some(prev) => (prev + g)?,
                None => g,
            };
            acc.insert(name.clone(), sum);
        }
    }
    Ok(())
}

/// Scales every gradient by `factor` (averaging over micro-batches).
pub fn scale_all(grads: &mut HashMap<String, Tensor>, factor: f64) -> Result<()> {
    for g in grads.values_mut() {
        *g = (&*g * factor)?;
    }
    Ok(())
}

/// The global L2 norm of all gradients; when above `max_norm` (> 0) every
/// gradient is scaled down to it. Returns the norm before clipping.
pub fn clip_global_norm(grads: &mut HashMap<String, Tensor>, max_norm: f64) -> Result<f64> {
    let mut total = 0f64;
    for g in grads.values() {
        total += g
            .sqr()?
            .sum_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
    }
    let norm = total.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        scale_all(grads, max_norm / (norm + 1e-6))?;
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AdamW minimises a quadratic; the first step moves each coordinate by
    /// about `lr` (the bias-corrected update is ±1).
    #[test]
    fn minimises_a_quadratic() -> Result<()> {
        let target = Tensor::new(&[3f32, -2.0], &Device::Cpu)?;
        let x = Var::zeros(2, DType::F32, &Device::Cpu)?;
        let params = vec![("x".to_string(), x.clone())];
        let mut opt = AdamW::new(params.clone(), AdamWConfig::default())?;
        for i in 0..500 {
            let loss = (x.as_tensor() - &target)?.sqr()?.sum_all()?;
            let grads = loss.backward()?;
            let mut acc = HashMap::new();
            accumulate(&mut acc, &params, &grads)?;
            opt.step(&acc, 0.05)?;
            if i == 0 {
                let v = x.as_tensor().to_vec1::<f32>()?;
                assert!(
                    (v[0] - 0.05).abs() < 1e-4 && (v[1] + 0.05).abs() < 1e-4,
                    "{v:?}"
                );
            }
        }
        let v = x.as_tensor().to_vec1::<f32>()?;
        assert!(
            (v[0] - 3.0).abs() < 0.05 && (v[1] + 2.0).abs() < 0.05,
            "{v:?}"
        );
        Ok(())
    }

    /// The fused CPU update equals the whole-tensor formulation (which other
    /// devices use), weight decay and its exclusion included.
    #[test]
    fn fused_update_matches_the_tensor_formulation() -> Result<()> {
        let cfg = AdamWConfig {
            weight_decay: 0.1,
            ..AdamWConfig::default()
        };
        let dev = Device::Cpu;
        let g = Tensor::randn(0f32, 1.0, (3, 70_000), &dev)?;
        for decay in [true, false] {
            let x = Var::randn(0f32, 1.0, (3, 70_000), &dev)?;
            let mut fused = Slot {
                name: "x".into(),
                var: x.clone(),
                m: x.as_tensor().zeros_like()?,
                v: x.as_tensor().zeros_like()?,
                decay,
            };
            let start = x.as_tensor().copy()?;
            assert!(fused_step(&mut fused, &g, cfg, 0.01, 0.1, 0.001)?);
            let m = (&g * 0.1)?;
            let v = (g.sqr()? * 0.001)?;
            let u = ((&m / 0.1)? / ((&v / 0.001)?.sqrt()? + 1e-8)?)?;
            let mut want = (&start - (u * 0.01)?)?;
            if decay {
                want = (want - (&start * 0.001)?)?;
            }
            let diff = (x.as_tensor() - want)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            assert!(diff < 1e-6, "decay {decay}: {diff}");
            let dm = (&fused.m - m)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(dm < 1e-6, "{dm}");
        }
        Ok(())
    }

    #[test]
    fn clipping_caps_the_norm() -> Result<()> {
        let mut g = HashMap::new();
        g.insert("a".to_string(), Tensor::new(&[3f32, 4.0], &Device::Cpu)?);
        let n = clip_global_norm(&mut g, 1.0)?;
        assert!((n - 5.0).abs() < 1e-6);
        let after = g["a"].to_vec1::<f32>()?;
        assert!((after[0] - 0.6).abs() < 1e-4 && (after[1] - 0.8).abs() < 1e-4);
        Ok(())
    }

    #[test]
    fn state_round_trips() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let x = Var::new(&[1f32, 2.0], &Device::Cpu)?;
        let params = vec![("x".to_string(), x.clone())];
        let mut opt = AdamW::new(params.clone(), AdamWConfig::default())?;
        let mut g = HashMap::new();
        g.insert("x".to_string(), Tensor::new(&[0.5f32, -1.0], &Device::Cpu)?);
        opt.step(&g, 0.1)?;
        let path = dir.path().join("opt.safetensors");
        opt.save(&path)?;
        let mut other = AdamW::new(params, AdamWConfig::default())?;
        other.load(&path)?;
        assert_eq!(other.steps(), 1);
        assert_eq!(
            other.slots[0].v.to_vec1::<f32>()?,
            opt.slots[0].v.to_vec1::<f32>()?
        );
        Ok(())
    }
}
