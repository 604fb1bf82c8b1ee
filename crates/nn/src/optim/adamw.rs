//! `torch.optim.AdamW`, operation for operation, with a state that saves and loads exactly.
//!
//! [`AdamW`] is `torch.optim.AdamW`'s single-tensor path (what torch runs on the CPU): per
//! parameter with a gradient, `step += 1`, `p *= 1 − lr·wd`, `m = m + (1 − β₁)(g − m)`,
//! `v = β₂·v + (1 − β₂)·g·g`, `denom = √v / √(1 − β₂^step) + eps`,
//! `p += (−lr / (1 − β₁^step))·m / denom`; the scalar factors are computed in f64 as Python
//! does, the tensor arithmetic in the parameter's dtype. Its state (per-parameter step counts
//! and moments) saves and loads exactly, so a resumed run continues bit for bit.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use brainrecon_core::fs::write_bytes_atomic;
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Storage, Tensor, Var};

use crate::error::{ModelError, Result};
use crate::kernels::simd::widest_fn;
use crate::params::{
    parse_safetensors, safetensors_metadata, serialize_safetensors, view_to_tensor, HostTensor,
    Parameters,
};

// ---------------------------------------------------------------------------------------------
// AdamW
// ---------------------------------------------------------------------------------------------

/// `torch.optim.AdamW` (decoupled weight decay, bias-corrected moments, no AMSGrad), with a
/// state that saves and loads exactly.
#[derive(Clone, Debug)]
pub struct AdamW {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Calls of [`AdamW::step`] so far.
    step: u64,
    /// First moments (`exp_avg`) by parameter name.
    m: BTreeMap<String, Tensor>,
    /// Second moments (`exp_avg_sq`) by parameter name.
    v: BTreeMap<String, Tensor>,
    /// Per-parameter step counts (torch's `state["step"]`): a parameter without a gradient in
    /// a step is not counted.
    param_steps: BTreeMap<String, u64>,
}

/// The one metadata entry of an optimizer file (one entry, so that the file's bytes do not
/// depend on a hash map's order).
const ADAMW_META_KEY: &str = "brainrecon_adamw";
const ADAMW_VERSION: u64 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct AdamWScalars {
    version: u64,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    step: u64,
    param_steps: BTreeMap<String, u64>,
}

impl AdamW {
    /// An optimiser with no state yet. Checks the hyper-parameters as torch does.
    pub fn new(lr: f64, beta1: f64, beta2: f64, eps: f64, weight_decay: f64) -> Result<Self> {
        let opt = AdamW {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            step: 0,
            m: BTreeMap::new(),
            v: BTreeMap::new(),
            param_steps: BTreeMap::new(),
        };
        opt.validate_hyperparameters()?;
        Ok(opt)
    }

