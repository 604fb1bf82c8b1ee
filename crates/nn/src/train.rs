//! The training foundation: seeded parameter initialisation for any module of this crate,
//! AdamW and gradient clipping as PyTorch computes them, resumable checkpoints, and a seeded
//! mini-batch order.
//!
//! # Initialisation
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
//!
//! # Optimisation
//!
//! [`AdamW`] is `torch.optim.AdamW`'s single-tensor path (what torch runs on the CPU),
//! operation for operation: per parameter with a gradient, `step += 1`,
//! `p *= 1 − lr·wd`, `m = m + (1 − β₁)(g − m)`, `v = β₂·v + (1 − β₂)·g·g`,
//! `denom = √v / √(1 − β₂^step) + eps`, `p += (−lr / (1 − β₁^step))·m / denom`; the scalar
//! factors are computed in f64 as Python does, the tensor arithmetic in the parameter's
//! dtype. Its state (per-parameter step counts and moments) saves and loads exactly, so a
//! resumed run continues bit for bit. [`clip_grad_norm`] is `torch.nn.utils.clip_grad_norm_`.
//!
//! # Checkpoints
//!
//! [`save_checkpoint`] writes `dir/step-<N>/` (`params.safetensors`, `optimizer.safetensors`,
//! `state.json`) into a temporary folder and renames it into place, then keeps the newest
//! [`KEEP_CHECKPOINTS`]; [`latest_checkpoint`] finds the newest, [`load_checkpoint`] restores
//! it. Every file is written to a temporary sibling and renamed, so a reader never sees a
//! partial file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{ModelError, Result};

// ---------------------------------------------------------------------------------------------
// Seeded random streams
// ---------------------------------------------------------------------------------------------

/// 64-bit FNV-1a of `bytes`: a stable hash (the same on every platform and Rust version).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A ChaCha8 stream: key = `seed` (little endian) followed by an 8-byte domain tag (so that
/// the same seed gives unrelated streams for initialisation and shuffling), stream number
/// `stream`.
fn chacha(seed: u64, domain: &[u8; 8], stream: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(domain);
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(stream);
    rng
}

const INIT_DOMAIN: &[u8; 8] = b"br-init\0";
const SHUFFLE_DOMAIN: &[u8; 8] = b"br-shuf\0";

/// A uniform f64 in [0, 1) from the top 53 bits of one draw.
fn unit_f64(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform integer in `0..n` (`n > 0`), without modulo bias (rejection sampling).
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    debug_assert!(n > 0);
    // 2^64 mod n values at the top of the range are rejected.
    let reject = (u64::MAX % n + 1) % n;
    let limit = u64::MAX - reject;
    loop {
        let x = rng.next_u64();
        if x <= limit {
            return x % n;
        }
    }
}

/// The indices `0..n` in a seeded random order (Fisher–Yates on a ChaCha8 stream chosen by
/// `seed` and `epoch`), cut into consecutive batches of `batch`; the last batch holds the
/// remainder (it is shorter when `batch` does not divide `n`). The same arguments always give
/// the same batches; every epoch has its own order.
///
/// # Panics
/// When `batch` is 0.
pub fn shuffled_batches(n: usize, batch: usize, seed: u64, epoch: u64) -> Vec<Vec<usize>> {
    assert!(
        batch > 0,
        "shuffled_batches: the batch size must be at least 1"
    );
    let mut rng = chacha(seed, SHUFFLE_DOMAIN, epoch);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = below(&mut rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order.chunks(batch).map(|c| c.to_vec()).collect()
}

// ---------------------------------------------------------------------------------------------
// Initialisation rules
// ---------------------------------------------------------------------------------------------

/// How one parameter tensor starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamInit {
    /// Independent U(−bound, bound) values.
    Uniform { bound: f64 },
    /// Independent N(0, std²) values.
    Normal { std: f64 },
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

/// Serves existing variables by name: the module's tensors are the variables themselves.
struct VarsBackend {
    vars: BTreeMap<String, Var>,
}

impl SimpleBackend for VarsBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let var = self.vars.get(name).ok_or_else(|| {
            candle_core::Error::Msg(format!("parameter `{name}` is not among the variables"))
        })?;
        if var.shape() != &s {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: var.shape().clone(),
            });
        }
        if var.dtype() != dtype {
            return Err(candle_core::Error::Msg(format!(
                "parameter `{name}` is {:?}, the module asks for {dtype:?}; a converted copy \
                 would not follow optimiser updates",
                var.dtype()
            )));
        }
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.vars
            .get(name)
            .map(|v| v.as_tensor().clone())
            .ok_or_else(|| {
                candle_core::Error::Msg(format!("parameter `{name}` is not among the variables"))
            })
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.vars.contains_key(name)
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

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

