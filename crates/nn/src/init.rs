//! Seeded parameter initialisation for any module of this crate.
//!
//! [`init_parameters`] builds a module twice. The first build runs over a recording backend
//! that hands out zeros and notes every parameter's name and shape; the second runs over
//! [`Var`]s holding seeded initial values, so that the module's tensors *are* the variables:
//! gradients computed through the module reach them, and an optimiser step (which writes into
//! the variables in place) changes the module.
//!
//! Initial values follow PyTorch's module defaults, which diffusers' and transformers' models
//! start from, decided by name and shape alone ([`default_init_rules`]). With `module` the name
//! up to the last `.` and `leaf` what follows:
//!
//! - `module.weight` of rank ≥ 2 (`nn.Linear`, `nn.Conv2d`): `kaiming_uniform_(a=√5)`, i.e.
//!   U(−1/√fan_in, 1/√fan_in), `fan_in = shape[1] × ∏ shape[2..]` (input features times the
//!   kernel area);
//! - `module.bias` next to such a weight: U(−1/√fan_in, 1/√fan_in) with that weight's fan_in;
//! - `module.weight` of rank 2 whose module's last segment contains `embedding`
//!   (`token_embedding`, `position_embedding`; not `time_embedding.linear_1`): N(0, 0.02²),
//!   transformers' CLIP initialisation (`initializer_range` 0.02, factor 1);
//! - `module.weight` of rank 1: 1. A one-dimensional weight is the scale of a normalisation
//!   (GroupNorm, LayerNorm; every such name in this crate's modules contains `norm`); its
//!   module has no other weight, so it has no weight of rank ≥ 2;
//! - everything else (norm biases, biases without a weight, other tensors of rank ≤ 1): 0.
//!
//! [`init_parameters_with`] lets the caller change the rule of chosen tensors (zero-initialised
//! output layers, another embedding scale).
//!
//! Values depend only on the seed and the tensor's name, never on the order in which the
//! module asks for its tensors: each name gets its own ChaCha8 stream (key from the seed,
//! stream number the FNV-1a hash of the name). Uniform values are `-b + 2b·u` with
//! `u = (next_u64 >> 11) · 2⁻⁵³`, normal values come from `rand_distr`'s `StandardNormal`, all
//! in f64, rounded once to the parameter dtype. candle's own random generator is never used
//! (it cannot be seeded on the CPU).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{ModelError, Result};
use crate::params::Parameters;
use crate::rng::{chacha, fnv1a64, unit_f64, INIT_DOMAIN};

// ---------------------------------------------------------------------------------------------
// Initialisation rules
// ---------------------------------------------------------------------------------------------

/// How one parameter tensor starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamInit {
    /// Independent U(−bound, bound) values.
    Uniform {
        /// The largest magnitude.
        bound: f64,
    },
    /// Independent N(0, std²) values.
    Normal {
        /// The standard deviation.
        std: f64,
    },
    /// Every element equal to the value.
    Constant(f64),
}

impl ParamInit {
    fn check(&self, name: &str) -> Result<()> {
        let ok = match *self {
            ParamInit::Uniform { bound } => bound.is_finite() && bound >= 0.0,
            ParamInit::Normal { std } => std.is_finite() && std >= 0.0,
            ParamInit::Constant(c) => c.is_finite(),
        };
        if ok {
            Ok(())
        } else {
            Err(ModelError::Invalid(format!(
                "initialisation of parameter `{name}`: {self:?} needs a finite, non-negative \
                 scale"
            )))
        }
    }

    /// `n` values of this rule for the parameter `name` under `seed`.
    fn sample(&self, n: usize, seed: u64, name: &str) -> Vec<f64> {
        match *self {
            ParamInit::Constant(c) => vec![c; n],
            ParamInit::Uniform { bound } => {
                let mut rng = chacha(seed, INIT_DOMAIN, fnv1a64(name.as_bytes()));
                (0..n)
                    .map(|_| -bound + 2.0 * bound * unit_f64(&mut rng))
                    .collect()
            }
            ParamInit::Normal { std } => {
                let mut rng = chacha(seed, INIT_DOMAIN, fnv1a64(name.as_bytes()));
                (0..n)
                    .map(|_| {
                        let z: f64 = StandardNormal.sample(&mut rng);
                        std * z
                    })
                    .collect()
            }
        }
    }
}

/// PyTorch's fan-in of a weight: `shape[1] × ∏ shape[2..]` (0 for rank < 2).
pub fn fan_in(shape: &[usize]) -> usize {
    if shape.len() < 2 {
        return 0;
    }
    shape[1] * shape[2..].iter().product::<usize>()
}