    /// torch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    pub fn with_defaults(lr: f64) -> Result<Self> {
        Self::new(lr, 0.9, 0.999, 1e-8, 0.01)
    }

    fn validate_hyperparameters(&self) -> Result<()> {
        let bad = |what: &str, v: f64| {
            Err(ModelError::Invalid(format!(
                "AdamW: invalid {what} {v} (torch requires lr >= 0, eps >= 0, 0 <= beta < 1, \
                 weight_decay >= 0, all finite)"
            )))
        };
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad("learning rate", self.lr);
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return bad("eps", self.eps);
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return bad("beta1", self.beta1);
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return bad("beta2", self.beta2);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", self.weight_decay);
        }
        Ok(())
    }

    /// Sets the learning rate for the following steps (a schedule calls this before each
    /// step, as torch's schedulers set `param_groups[i]["lr"]`).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Calls of [`AdamW::step`] so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// torch's per-parameter `state["step"]` (None before the parameter's first gradient).
    pub fn param_step(&self, name: &str) -> Option<u64> {
        self.param_steps.get(name).copied()
    }

    /// The first moment (`exp_avg`) of a parameter.
    pub fn exp_avg(&self, name: &str) -> Option<&Tensor> {
        self.m.get(name)
    }

    /// The second moment (`exp_avg_sq`) of a parameter.
    pub fn exp_avg_sq(&self, name: &str) -> Option<&Tensor> {
        self.v.get(name)
    }

    /// One update of every parameter that has a gradient in `grads` (the others, and their
    /// state, are left alone, as torch skips parameters whose `.grad` is None). All updates
    /// are computed before any parameter changes, so an error leaves everything as it was.
    pub fn step(&mut self, params: &Parameters, grads: &GradStore) -> Result<()> {
        self.validate_hyperparameters()?;
        struct Update<'a> {
            name: &'a str,
            var: &'a Var,
            /// The new value, unless updated in place.
            param: Option<Tensor>,
            m: Tensor,
            v: Tensor,
            step: u64,
        }
        let mut updates = Vec::new();
        for (name, var) in &params.vars {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let dtype = var.dtype();
            let device = var.device();
            if grad.dims() != var.dims() {
                return Err(ModelError::Invalid(format!(
                    "AdamW: the gradient of `{name}` has shape {:?}, the parameter {:?}",
                    grad.dims(),
                    var.dims()
                )));
            }
            let g = grad.detach().to_dtype(dtype)?;
            let state = |map: &BTreeMap<String, Tensor>| -> Result<Tensor> {
                match map.get(name.as_str()) {
                    Some(t) => {
                        if t.dims() != var.dims() {
                            return Err(ModelError::Invalid(format!(
                                "AdamW: the optimizer state of `{name}` has shape {:?}, the \
                                 parameter {:?}",
                                t.dims(),
                                var.dims()
                            )));
                        }
                        Ok(t.to_device(device)?.to_dtype(dtype)?)
                    }
                    None => Ok(var.as_tensor().detach().zeros_like()?),
                }
            };
            let (m, v) = (state(&self.m)?, state(&self.v)?);
            let step = self.param_steps.get(name).copied().unwrap_or(0) + 1;
            let f32_cpu = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu();
            let param = var.as_tensor();
            if [param, &g, &m, &v].into_iter().all(f32_cpu)
                && [param, &m, &v].iter().all(|t| t.is_contiguous())
            {
                // In place: the moments (the state's own tensors, or new zeros) and the
                // parameter's storage.
                self.update_f32_cpu_in_place(param, &g, &m, &v, step)?;
                updates.push(Update {
                    name,
                    var,
                    param: None,
                    m,
                    v,
                    step,
                });
                continue;
            }
            let (param, m, v) = self.update_tensors(&param.detach(), &g, &m, &v, step)?;
            updates.push(Update {
                name,
                var,
                param: Some(param),
                m,
                v,
                step,
            });
        }
        for u in updates {
            if let Some(param) = &u.param {
                u.var.set(param)?;
            }
            self.m.insert(u.name.to_string(), u.m);
            self.v.insert(u.name.to_string(), u.v);
            self.param_steps.insert(u.name.to_string(), u.step);
        }
        self.step += 1;
        Ok(())
    }

    /// torch's `_single_tensor_adam` with `decoupled_weight_decay`, for one parameter, in tensor
    /// operations, for any dtype and device.
    fn update_tensors(
        &self,
        p: &Tensor,
        g: &Tensor,
        m: &Tensor,
        v: &Tensor,
        step: u64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        // param.mul_(1 - lr * weight_decay)
        let p = if self.weight_decay != 0.0 {
            (p * (1.0 - self.lr * self.weight_decay))?
        } else {
            p.clone()
        };
        let StepScalars {
            w,
            step_size,
            bias_correction2_sqrt,
        } = self.step_scalars(step);
        // exp_avg.lerp_(grad, 1 - beta1): torch's lerp takes `self + w (end - self)` for
        // |w| < 0.5 and `end - (end - self)(1 - w)` otherwise.
        let diff = (g - m)?;
        let m = if w.abs() < 0.5 {
            (m + (diff * w)?)?
        } else {
            (g - (diff * (1.0 - w))?)?
        };
        // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        let v = ((v * self.beta2)? + ((g * (1.0 - self.beta2))? * g)?)?;
        // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps): a true division by
        // the scalar (candle's `tensor / f64` multiplies by the reciprocal instead).
        let bc2 = Tensor::full(bias_correction2_sqrt, (), p.device())?.to_dtype(p.dtype())?;
        let denom = (v.sqrt()?.broadcast_div(&bc2)? + self.eps)?;
        // param.addcdiv_(exp_avg, denom, value=-step_size): self + value * t1 / t2
        let p = (&p + ((&m * -step_size)? / &denom)?)?;
        Ok((p, m, v))
    }

    /// The scalars of an update at `step`, in Python floats as torch computes them.
    fn step_scalars(&self, step: u64) -> StepScalars {
        // the step is torch's float32 step tensor read back with .item()
        let t = step as f32 as f64;
        let bias_correction1 = 1.0 - self.beta1.powf(t);
        let bias_correction2 = 1.0 - self.beta2.powf(t);
        StepScalars {
            w: 1.0 - self.beta1,
            step_size: self.lr / bias_correction1,
            bias_correction2_sqrt: bias_correction2.powf(0.5),
        }
    }

    /// [`AdamW::update`] for f32 CPU tensors in one pass over memory instead of about fifteen,
    /// in place (the parameter's storage, which its `Var` shares, and the two moments; no
    /// copies): per element the same f32 operations in the same order as the tensor version
    /// (candle's `tensor * f64` is `x · f32(k) + 0`, `+ eps` is `x · 1 + f32(eps)`), so the
    /// same bits.
    fn update_f32_cpu_in_place(
        &self,
        p: &Tensor,
        g: &Tensor,
        m: &Tensor,
        v: &Tensor,
        step: u64,
    ) -> Result<()> {
        let StepScalars {
            w,
            step_size,
            bias_correction2_sqrt,
        } = self.step_scalars(step);
        let k = AdamWConstants {
            decay: (self.weight_decay != 0.0).then_some((1.0 - self.lr * self.weight_decay) as f32),
            lerp_from_m: w.abs() < 0.5,
            w: w as f32,
            one_minus_w: (1.0 - w) as f32,
            beta2: self.beta2 as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            bc2_sqrt: bias_correction2_sqrt as f32,
            eps: self.eps as f32,
            neg_step_size: (-step_size) as f32,
        };
        let g = g.contiguous()?;
        let (storage, layout) = g.storage_and_layout();
        let grad = match (&*storage, layout.contiguous_offsets()) {
            (Storage::Cpu(CpuStorage::F32(values)), Some((start, end))) => &values[start..end],
            _ => {
                return Err(ModelError::Invalid(
                    "AdamW: f32 CPU gradient expected".into(),
                ))
            }
        };
        // Three distinct storages, each locked for writing in turn, nested.
        m.inplace_op1(&InPlace::new(|ms: &mut [f32]| {
            v.inplace_op1(&InPlace::new(|vs: &mut [f32]| {
                p.inplace_op1(&InPlace::new(|ps: &mut [f32]| {
                    if ps.len() != grad.len() || ms.len() != grad.len() || vs.len() != grad.len() {
                        candle_core::bail!("AdamW: parameter, moments and gradient differ in size");
                    }
                    adamw_f32(&k, [&mut *ps, &mut *ms, &mut *vs], grad);
                    Ok(())
                }))
            }))
        }))?;
        Ok(())
    }

    /// [`AdamW::update_f32_cpu_in_place`] on copies: the new parameter and moments.
    #[cfg(test)]
    fn update_f32_cpu(
        &self,
        p: &Tensor,
        g: &Tensor,
        m: &Tensor,
        v: &Tensor,
        step: u64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (p, m, v) = (p.copy()?, m.copy()?, v.copy()?);
        self.update_f32_cpu_in_place(&p, g, &m, &v, step)?;
        Ok((p, m, v))
    }

    /// Checks that the state belongs to `params`: every parameter with state exists there,
    /// with the same shape.
    pub fn validate_against(&self, params: &Parameters) -> Result<()> {
        for (name, m) in &self.m {
            match params.get(name) {
                None => {
                    return Err(ModelError::Invalid(format!(
                        "AdamW state has parameter `{name}`, which the model does not have"
                    )))
                }
                Some(var) if var.dims() != m.dims() => {
                    return Err(ModelError::Invalid(format!(
                        "AdamW state of `{name}` has shape {:?}, the parameter {:?}",
                        m.dims(),
                        var.dims()
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Writes the state atomically as safetensors: `exp_avg.<name>` and `exp_avg_sq.<name>`
    /// (f32, or f64 for f64 parameters: exact), and the hyper-parameters, step count and
    /// per-parameter step counts as JSON in the metadata (key `brainrecon_adamw`). The same
    /// state always gives the same bytes.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut tensors = Vec::with_capacity(2 * self.m.len());
        for (name, m) in &self.m {
            let v = self.v.get(name).ok_or_else(|| {
                ModelError::Invalid(format!("AdamW: `{name}` has exp_avg but no exp_avg_sq"))
            })?;
            tensors.push((format!("exp_avg.{name}"), HostTensor::from_tensor(m)?));
            tensors.push((format!("exp_avg_sq.{name}"), HostTensor::from_tensor(v)?));
        }
        let scalars = AdamWScalars {
            version: ADAMW_VERSION,
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            step: self.step,
            param_steps: self.param_steps.clone(),
        };
        let mut meta = HashMap::new();
        meta.insert(
            ADAMW_META_KEY.to_string(),
            serde_json::to_string(&scalars)
                .map_err(|e| ModelError::Invalid(format!("AdamW state: {e}")))?,
        );
        let bytes = serialize_safetensors(&tensors, meta, path)?;
        Ok(write_bytes_atomic(path, &bytes)?)
    }

    /// Reads a state written by [`AdamW::save`] (moments on the CPU; a step moves them to
    /// each parameter's device and dtype). Errors name the file and what is wrong.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        let meta = safetensors_metadata(&bytes, path)?;
        let invalid = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            what: "AdamW state".into(),
            message,
        };
        let state = meta.get(ADAMW_META_KEY).ok_or_else(|| {
            invalid(format!(
                "the metadata has no `{ADAMW_META_KEY}` entry: not an optimizer state written \
                 by AdamW::save"
            ))
        })?;
        let scalars: AdamWScalars = serde_json::from_str(state)
            .map_err(|e| invalid(format!("metadata `{ADAMW_META_KEY}` is not valid: {e}")))?;
        if scalars.version != ADAMW_VERSION {
            return Err(invalid(format!(
                "state version {}, this build reads version {ADAMW_VERSION}",
                scalars.version
            )));
        }
        let st = parse_safetensors(&bytes, path)?;
        let mut stored: BTreeMap<String, safetensors::tensor::TensorView<'_>> =
            st.tensors().into_iter().collect();
        let mut m = BTreeMap::new();
        let mut v = BTreeMap::new();
        for name in scalars.param_steps.keys() {
            for (prefix, map) in [("exp_avg", &mut m), ("exp_avg_sq", &mut v)] {
                let key = format!("{prefix}.{name}");
                let view = stored
                    .remove(&key)
                    .ok_or_else(|| ModelError::MissingTensor {
                        path: path.to_path_buf(),
                        name: key.clone(),
                    })?;
                map.insert(name.clone(), view_to_tensor(&view, &key, path)?);
            }
            if m[name].dims() != v[name].dims() {
                return Err(ModelError::Shape {
                    path: path.to_path_buf(),
                    name: format!("exp_avg_sq.{name}"),
                    expected: m[name].dims().to_vec(),
                    found: v[name].dims().to_vec(),
                });
            }
        }
        if let Some(extra) = stored.keys().next() {
            return Err(invalid(format!(
                "tensor '{extra}' belongs to no parameter with a step count"
            )));
        }
        let opt = AdamW {
            lr: scalars.lr,
            beta1: scalars.beta1,
            beta2: scalars.beta2,
            eps: scalars.eps,
            weight_decay: scalars.weight_decay,
            step: scalars.step,
            m,
            v,
            param_steps: scalars.param_steps,
        };
        opt.validate_hyperparameters()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(opt)
    }
}

/// [`AdamW::step_scalars`]: the lerp weight `1 − beta1`, `lr / bias_correction1` and
/// `sqrt(bias_correction2)`.
struct StepScalars {
    w: f64,
    step_size: f64,
    bias_correction2_sqrt: f64,
}

/// An in-place op that hands a contiguous f32 CPU tensor's values to a closure.
struct InPlace<F: FnMut(&mut [f32]) -> candle_core::Result<()>>(std::cell::RefCell<F>);

impl<F: FnMut(&mut [f32]) -> candle_core::Result<()>> InPlace<F> {
    fn new(f: F) -> Self {
        Self(std::cell::RefCell::new(f))
    }
}

impl<F: FnMut(&mut [f32]) -> candle_core::Result<()>> InplaceOp1 for InPlace<F> {
    fn name(&self) -> &'static str {
        "brainrecon-adamw-in-place"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        match (storage, layout.contiguous_offsets()) {
            (CpuStorage::F32(values), Some((start, end))) => {
                (self.0.borrow_mut())(&mut values[start..end])
            }
            _ => candle_core::bail!("{}: contiguous f32 expected", self.name()),
        }
    }
}

/// The scalars of one AdamW update, as f32 (see [`AdamW::update_f32_cpu`]).
struct AdamWConstants {
    decay: Option<f32>,
    lerp_from_m: bool,
    w: f32,
    one_minus_w: f32,
    beta2: f32,
    one_minus_beta2: f32,
    bc2_sqrt: f32,
    eps: f32,
    neg_step_size: f32,
}

/// One AdamW update of `[param, exp_avg, exp_avg_sq]` in place from `grad`, element by element.
#[inline(always)]
fn adamw_f32_inline(k: &AdamWConstants, [p, m, v]: [&mut [f32]; 3], g: &[f32]) {
    for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        let p0 = match k.decay {
            Some(d) => *p * d + 0.0,
            None => *p,
        };
        let diff = g - *m;
        *m = match k.lerp_from_m {
            true => *m + (diff * k.w + 0.0),
            false => g - (diff * k.one_minus_w + 0.0),
        };
        *v = (*v * k.beta2 + 0.0) + ((g * k.one_minus_beta2 + 0.0) * g);
        let denom = (v.sqrt() / k.bc2_sqrt) * 1.0 + k.eps;
        *p = p0 + ((*m * k.neg_step_size + 0.0) / denom);
    }
}

widest_fn!(fn adamw_f32(k: &AdamWConstants, pmv: [&mut [f32]; 3], g: &[f32]) = adamw_f32_inline);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    /// The one-pass f32 update gives the tensor version's bits, with and without weight
    /// decay, on both sides of torch's lerp rule, over several steps.
    #[test]
    fn fused_f32_adamw_gives_the_tensor_versions_bits() {
        let dev = Device::Cpu;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut values = |n: usize, scale: f32| -> Tensor {
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    let x: f32 = StandardNormal.sample(&mut rng);
                    x * scale
                })
                .collect();
            Tensor::from_vec(v, (n / 4, 4), &dev).unwrap()
        };
        let bits = |t: &Tensor| -> Vec<u32> {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            v.iter().map(|x| x.to_bits()).collect()
        };
        for (beta1, weight_decay) in [(0.9, 0.01), (0.9, 0.0), (0.3, 0.1)] {
            let opt = AdamW::new(1e-3, beta1, 0.999, 1e-8, weight_decay).unwrap();
            let (mut p, mut m, mut v) = (values(1028, 1.0), values(1028, 0.01), values(1028, 1e-4));
            v = v.abs().unwrap();
            for step in 1..=3 {
                let g = values(1028, 0.1);
                let fused = opt.update_f32_cpu(&p, &g, &m, &v, step).unwrap();
                let plain = opt.update_tensors(&p, &g, &m, &v, step).unwrap();
                assert_eq!(bits(&fused.0), bits(&plain.0), "param, beta1 {beta1}");
                assert_eq!(bits(&fused.1), bits(&plain.1), "exp_avg");
                assert_eq!(bits(&fused.2), bits(&plain.2), "exp_avg_sq");
                (p, m, v) = fused;
            }
        }
    }
}