/// Named trainable variables, in sorted name order.
#[derive(Clone, Debug)]
pub struct Parameters {
    vars: BTreeMap<String, Var>,
    dtype: DType,
    device: Device,
}

impl Parameters {
    /// Parameters from existing variables (for instance those a
    /// [`crate::layers::trainable_var_builder`] registered). All must share one dtype and device.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, Var)>) -> Result<Self> {
        let vars: BTreeMap<String, Var> = vars.into_iter().collect();
        let (dtype, device) = match vars.values().next() {
            Some(v) => (v.dtype(), v.device().clone()),
            None => (DType::F32, Device::Cpu),
        };
        for (name, v) in &vars {
            if v.dtype() != dtype || !v.device().same_device(&device) {
                return Err(ModelError::Invalid(format!(
                    "parameter `{name}` is {:?} on {:?}, the others {dtype:?} on {:?}",
                    v.dtype(),
                    v.device().location(),
                    device.location()
                )));
            }
        }
        Ok(Parameters {
            vars,
            dtype,
            device,
        })
    }

    /// The variables of a [`VarMap`].
    pub fn from_varmap(varmap: &VarMap) -> Result<Self> {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| ModelError::Invalid("VarMap lock poisoned".into()))?;
        Self::from_vars(data.iter().map(|(n, v)| (n.clone(), v.clone())))
    }

    /// Name and variable of every parameter, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.vars
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.get(name)
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.vars.keys().cloned().collect()
    }

    /// Name and shape of every parameter, sorted by name.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.vars
            .iter()
            .map(|(n, v)| (n.clone(), v.dims().to_vec()))
            .collect()
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The parameters whose names start with `prefix`, named by the rest of their names: the
    /// same variables (a step on either changes both), e.g. one model's part of a joint run,
    /// saved under its checkpoint names.
    pub fn with_prefix(&self, prefix: &str) -> Parameters {
        Parameters {
            vars: self
                .vars
                .iter()
                .filter_map(|(n, v)| {
                    n.strip_prefix(prefix)
                        .map(|rest| (rest.to_string(), v.clone()))
                })
                .collect(),
            dtype: self.dtype,
            device: self.device.clone(),
        }
    }

    /// The number of scalar parameters.
    pub fn count_elements(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A snapshot of the current values: copies, detached from the graph, which later
    /// optimiser steps do not change.
    pub fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        self.vars
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().detach().copy()?)))
            .collect()
    }

    /// A [`VarBuilder`] over these variables (to build another module sharing them). Asking
    /// for a name that is not here, or with another shape or dtype, is an error.
    pub fn var_builder(&self) -> VarBuilder<'static> {
        let backend = VarsBackend {
            vars: self.vars.clone(),
        };
        VarBuilder::from_backend(Box::new(backend), self.dtype, self.device.clone())
    }

    /// Writes the parameters as a safetensors file under their names (the module's checkpoint
    /// names), in f32 (f64 parameters stay f64, so a save never rounds), atomically.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let tensors: Vec<(String, HostTensor)> = self
            .vars
            .iter()
            .map(|(n, v)| Ok((n.clone(), HostTensor::from_tensor(v.as_tensor())?)))
            .collect::<Result<_>>()?;
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        let bytes = serialize_safetensors(&tensors, meta, path)?;
        write_atomic(path, &bytes)
    }

    /// Sets every parameter from a safetensors file written by
    /// [`Parameters::save_safetensors`] (or any file with exactly these names and shapes, in a
    /// floating-point dtype). Every name and shape is checked before anything changes: a
    /// missing, unexpected or misshapen tensor is an error naming the file and the tensor.
    pub fn load_safetensors(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        let st = parse_safetensors(&bytes, path)?;
        let mut stored: BTreeMap<String, safetensors::tensor::TensorView<'_>> =
            st.tensors().into_iter().collect();
        let mut values = Vec::with_capacity(self.vars.len());
        for (name, var) in &self.vars {
            let view = stored
                .remove(name)
                .ok_or_else(|| ModelError::MissingTensor {
                    path: path.to_path_buf(),
                    name: name.clone(),
                })?;
            let t = view_to_tensor(&view, name, path)?;
            if t.dims() != var.dims() {
                return Err(ModelError::Shape {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    expected: var.dims().to_vec(),
                    found: t.dims().to_vec(),
                });
            }
            values.push((var, t.to_dtype(var.dtype())?.to_device(var.device())?));
        }
        if let Some(extra) = stored.keys().next() {
            return Err(ModelError::Invalid(format!(
                "{}: tensor '{extra}' is not a parameter of this model ({} parameters expected, \
                 the file has {})",
                path.display(),
                self.vars.len(),
                self.vars.len() + stored.len()
            )));
        }
        for (var, t) in values {
            var.set(&t)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary sibling name of `path` (hidden, unique within this process).
fn temp_sibling(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{what}-{}-{n}", std::process::id()))
}

/// Writes `bytes` to a temporary sibling, syncs it, and renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
        }
    }
    let tmp = temp_sibling(path, "tmp");
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(ModelError::io(path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ModelError::io(path, e)
    })
}