/// The standard deviation of transformers' CLIP embedding initialisation
/// (`initializer_range` 0.02 × `initializer_factor` 1).
pub const EMBEDDING_STD: f64 = 0.02;

fn split_name(name: &str) -> (&str, &str) {
    name.rsplit_once('.').unwrap_or(("", name))
}

fn is_embedding_module(module: &str) -> bool {
    module
        .rsplit('.')
        .next()
        .unwrap_or("")
        .contains("embedding")
}

fn uniform_for_fan_in(fan_in: usize) -> ParamInit {
    ParamInit::Uniform {
        bound: if fan_in == 0 {
            0.0
        } else {
            1.0 / (fan_in as f64).sqrt()
        },
    }
}

/// The default rule of every named tensor (see the module documentation), in the given order.
pub fn default_init_rules(shapes: &[(String, Vec<usize>)]) -> Vec<(String, ParamInit)> {
    let by_name: HashMap<&str, &[usize]> = shapes
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_slice()))
        .collect();
    shapes
        .iter()
        .map(|(name, shape)| {
            let (module, leaf) = split_name(name);
            let weight_name = if module.is_empty() {
                "weight".to_string()
            } else {
                format!("{module}.weight")
            };
            let module_weight = by_name.get(weight_name.as_str()).copied();
            let rule = match (leaf, shape.len()) {
                ("weight", 2) if is_embedding_module(module) => {
                    ParamInit::Normal { std: EMBEDDING_STD }
                }
                ("weight", r) if r >= 2 => uniform_for_fan_in(fan_in(shape)),
                ("weight", 1) => ParamInit::Constant(1.0),
                ("bias", _) => match module_weight {
                    Some(w) if w.len() >= 2 && !(w.len() == 2 && is_embedding_module(module)) => {
                        uniform_for_fan_in(fan_in(w))
                    }
                    _ => ParamInit::Constant(0.0),
                },
                _ => ParamInit::Constant(0.0),
            };
            (name.clone(), rule)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Backends: recording, and serving variables
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Recording {
    order: Vec<(String, Vec<usize>)>,
    index: HashMap<String, usize>,
}

/// Hands out zeros of the requested shape and notes each name and shape, in call order.
struct RecordingBackend {
    recording: Arc<Mutex<Recording>>,
}

fn lock_error<T>(_: T) -> candle_core::Error {
    candle_core::Error::Msg("parameter recording lock poisoned".into())
}

impl SimpleBackend for RecordingBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut rec = self.recording.lock().map_err(lock_error)?;
        if let Some(&i) = rec.index.get(name) {
            let seen = &rec.order[i].1;
            if seen.as_slice() != s.dims() {
                return Err(candle_core::Error::UnexpectedShape {
                    msg: format!("parameter `{name}` is asked for with two different shapes"),
                    expected: Shape::from_dims(seen),
                    got: s,
                });
            }
        } else {
            let i = rec.order.len();
            rec.order.push((name.to_string(), s.dims().to_vec()));
            rec.index.insert(name.to_string(), i);
        }
        // A broadcast zero: no memory per parameter while recording.
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        Err(candle_core::Error::Msg(format!(
            "parameter `{name}` was asked for without a shape; initialisation needs every \
             parameter's shape"
        )))
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// The name and shape of every parameter `build` asks for, in the order it asks (the module is
/// built once over zeros).
pub fn record_parameters<M, E: Into<ModelError>>(
    build: impl Fn(VarBuilder<'static>) -> std::result::Result<M, E>,
    dtype: DType,
    device: &Device,
) -> Result<Vec<(String, Vec<usize>)>> {
    let recording = Arc::new(Mutex::new(Recording::default()));
    let backend = RecordingBackend {
        recording: recording.clone(),
    };
    let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
    build(vb).map_err(Into::into)?;
    let rec = recording
        .lock()
        .map_err(|_| ModelError::Invalid("parameter recording lock poisoned".into()))?;
    Ok(rec.order.clone())
}

/// Builds a module with freshly initialised, trainable parameters: PyTorch's default rules
/// ([`default_init_rules`]), values seeded by `seed` and each tensor's name. Returns the module,
/// whose tensors are the variables in [`Parameters`].
///
/// `build` is called twice (once to learn the names and shapes) and may return either error
/// type of this crate, e.g. `|vb| AutoencoderKL::new(vb, &config)` or
/// `|vb| ClipTextModel::new(vb, &config)`.
pub fn init_parameters<M, E: Into<ModelError>>(
    build: impl Fn(VarBuilder<'static>) -> std::result::Result<M, E>,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<(M, Parameters)> {
    init_parameters_with(build, seed, dtype, device, |_, _, rule| rule)
}

/// [`init_parameters`] with the default rule of each tensor passed through `adjust(name,
/// shape, default)`, which returns the rule to use.
pub fn init_parameters_with<M, E: Into<ModelError>>(
    build: impl Fn(VarBuilder<'static>) -> std::result::Result<M, E>,
    seed: u64,
    dtype: DType,
    device: &Device,
    adjust: impl Fn(&str, &[usize], ParamInit) -> ParamInit,
) -> Result<(M, Parameters)> {
    if !dtype.is_float() {
        return Err(ModelError::Invalid(format!(
            "parameters must have a floating-point dtype, not {dtype:?}"
        )));
    }
    let shapes = record_parameters(&build, dtype, device)?;
    let rules = default_init_rules(&shapes);
    let mut vars = BTreeMap::new();
    for ((name, shape), (_, default)) in shapes.iter().zip(rules) {
        let rule = adjust(name, shape, default);
        rule.check(name)?;
        let n: usize = shape.iter().product();
        let values = rule.sample(n, seed, name);
        let t = Tensor::from_vec(values, shape.as_slice(), device)?.to_dtype(dtype)?;
        vars.insert(name.clone(), Var::from_tensor(&t)?);
    }
    let params = Parameters {
        vars,
        dtype,
        device: device.clone(),
    };
    let module = build(params.var_builder()).map_err(Into::into)?;
    Ok((module, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(list: &[(&str, &[usize])]) -> Vec<(String, Vec<usize>)> {
        list.iter()
            .map(|(n, s)| (n.to_string(), s.to_vec()))
            .collect()
    }

    #[test]
    fn default_rules_follow_pytorch() {
        let s = shapes(&[
            ("conv.weight", &[8, 4, 3, 3]),
            ("conv.bias", &[8]),
            ("fc.weight", &[6, 5]),
            ("fc.bias", &[6]),
            ("norm1.weight", &[4]),
            ("norm1.bias", &[4]),
            ("embeddings.token_embedding.weight", &[10, 5]),
            ("time_embedding.linear_1.weight", &[7, 3]),
            ("time_embedding.linear_1.bias", &[7]),
            ("lonely.bias", &[3]),
            ("class_embedding", &[5]),
            ("logit_scale", &[]),
        ]);
        let rules: HashMap<String, ParamInit> = default_init_rules(&s).into_iter().collect();
        let u = |fan: f64| ParamInit::Uniform {
            bound: 1.0 / fan.sqrt(),
        };
        assert_eq!(rules["conv.weight"], u(36.0));
        assert_eq!(rules["conv.bias"], u(36.0));
        assert_eq!(rules["fc.weight"], u(5.0));
        assert_eq!(rules["fc.bias"], u(5.0));
        assert_eq!(rules["norm1.weight"], ParamInit::Constant(1.0));
        assert_eq!(rules["norm1.bias"], ParamInit::Constant(0.0));
        assert_eq!(
            rules["embeddings.token_embedding.weight"],
            ParamInit::Normal { std: 0.02 }
        );
        assert_eq!(rules["time_embedding.linear_1.weight"], u(3.0));
        assert_eq!(rules["time_embedding.linear_1.bias"], u(3.0));
        assert_eq!(rules["lonely.bias"], ParamInit::Constant(0.0));
        assert_eq!(rules["class_embedding"], ParamInit::Constant(0.0));
        assert_eq!(rules["logit_scale"], ParamInit::Constant(0.0));
    }

    #[test]
    fn values_depend_on_seed_and_name_only() {
        let rule = ParamInit::Uniform { bound: 0.5 };
        let a = rule.sample(100, 7, "a.weight");
        assert_eq!(a, rule.sample(100, 7, "a.weight"));
        assert_ne!(a, rule.sample(100, 8, "a.weight"));
        assert_ne!(a, rule.sample(100, 7, "b.weight"));
        // A longer tensor starts with the same values (one stream per name).
        assert_eq!(&rule.sample(150, 7, "a.weight")[..100], a.as_slice());
        assert!(a.iter().all(|v| (-0.5..0.5).contains(v)));
        let n = ParamInit::Normal { std: 2.0 }.sample(4000, 1, "x");
        let mean = n.iter().sum::<f64>() / 4000.0;
        let var = n.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 3999.0;
        assert!(
            mean.abs() < 0.1 && (var.sqrt() - 2.0).abs() < 0.1,
            "{mean} {var}"
        );
    }
}