/// Makes a rename inside `dir` durable (best effort: not every platform can sync a folder).
fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// A tensor's values on the host, as safetensors stores them (f32, or f64 for f64 tensors).
struct HostTensor {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl HostTensor {
    fn from_tensor(t: &Tensor) -> Result<Self> {
        let flat = t.detach().to_device(&Device::Cpu)?.flatten_all()?;
        let (dtype, bytes) = if t.dtype() == DType::F64 {
            let v: Vec<f64> = flat.to_vec1()?;
            (
                safetensors::Dtype::F64,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        } else {
            let v: Vec<f32> = flat.to_dtype(DType::F32)?.to_vec1()?;
            (
                safetensors::Dtype::F32,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        };
        Ok(HostTensor {
            dtype,
            shape: t.dims().to_vec(),
            bytes,
        })
    }
}

fn serialize_safetensors(
    tensors: &[(String, HostTensor)],
    metadata: HashMap<String, String>,
    path: &Path,
) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(n, h)| {
            safetensors::tensor::TensorView::new(h.dtype, h.shape.clone(), &h.bytes)
                .map(|v| (n.as_str(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ModelError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| ModelError::Safetensors {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn parse_safetensors<'a>(bytes: &'a [u8], path: &Path) -> Result<safetensors::SafeTensors<'a>> {
    safetensors::SafeTensors::deserialize(bytes).map_err(|e| ModelError::Safetensors {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn safetensors_metadata(bytes: &[u8], path: &Path) -> Result<HashMap<String, String>> {
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| ModelError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// A stored floating-point tensor as a CPU tensor in its stored dtype.
fn view_to_tensor(
    view: &safetensors::tensor::TensorView<'_>,
    name: &str,
    path: &Path,
) -> Result<Tensor> {
    use safetensors::Dtype as S;
    let dtype = match view.dtype() {
        S::F32 => DType::F32,
        S::F64 => DType::F64,
        S::F16 => DType::F16,
        S::BF16 => DType::BF16,
        other => {
            return Err(ModelError::Dtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                dtype: format!("{other:?} (a floating-point tensor was expected)"),
            })
        }
    };
    Ok(Tensor::from_raw_buffer(
        view.data(),
        dtype,
        view.shape(),
        &Device::Cpu,
    )?)
}

// ---------------------------------------------------------------------------------------------
// AdamW
// ---------------------------------------------------------------------------------------------

/// `torch.optim.AdamW` (decoupled weight decay, bias-corrected moments, no AMSGrad), with a
/// state that saves and loads exactly.
#[derive(Clone, Debug)]
pub struct AdamW {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
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
            param: Tensor,
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
            let (param, m, v) = self.update(&var.as_tensor().detach(), &g, &m, &v, step)?;
            updates.push(Update {
                name,
                var,
                param,
                m,
                v,
                step,
            });
        }
        for u in updates {
            u.var.set(&u.param)?;
            self.m.insert(u.name.to_string(), u.m);
            self.v.insert(u.name.to_string(), u.v);
            self.param_steps.insert(u.name.to_string(), u.step);
        }
        self.step += 1;
        Ok(())
    }

    /// torch's `_single_tensor_adam` with `decoupled_weight_decay`, for one parameter:
    /// returns the new parameter and moments.
    fn update(
        &self,
        p: &Tensor,
        g: &Tensor,
        m: &Tensor,
        v: &Tensor,
        step: u64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let f32_cpu = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu();
        if [p, g, m, v].into_iter().all(f32_cpu) {
            return self.update_f32_cpu(p, g, m, v, step);
        }
        self.update_tensors(p, g, m, v, step)
    }

    /// [`AdamW::update`] in tensor operations, for any dtype and device.
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

    /// [`AdamW::update`] for f32 CPU tensors in one pass over memory instead of about fifteen:
    /// per element the same f32 operations in the same order as the tensor version (candle's
    /// `tensor * f64` is `x · f32(k) + 0`, `+ eps` is `x · 1 + f32(eps)`), so the same bits.
    fn update_f32_cpu(
        &self,
        p: &Tensor,
        g: &Tensor,
        m: &Tensor,
        v: &Tensor,
        step: u64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
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
        let flat = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
        let (mut p1, g1, mut m1, mut v1) = (flat(p)?, flat(g)?, flat(m)?, flat(v)?);
        adamw_f32(&k, [&mut p1, &mut m1, &mut v1], &g1);
        let shape = p.shape();
        let tensor = |x: Vec<f32>| Tensor::from_vec(x, shape, p.device());
        Ok((tensor(p1)?, tensor(m1)?, tensor(v1)?))
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
        write_atomic(path, &bytes)
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

/// `torch.nn.utils.clip_grad_norm_(params, max_norm)`: the 2-norm of all gradients of
/// `params` together (parameters without a gradient are ignored); when
/// `max_norm / (norm + 1e-6)` is below 1 every gradient is multiplied by it, in place in
/// `grads`. Returns the norm before clipping. A non-finite norm is returned without touching
/// the gradients (torch would scale them by NaN): the caller should skip that step.
pub fn clip_grad_norm(grads: &mut GradStore, params: &Parameters, max_norm: f64) -> Result<f64> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(ModelError::Invalid(format!(
            "clip_grad_norm: max_norm must be a positive number, got {max_norm}"
        )));
    }
    let mut sum_sq = 0f64;
    for var in params.vars.values() {
        if let Some(g) = grads.get(var.as_tensor()) {
            let n = g
                .detach()
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
            sum_sq += n;
        }
    }
    let total = sum_sq.sqrt();
    if !total.is_finite() {
        return Ok(total);
    }
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        for var in params.vars.values() {
            if let Some(g) = grads.get(var.as_tensor()) {
                let scaled = (g.detach() * coef)?;
                grads.insert(var.as_tensor(), scaled);
            }
        }
    }
    Ok(total)
}

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

/// How many checkpoints [`save_checkpoint`] keeps.
pub const KEEP_CHECKPOINTS: usize = 2;

const CHECKPOINT_FORMAT: &str = "brainrecon-train-checkpoint";
const PARAMS_FILE: &str = "params.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "state.json";

/// One saved training state, `dir/step-<step>/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub step: usize,
    pub dir: PathBuf,
}

impl Checkpoint {
    /// See [`save_checkpoint`].
    pub fn save(
        root: &Path,
        step: usize,
        params: &Parameters,
        optimizer: &AdamW,
        extra: &serde_json::Value,
    ) -> Result<Checkpoint> {
        let dir = save_checkpoint(root, step, params, optimizer, extra)?;
        Ok(Checkpoint { step, dir })
    }

    /// See [`latest_checkpoint`].
    pub fn latest(root: &Path) -> Result<Option<Checkpoint>> {
        Ok(latest_checkpoint(root)?.map(|(step, dir)| Checkpoint { step, dir }))
    }

    /// See [`load_checkpoint`].
    pub fn load(&self, params: &mut Parameters) -> Result<(AdamW, serde_json::Value)> {
        load_checkpoint(&self.dir, params)
    }

    pub fn params_file(&self) -> PathBuf {
        self.dir.join(PARAMS_FILE)
    }
}

/// [`AdamW::step_scalars`]: the lerp weight `1 − beta1`, `lr / bias_correction1` and
/// `sqrt(bias_correction2)`.
struct StepScalars {
    w: f64,
    step_size: f64,
    bias_correction2_sqrt: f64,
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

crate::simd::widest_fn!(fn adamw_f32(k: &AdamWConstants, pmv: [&mut [f32]; 3], g: &[f32]) = adamw_f32_inline);

fn step_dir_name(step: usize) -> String {
    format!("step-{step}")
}

fn parse_step_dir(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("step-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The complete checkpoints under `root`, sorted by step.
fn list_checkpoints(root: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ModelError::io(root, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ModelError::io(root, e))?;
        let name = entry.file_name();
        let Some(step) = name.to_str().and_then(parse_step_dir) else {
            continue;
        };
        let path = entry.path();
        if path.join(STATE_FILE).is_file() {
            found.push((step, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Saves a resumable training state as `dir/step-<step>/` (`params.safetensors`,
/// `optimizer.safetensors`, `state.json` holding the step and `extra`): the three files are
/// written into a temporary folder that is then renamed into place (replacing an existing
/// checkpoint of the same step), so `step-<step>/` is complete whenever it exists. Then only
/// the [`KEEP_CHECKPOINTS`] checkpoints with the highest steps are kept. Returns the folder.
pub fn save_checkpoint(
    dir: &Path,
    step: usize,
    params: &Parameters,
    optimizer: &AdamW,
    extra: &serde_json::Value,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let target = dir.join(step_dir_name(step));
    let staging = temp_sibling(&target, "staging");
    let written = (|| -> Result<()> {
        std::fs::create_dir(&staging).map_err(|e| ModelError::io(&staging, e))?;
        params.save_safetensors(staging.join(PARAMS_FILE))?;
        optimizer.save(staging.join(OPTIMIZER_FILE))?;
        let state = serde_json::json!({
            "format": CHECKPOINT_FORMAT,
            "version": 1,
            "step": step,
            "extra": extra,
        });
        let text = serde_json::to_vec_pretty(&state)
            .map_err(|e| ModelError::Invalid(format!("checkpoint state: {e}")))?;
        write_atomic(&staging.join(STATE_FILE), &text)?;
        sync_dir(&staging);
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    // An existing checkpoint of this step moves aside first (a folder cannot be renamed over
    // a non-empty one).
    let old = if target.exists() {
        let aside = temp_sibling(&target, "replaced");
        std::fs::rename(&target, &aside).map_err(|e| ModelError::io(&target, e))?;
        Some(aside)
    } else {
        None
    };
    if let Err(e) = std::fs::rename(&staging, &target) {
        if let Some(aside) = &old {
            let _ = std::fs::rename(aside, &target);
        }
        let _ = std::fs::remove_dir_all(&staging);
        return Err(ModelError::io(&target, e));
    }
    sync_dir(dir);
    if let Some(aside) = old {
        std::fs::remove_dir_all(&aside).map_err(|e| ModelError::io(&aside, e))?;
    }
    let all = list_checkpoints(dir)?;
    let excess = all.len().saturating_sub(KEEP_CHECKPOINTS);
    for (_, path) in &all[..excess] {
        std::fs::remove_dir_all(path).map_err(|e| ModelError::io(path, e))?;
    }
    Ok(target)
}

/// The checkpoint with the highest step under `dir` (`step-<N>/` folders holding
/// `state.json`), or None when there is none (or `dir` does not exist).
pub fn latest_checkpoint(dir: &Path) -> Result<Option<(usize, PathBuf)>> {
    Ok(list_checkpoints(dir)?.pop())
}

/// Restores a checkpoint folder written by [`save_checkpoint`]: sets `params` from its
/// `params.safetensors` (names and shapes checked) and returns the optimizer and the `extra`
/// JSON saved with it.
pub fn load_checkpoint(dir: &Path, params: &mut Parameters) -> Result<(AdamW, serde_json::Value)> {
    let state_path = dir.join(STATE_FILE);
    let state: serde_json::Value = crate::weights::read_json(&state_path, "checkpoint state")?;
    let invalid = |message: String| ModelError::Config {
        path: state_path.clone(),
        what: "checkpoint state".into(),
        message,
    };
    if state.get("format").and_then(|f| f.as_str()) != Some(CHECKPOINT_FORMAT) {
        return Err(invalid(format!(
            "`format` is {:?}, expected \"{CHECKPOINT_FORMAT}\"",
            state.get("format")
        )));
    }
    let step = state
        .get("step")
        .and_then(|s| s.as_u64())
        .ok_or_else(|| invalid("no integer `step`".into()))?;
    if let Some(named) = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_step_dir)
    {
        if named as u64 != step {
            return Err(invalid(format!(
                "`step` is {step}, but the folder is named for step {named}"
            )));
        }
    }
    let optimizer = AdamW::load(dir.join(OPTIMIZER_FILE))?;
    optimizer
        .validate_against(params)
        .map_err(|e| ModelError::Invalid(format!("{}: {e}", dir.join(OPTIMIZER_FILE).display())))?;
    params.load_safetensors(dir.join(PARAMS_FILE))?;
    let extra = state
        .get("extra")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    Ok((optimizer, extra))
}

/// Learning rate at `step` (0-based) of `total`: linear warm-up over the first 5% of steps,
/// then a cosine decay to a tenth of `peak`.
pub fn learning_rate(peak: f64, step: usize, total: usize) -> f64 {
    let warmup = (total / 20).max(1);
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
    peak * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos()))
}

/// Cross-entropy of each row of `logits` [B, B] against its diagonal entry, averaged.
fn diagonal_cross_entropy(logits: &Tensor) -> Result<Tensor> {
    let b = logits.dim(0)?;
    let max = logits.max_keepdim(1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(1)?.log()?;
    let eye = Tensor::eye(b, logits.dtype(), logits.device())?;
    let target = (shifted * eye)?.sum_keepdim(1)?;
    Ok((log_sum - target)?.mean_all()?)
}

/// CLIP's symmetric InfoNCE of B matched pairs (row i of each [B, B] logit matrix is pair i,
/// one matrix per direction): `½·[CE(logits_a) + CE(logits_b)]` with the diagonal as the target.
pub fn symmetric_info_nce(logits_a: &Tensor, logits_b: &Tensor) -> Result<Tensor> {
    let a = diagonal_cross_entropy(logits_a)?;
    let b = diagonal_cross_entropy(logits_b)?;
    Ok(((a + b)? * 0.5)?)
}

/// Losses logged so far in a stage's checkpoint (`extra.losses`).
pub fn logged_losses(extra: &serde_json::Value) -> Vec<f64> {
    extra
        .get("losses")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default()
}

/// One training run (or stage) that resumes: its parameters, AdamW, the losses so far and its
/// checkpoints (`work/<name>/step-*`), with the warm-up + cosine schedule of [`learning_rate`]
/// and gradients clipped to norm 1.
pub struct ResumableRun {
    pub work: PathBuf,
    pub params: Parameters,
    pub optimizer: AdamW,
    pub losses: Vec<f64>,
    /// First step still to run (the checkpoint's step after a resume).
    pub start: usize,
    pub peak_lr: f64,
    pub total: usize,
    pub checkpoint_every: usize,
}

impl ResumableRun {
    /// Starts the stage, or resumes it from the newest checkpoint in `work/name` and notes
    /// that in `resumed_from`. `schedule` is (peak learning rate, steps, checkpoint every).
    pub fn resume(
        name: &str,
        work: &Path,
        mut params: Parameters,
        schedule: (f64, usize, usize),
        resumed_from: &mut Vec<(String, usize)>,
    ) -> Result<Self> {
        let (peak_lr, total, checkpoint_every) = schedule;
        let work = work.join(name);
        let (optimizer, losses, start) = match latest_checkpoint(&work)? {
            Some((step, dir)) => {
                let (optimizer, extra) = load_checkpoint(&dir, &mut params)?;
                resumed_from.push((name.to_string(), step));
                (optimizer, logged_losses(&extra), step)
            }
            None => (AdamW::with_defaults(peak_lr)?, Vec::new(), 0),
        };
        Ok(ResumableRun {
            work,
            params,
            optimizer,
            losses,
            start,
            peak_lr,
            total,
            checkpoint_every,
        })
    }

    /// Step `step` (0-based) on `loss`: backward, gradients clipped to norm 1, AdamW at the
    /// scheduled learning rate, and a checkpoint when one is due. Returns the loss.
    // `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    pub fn step(&mut self, loss: &Tensor, step: usize) -> Result<f64> {
        let value = loss.to_scalar::<f32>()? as f64;
        let mut grads = loss.backward()?;
        clip_grad_norm(&mut grads, &self.params, 1.0)?;
        self.optimizer
            .set_lr(learning_rate(self.peak_lr, step, self.total));
        self.optimizer.step(&self.params, &grads)?;
        self.losses.push(value);
        if (step + 1) % self.checkpoint_every == 0 || step + 1 == self.total {
            save_checkpoint(
                &self.work,
                step + 1,
                &self.params,
                &self.optimizer,
                &serde_json::json!({"losses": self.losses}),
            )?;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn shapes(list: &[(&str, &[usize])]) -> Vec<(String, Vec<usize>)> {
        list.iter()
            .map(|(n, s)| (n.to_string(), s.to_vec()))
            .collect()
    }

    #[test]
    fn fnv1a_known_values() {
        // Reference values of the 64-bit FNV-1a specification.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
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

    #[test]
    fn bounded_draws_are_uniform_and_in_range() {
        let mut rng = chacha(3, SHUFFLE_DOMAIN, 0);
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[below(&mut rng, 5) as usize] += 1;
        }
        for c in counts {
            assert!((c as f64 - 10_000.0).abs() < 400.0, "{counts:?}");
        }
        assert_eq!(below(&mut rng, 1), 0);
    }

    #[test]
    fn shuffled_batches_are_seeded_permutations() {
        let b = shuffled_batches(10, 3, 42, 0);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 3, 1]);
        let mut all: Vec<usize> = b.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(b, shuffled_batches(10, 3, 42, 0));
        assert_ne!(b, shuffled_batches(10, 3, 42, 1));
        assert_ne!(b, shuffled_batches(10, 3, 43, 0));
        assert!(shuffled_batches(0, 4, 1, 0).is_empty());
        assert_eq!(shuffled_batches(1, 4, 1, 0), vec![vec![0]]);
        // Every position is reached by every index over many epochs (an unbiased shuffle).
        let mut first = [0usize; 4];
        for epoch in 0..4000 {
            first[shuffled_batches(4, 4, 9, epoch)[0][0]] += 1;
        }
        for c in first {
            assert!((c as f64 - 1000.0).abs() < 150.0, "{first:?}");
        }
    }

    #[test]
    fn checkpoint_names() {
        assert_eq!(parse_step_dir("step-12"), Some(12));
        assert_eq!(parse_step_dir("step-"), None);
        assert_eq!(parse_step_dir("step-1a"), None);
        assert_eq!(parse_step_dir("step--1"), None);
        assert_eq!(parse_step_dir(".step-3.staging-1-2"), None);
        assert_eq!(step_dir_name(7), "step-7");
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("f.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
