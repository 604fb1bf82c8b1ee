//! Differentiable building blocks on candle ops that all have backward passes.
//!
//! candle 0.11.1's fused `softmax_last_dim` and `layer_norm` kernels have no backward pass, so
//! softmax, layer norm and group norm are written here from elementary ops (exp, sum, max,
//! mean, sqrt), which candle can differentiate. Normalisations and softmax run internally in
//! f32 whatever the input dtype (as PyTorch does for half precision), and return the input
//! dtype.
//!
//! Every module is built from a [`VarBuilder`] using the checkpoint's parameter names
//! (`weight`, `bias`). Weights are fetched through [`weight`], which never initialises a
//! tensor at random: a tensor absent from the backend is a [`Error::MissingTensor`] naming
//! its full path, and a tensor of the wrong shape is a [`Error::ShapeMismatch`] giving both
//! shapes. To fine-tune a subset of the weights, build the model from
//! [`trainable_var_builder`], which registers the selected tensors as [`Var`]s in a
//! [`VarMap`] and loads the rest as constants.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Module, Shape, Tensor, Var, D};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};

/// Errors of the modules built on these layers (the U-Net, the VAE, the vision networks...).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter the module needs is absent from the weights.
    #[error("missing tensor `{name}` in the weights")]
    MissingTensor { name: String },
    /// A parameter has a shape other than the one the configuration implies.
    #[error(
        "tensor `{name}` has shape {got:?} in the weights, but the model expects {expected:?}"
    )]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    /// An error while loading weights from a given file.
    #[error("{}: {source}", file.display())]
    InFile {
        file: PathBuf,
        #[source]
        source: Box<Error>,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A configuration file could not be parsed.
    #[error("cannot parse config {}: {source}", path.display())]
    ConfigParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A configuration the modules cannot build (unknown block type, inconsistent lengths...).
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// An input of the wrong shape.
    #[error("invalid input `{name}`: {msg}")]
    InvalidInput { name: &'static str, msg: String },
    /// An error from candle's tensor operations.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Attaches the file the weights came from.
    pub fn in_file(self, file: impl Into<PathBuf>) -> Error {
        Error::InFile {
            file: file.into(),
            source: Box::new(self),
        }
    }
}

fn join_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Fetches parameter `name` under the builder's prefix, with shape `shape`, in the builder's
/// dtype. Missing tensors and shape mismatches are typed errors naming the full tensor path;
/// nothing is ever initialised at random.
pub fn weight<S: Into<Shape>>(vb: &VarBuilder, shape: S, name: &str) -> Result<Tensor> {
    let shape: Shape = shape.into();
    let full = join_path(&vb.prefix(), name);
    if !vb.contains_tensor(name) {
        return Err(Error::MissingTensor { name: full });
    }
    match vb.get(shape.clone(), name) {
        Ok(t) => {
            if t.shape() != &shape {
                return Err(Error::ShapeMismatch {
                    name: full,
                    expected: shape.dims().to_vec(),
                    got: t.dims().to_vec(),
                });
            }
            Ok(t)
        }
        Err(e) => {
            // Backends report a shape mismatch in different ways; probe the stored shape.
            if let Ok(t) = vb.get_unchecked(name) {
                if t.shape() != &shape {
                    return Err(Error::ShapeMismatch {
                        name: full,
                        expected: shape.dims().to_vec(),
                        got: t.dims().to_vec(),
                    });
                }
            }
            Err(Error::Candle(e))
        }
    }
}

/// Opens safetensors files with memory maps as a [`VarBuilder`] in `dtype` on `device`.
pub fn mmaped_var_builder(
    files: &[PathBuf],
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    for f in files {
        if !f.exists() {
            return Err(Error::Io {
                path: f.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
    }
    // SAFETY: the files are mapped read-only; they must not be modified while in use, as for
    // every memory-mapped checkpoint loader.
    let st = unsafe { MmapedSafetensors::multi(files) }.map_err(|e| match files {
        [one] => Error::Candle(e).in_file(one),
        _ => Error::Candle(e),
    })?;
    Ok(VarBuilder::from_backend(
        Box::new(st),
        dtype,
        device.clone(),
    ))
}

/// A backend that loads weights from memory-mapped safetensors and turns the tensors whose
/// full name satisfies a predicate into trainable [`Var`]s registered in a [`VarMap`] (under
/// the same name). The other tensors are loaded as constants, so backpropagation only
/// computes gradients for the selected parameters.
struct TrainableBackend {
    st: MmapedSafetensors,
    varmap: VarMap,
    trainable: Arc<dyn Fn(&str) -> bool + Send + Sync>,
}

impl SimpleBackend for TrainableBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if (self.trainable)(name) {
            let mut data = self.varmap.data().lock().unwrap();
            if let Some(v) = data.get(name) {
                if v.shape() != &s {
                    return Err(candle_core::Error::UnexpectedShape {
                        msg: format!("shape mismatch for {name}"),
                        expected: s,
                        got: v.shape().clone(),
                    });
                }
                return Ok(v.as_tensor().clone());
            }
            let t = self.st.load(name, dev)?.to_dtype(dtype)?;
            if t.shape() != &s {
                return Err(candle_core::Error::UnexpectedShape {
                    msg: format!("shape mismatch for {name}"),
                    expected: s,
                    got: t.shape().clone(),
                });
            }
            let var = Var::from_tensor(&t)?;
            let out = var.as_tensor().clone();
            data.insert(name.to_string(), var);
            Ok(out)
        } else {
            let t = self.st.load(name, dev)?.to_dtype(dtype)?;
            if t.shape() != &s {
                return Err(candle_core::Error::UnexpectedShape {
                    msg: format!("shape mismatch for {name}"),
                    expected: s,
                    got: t.shape().clone(),
                });
            }
            Ok(t)
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.st.load(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.st.get(name).is_ok()
    }
}

/// A [`VarBuilder`] over memory-mapped safetensors in which the tensors whose full name
/// satisfies `trainable` become [`Var`]s stored in `varmap` (pass `varmap.all_vars()` to an
/// optimiser). Example: `|n| n.contains("attn2.to_k") || n.contains("attn2.to_v")`.
pub fn trainable_var_builder(
    files: &[PathBuf],
    varmap: &VarMap,
    trainable: impl Fn(&str) -> bool + Send + Sync + 'static,
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    for f in files {
        if !f.exists() {
            return Err(Error::Io {
                path: f.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
    }
    // SAFETY: see `mmaped_var_builder`.
    let st = unsafe { MmapedSafetensors::multi(files) }?;
    let backend = TrainableBackend {
        st,
        varmap: varmap.clone(),
        trainable: Arc::new(trainable),
    };
    Ok(VarBuilder::from_backend(
        Box::new(backend),
        dtype,
        device.clone(),
    ))
}

/// The builder a model loads its weights through: on the CPU, half-precision weights are
/// widened to f32 as they load, since the CPU kernels (faer products, fused attention and
/// norms) are f32 and candle's f16 arithmetic there is several times slower, not more exact.
/// Models keep reporting (and returning) the requested dtype. GPU builders are unchanged.
pub fn widen_half_on_cpu(vb: VarBuilder<'_>) -> VarBuilder<'_> {
    match vb.dtype() {
        DType::F16 | DType::BF16 if vb.device().is_cpu() => vb.set_dtype(DType::F32),
        _ => vb,
    }
}

/// A [`VarBuilder`] over in-memory tensors (for weights produced by code rather than files).
pub fn tensors_var_builder(
    tensors: HashMap<String, Tensor>,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    VarBuilder::from_tensors(tensors, dtype, device)
}

/// Reads and parses a JSON configuration file.
pub fn read_json_config<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_json_config(&text, path)
}

/// Parses a config's JSON text; `origin` names it in errors (a file, or `<string>`).
pub fn parse_json_config<T: serde::de::DeserializeOwned>(text: &str, origin: &Path) -> Result<T> {
    crate::weights::parse_json_named(text).map_err(|source| Error::ConfigParse {
        path: origin.to_path_buf(),
        source,
    })
}

/// `y = x W^T + b`, parameters `weight` [out, in] and optional `bias` [out].
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let weight = crate::layers::weight(&vb, (out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(crate::layers::weight(&vb, out_dim, "bias")?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// `x` has shape [..., in]; returns [..., out].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = *dims.last().ok_or(Error::InvalidInput {
            name: "linear input",
            msg: "scalar input".into(),
        })?;
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let (out_dim, w_in) = self.weight.dims2()?;
        if w_in != in_dim {
            return Err(Error::InvalidInput {
                name: "linear input",
                msg: format!("last dim {in_dim}, weight expects {w_in}"),
            });
        }
        let x2 = x.reshape((rows, in_dim))?;
        let y = if InferenceLinearF32::applies(&x2, &self.weight) {
            x2.contiguous()?
                .apply_op2_no_bwd(&self.weight.contiguous()?, &InferenceLinearF32)?
        } else {
            x2.matmul(&self.weight.t()?)?
        };
        let y = match &self.bias {
            Some(b) if fused(&y, &[b]) => fused_channel_affine(&y, None, Some(b))?,
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims;
        *out_dims.last_mut().unwrap() = out_dim;
        Ok(y.reshape(out_dims)?)
    }
}

/// `x · Wᵀ` for f32 CPU inference with faer's matrix product, which runs at about twice
/// the rate of candle's here (CLIP's and the text encoders' projections). Tensors that track
/// gradients take candle's differentiable `matmul`.
struct InferenceLinearF32;

impl InferenceLinearF32 {
    fn applies(x: &Tensor, weight: &Tensor) -> bool {
        let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
        cpu_f32(x) && cpu_f32(weight) && !x.track_op() && !weight.track_op()
    }
}

impl candle_core::CustomOp2 for InferenceLinearF32 {
    fn name(&self) -> &'static str {
        "brainrecon-linear-f32"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        let x = crate::conv::contiguous_f32(s1, l1, "linear", "input")?;
        let w = crate::conv::contiguous_f32(s2, l2, "linear", "weight")?;
        let (rows, k) = l1.shape().dims2()?;
        let (out, k2) = l2.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("linear: input [{rows}, {k}] and weight [{out}, {k2}] do not fit");
        }
        let mut y = vec![0f32; rows * out];
        let dst = faer::MatMut::from_row_major_slice_mut(&mut y, rows, out);
        let lhs = faer::MatRef::from_row_major_slice(x, rows, k);
        let rhs = faer::MatRef::from_row_major_slice(w, out, k).transpose();
        faer::linalg::matmul::matmul(
            dst,
            faer::Accum::Replace,
            lhs,
            rhs,
            1.0f32,
            faer::Par::rayon(0),
        );
        Ok((candle_core::CpuStorage::F32(y), Shape::from((rows, out))))
    }
}

/// 2-D convolution, parameters `weight` [out, in, k, k] and optional `bias` [out].
#[derive(Debug, Clone)]
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    pub fn new(
        vb: VarBuilder,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let weight =
            crate::layers::weight(&vb, (out_channels, in_channels, kernel, kernel), "weight")?;
        let bias = Some(crate::layers::weight(&vb, out_channels, "bias")?);
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
        })
    }

    /// `x` has shape [B, C_in, H, W].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = crate::conv::conv2d(x, &self.weight, self.padding, self.stride)?;
        Ok(match &self.bias {
            Some(b) => crate::channel::channel_affine(&y, None, Some(b))?,
            None => y,
        })
    }
}

fn upcast(x: &Tensor) -> Result<Tensor> {
    Ok(if x.dtype() == DType::F32 || x.dtype() == DType::F64 {
        x.clone()
    } else {
        x.to_dtype(DType::F32)?
    })
}

/// Whether inference on `x` (with `parameters` of its dtype) takes the fused CUDA kernels.
#[cfg(feature = "cuda")]
pub(crate) fn fused(x: &Tensor, parameters: &[&Tensor]) -> bool {
    crate::cuda::applies(x)
        && parameters
            .iter()
            .all(|p| p.dtype() == x.dtype() && !p.track_op() && p.device().same_device(x.device()))
}

#[cfg(not(feature = "cuda"))]
pub(crate) fn fused(_: &Tensor, _: &[&Tensor]) -> bool {
    false
}

#[cfg(feature = "cuda")]
fn fused_channel_affine(
    x: &Tensor,
    scale: Option<&Tensor>,
    shift: Option<&Tensor>,
) -> Result<Tensor> {
    Ok(crate::cuda::channel_affine(x, scale, shift)?)
}

#[cfg(not(feature = "cuda"))]
fn fused_channel_affine(_: &Tensor, _: Option<&Tensor>, _: Option<&Tensor>) -> Result<Tensor> {
    unreachable!("fused kernels exist only in CUDA builds")
}

/// Whether inference on `x` with `parameters` takes the f32 CPU kernels (no gradient tracked).
fn cpu_f32_inference(x: &Tensor, parameters: &[&Tensor]) -> bool {
    let ok = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32 && !t.track_op();
    ok(x) && parameters.iter().all(|p| ok(p))
}

/// Normalises over the last dimension: `(x - mean) / sqrt(var + eps)`, biased variance,
/// computed in f32 (or f64 for f64 inputs), returned in the input dtype.
pub fn normalize_last_dim(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = upcast(x)?;
    let mean = xf.mean_keepdim(D::Minus1)?;
    let centered = xf.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let y = centered.broadcast_div(&(var + eps)?.sqrt()?)?;
    Ok(y.to_dtype(dtype)?)
}

/// Layer norm over the last dimension, parameters `weight` and `bias` [dim] when affine.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(vb: VarBuilder, dim: usize, eps: f64, affine: bool) -> Result<Self> {
        let (weight, bias) = if affine {
            (
                Some(crate::layers::weight(&vb, dim, "weight")?),
                Some(crate::layers::weight(&vb, dim, "bias")?),
            )
        } else {
            (None, None)
        };
        Ok(Self { weight, bias, eps })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        {
            let parameters: Vec<&Tensor> = self.weight.iter().chain(&self.bias).collect();
            if fused(x, &parameters) {
                return Ok(crate::cuda::layer_norm(
                    x,
                    self.weight.as_ref(),
                    self.bias.as_ref(),
                    self.eps,
                )?);
            }
        }
        if let (Some(w), Some(b)) = (&self.weight, &self.bias) {
            if cpu_f32_inference(x, &[w, b]) {
                let op = crate::norm_cpu::LayerNormF32 { eps: self.eps };
                return Ok(x.contiguous()?.apply_op3_no_bwd(
                    &w.contiguous()?,
                    &b.contiguous()?,
                    &op,
                )?);
            }
        }
        let y = normalize_last_dim(x, self.eps)?;
        let y = match &self.weight {
            Some(w) => y.broadcast_mul(w)?,
            None => y,
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// Group norm over [B, C, *] inputs, parameters `weight` and `bias` [C].
#[derive(Debug, Clone)]
pub struct GroupNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub num_groups: usize,
    pub eps: f64,
}

impl GroupNorm {
    // `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    pub fn new(vb: VarBuilder, num_groups: usize, channels: usize, eps: f64) -> Result<Self> {
        if num_groups == 0 || channels % num_groups != 0 {
            return Err(Error::InvalidConfig(format!(
                "group norm `{}`: {channels} channels are not divisible into {num_groups} groups",
                vb.prefix()
            )));
        }
        let weight = crate::layers::weight(&vb, channels, "weight")?;
        let bias = crate::layers::weight(&vb, channels, "bias")?;
        Ok(Self {
            weight,
            bias,
            num_groups,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        if dims.len() < 2 || dims[1] != self.weight.dim(0)? {
            return Err(Error::InvalidInput {
                name: "group norm input",
                msg: format!("shape {dims:?}, expected [B, {}, ...]", self.weight.dim(0)?),
            });
        }
        #[cfg(feature = "cuda")]
        if fused(x, &[&self.weight, &self.bias]) {
            return Ok(crate::cuda::group_norm(
                x,
                &self.weight,
                &self.bias,
                self.num_groups,
                self.eps,
                false,
            )?);
        }
        if cpu_f32_inference(x, &[&self.weight, &self.bias]) {
            return self.forward_cpu_f32(x, false);
        }
        let grouped = x.reshape((dims[0], self.num_groups, ()))?;
        let y = normalize_last_dim(&grouped, self.eps)?.reshape(dims.as_slice())?;
        Ok(crate::channel::channel_affine(
            &y,
            Some(&self.weight),
            Some(&self.bias),
        )?)
    }

    /// `silu(self.forward(x))`, one pass on a GPU.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if fused(x, &[&self.weight, &self.bias])
            && x.rank() >= 2
            && x.dim(1)? == self.weight.dim(0)?
        {
            return Ok(crate::cuda::group_norm(
                x,
                &self.weight,
                &self.bias,
                self.num_groups,
                self.eps,
                true,
            )?);
        }
        if cpu_f32_inference(x, &[&self.weight, &self.bias]) {
            return self.forward_cpu_f32(x, true);
        }
        silu(&self.forward(x)?)
    }

    /// One pass per group on the CPU (inference), with SiLU fused when `silu`.
    fn forward_cpu_f32(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        let op = crate::norm_cpu::GroupNormF32 {
            groups: self.num_groups,
            eps: self.eps,
            silu,
        };
        let (w, b) = (self.weight.contiguous()?, self.bias.contiguous()?);
        Ok(x.contiguous()?.apply_op3_no_bwd(&w, &b, &op)?)
    }
}

/// Numerically stable softmax over the last dimension, computed in f32 (f64 for f64 input)
/// and returned in the input dtype. Differentiable: f32 on the CPU takes the one-pass op with
/// its one-pass backward ([`SoftmaxF32`]); other tensors that track gradients are built from
/// elementary ops; otherwise (inference) candle's fused kernel, which has no backward pass,
/// computes the same values faster.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = upcast(x)?;
    #[cfg(feature = "cuda")]
    if fused(x, &[]) {
        return Ok(crate::cuda::softmax_last_dim(x, 1.0)?);
    }
    if xf.dtype() == DType::F32 && xf.device().is_cpu() {
        // records its backward pass only when `x` tracks gradients
        return Ok(xf.contiguous()?.apply_op1(SoftmaxF32)?.to_dtype(dtype)?);
    }
    if !x.track_op() {
        let y = candle_nn::ops::softmax_last_dim(&xf.contiguous()?)?;
        return Ok(y.to_dtype(dtype)?);
    }
    softmax_last_dim_differentiable(&xf)?
        .to_dtype(dtype)
        .map_err(Error::from)
}

/// `exp(x)` for f32 without a libm call, so that loops over slices vectorise: Cody-Waite
/// range reduction `x = n ln2 + r` and a degree-7 polynomial (Cephes `expf` coefficients),
/// relative error ~2e-7 over the clamped range [-87.3, 88.3].
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting rounds to an integer.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.3);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // The integer n sits in the low mantissa bits of `shifted` (whose exponent is that of
    // 1.5 * 2^23): reading it from there, rather than by a float-to-int cast, which Rust
    // saturates lane by lane, keeps the loop vectorised.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    y * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// Softmax over the last dimension of a contiguous f32 CPU tensor, rows in parallel, with its
/// backward pass for training: one pass forward and one backward (`dx = y ⊙ (g − Σ g ⊙ y)`
/// per row) instead of candle's five elementary ops and their gradients, each a pass over
/// memory.
struct SoftmaxF32;

impl candle_core::CustomOp1 for SoftmaxF32 {
    fn name(&self) -> &'static str {
        "brainrecon-softmax-f32"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        use rayon::prelude::*;
        let src = crate::conv::contiguous_f32(storage, layout, self.name(), "input")?;
        let dims = layout.shape().dims();
        let n = *dims.last().unwrap_or(&1);
        let mut dst = vec![0f32; src.len()];
        if n > 0 {
            dst.par_chunks_mut(n)
                .zip(src.par_chunks(n))
                .for_each(|(d, s)| {
                    d.copy_from_slice(s);
                    softmax_row_in_place(d);
                });
        }
        Ok((candle_core::CpuStorage::F32(dst), Shape::from_dims(dims)))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = grad_res.to_dtype(DType::F32)?.contiguous()?;
        Ok(Some(
            res.contiguous()?
                .apply_op2_no_bwd(&grad, &SoftmaxBackwardF32)?,
        ))
    }
}

/// (y, g) → y ⊙ (g − Σ g ⊙ y) over the last dimension: the gradient of a softmax whose output
/// is y, given the gradient g of its output. f32 CPU, rows in parallel.
struct SoftmaxBackwardF32;

impl candle_core::CustomOp2 for SoftmaxBackwardF32 {
    fn name(&self) -> &'static str {
        "brainrecon-softmax-f32-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        use rayon::prelude::*;
        let y = crate::conv::contiguous_f32(s1, l1, self.name(), "softmax output")?;
        let g = crate::conv::contiguous_f32(s2, l2, self.name(), "output gradient")?;
        let dims = l1.shape().dims();
        if l2.shape().dims() != dims {
            candle_core::bail!("{}: output {dims:?}, gradient {:?}", self.name(), l2.dims());
        }
        let n = *dims.last().unwrap_or(&1);
        let mut dx = vec![0f32; y.len()];
        if n > 0 {
            dx.par_chunks_mut(n)
                .zip(y.par_chunks(n).zip(g.par_chunks(n)))
                .for_each(|(d, (y, g))| softmax_grad_row(y, g, d));
        }
        Ok((candle_core::CpuStorage::F32(dx), Shape::from_dims(dims)))
    }
}

/// One row of [`SoftmaxBackwardF32`].
#[inline(always)]
fn softmax_grad_row_inline(y: &[f32], g: &[f32], dx: &mut [f32]) {
    // Eight independent lanes let the compiler vectorise the dot product.
    let mut acc = [0f32; 8];
    let (mut ys, mut gs) = (y.chunks_exact(8), g.chunks_exact(8));
    for (yc, gc) in (&mut ys).zip(&mut gs) {
        for ((a, &y), &g) in acc.iter_mut().zip(yc).zip(gc) {
            *a += y * g;
        }
    }
    let tail: f32 = ys
        .remainder()
        .iter()
        .zip(gs.remainder())
        .map(|(y, g)| y * g)
        .sum();
    let dot = tail + acc.iter().sum::<f32>();
    for ((d, &y), &g) in dx.iter_mut().zip(y).zip(g) {
        *d = y * (g - dot);
    }
}

crate::simd::widest_fn!(fn softmax_grad_row(y: &[f32], g: &[f32], dx: &mut [f32]) = softmax_grad_row_inline);

crate::simd::widest_fn!(fn softmax_row_in_place(d: &mut [f32]) = softmax_row_inline);

/// `row[i] = exp(row[i] − max(row))`, returning the sum of the new values.
#[inline(always)]
pub(crate) fn exp_shifted_in_place(row: &mut [f32]) -> f32 {
    // Eight independent lanes let the compiler vectorise the max and the sum.
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = l.max(v);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(lanes.iter())
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut acc = [0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *v = exp_f32(*v - max);
            *a += *v;
        }
    }
    let mut sum = 0f32;
    for v in chunks.into_remainder() {
        *v = exp_f32(*v - max);
        sum += *v;
    }
    sum + acc.iter().sum::<f32>()
}

/// Softmax of one row of f32 values, in place.
#[inline(always)]
fn softmax_row_inline(d: &mut [f32]) {
    let inv = 1.0 / exp_shifted_in_place(d);
    for o in d.iter_mut() {
        *o *= inv;
    }
}

/// The elementary-op softmax (always differentiable), in the input dtype.
pub fn softmax_last_dim_differentiable(x: &Tensor) -> Result<Tensor> {
    // Subtracting the (detached) row maximum changes nothing mathematically.
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&s)?)
}

/// An additive causal mask [len, len]: 0 on and below the diagonal, the most negative finite
/// f32 above it (as transformers' CLIP does).
pub fn causal_mask(len: usize, device: &Device) -> Result<Tensor> {
    let data: Vec<f32> = (0..len)
        .flat_map(|i| (0..len).map(move |j| if j > i { f32::MIN } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(data, (len, len), device)?)
}

/// Scaled dot-product attention on [B, H, Lq, Dh] queries and [B, H, Lk, Dh] keys/values.
/// `mask` is an additive mask broadcastable to [B, H, Lq, Lk] (f32 or the scores' dtype);
/// `upcast` computes the scores in f32 (diffusers' `upcast_attention`). The softmax always
/// runs in f32.
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
    upcast_scores: bool,
) -> Result<Tensor> {
    let tracked = q.track_op() || k.track_op() || v.track_op();
    let dims = q.dims().to_vec();
    let lk = k.dim(D::Minus2)?;
    let rank = dims.len();
    // Inference on long sequences: process the leading (batch x head) slices in chunks so
    // that the [.., Lq, Lk] score matrix never exceeds ~64 MiB of f32.
    let rows: usize = dims[..rank.saturating_sub(2)].iter().product();
    let per_row = dims[rank - 2] * lk;
    // a GPU holds far larger score matrices (2 × 8 heads × 4096² halves is 0.5 GB)
    let max_elems = if q.device().is_cuda() {
        1usize << 28
    } else {
        1usize << 24
    };
    if !tracked && mask.is_none() && rank >= 3 && rows > 1 && rows * per_row > max_elems {
        let lq = dims[rank - 2];
        let dh = dims[rank - 1];
        let dv = v.dim(D::Minus1)?;
        let q3 = q.reshape((rows, lq, dh))?;
        let k3 = k.reshape((rows, lk, dh))?;
        let v3 = v.reshape((rows, lk, dv))?;
        let chunk = (max_elems / per_row).max(1);
        let mut outs = Vec::with_capacity(rows.div_ceil(chunk));
        let mut start = 0;
        while start < rows {
            let n = chunk.min(rows - start);
            outs.push(attention_core(
                &q3.narrow(0, start, n)?,
                &k3.narrow(0, start, n)?,
                &v3.narrow(0, start, n)?,
                None,
                scale,
                upcast_scores,
            )?);
            start += n;
        }
        let mut out_dims = dims;
        out_dims[rank - 1] = dv;
        return Ok(Tensor::cat(&outs, 0)?.reshape(out_dims)?);
    }
    attention_core(q, k, v, mask, scale, upcast_scores)
}

fn attention_core(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
    upcast_scores: bool,
) -> Result<Tensor> {
    let dtype = q.dtype();
    // GPU inference: scores in the input dtype, scaled inside one f32 softmax pass
    if mask.is_none() && !upcast_scores && fused(q, &[k, v]) {
        let scores = q
            .contiguous()?
            .matmul(&k.transpose(D::Minus2, D::Minus1)?.contiguous()?)?;
        #[cfg(feature = "cuda")]
        let probs = crate::cuda::softmax_last_dim(&scores, scale as f32)?;
        #[cfg(not(feature = "cuda"))]
        let probs = scores;
        return Ok(probs.matmul(&v.contiguous()?)?);
    }
    let (q, k) = if upcast_scores {
        (upcast(q)?, upcast(k)?)
    } else {
        (q.clone(), k.clone())
    };
    // Scaling the queries (L x D) is cheaper than scaling the scores (L x L).
    let q = (q * scale)?;
    let scores = q
        .contiguous()?
        .matmul(&k.transpose(D::Minus2, D::Minus1)?.contiguous()?)?;
    let scores = match mask {
        Some(m) => {
            let s = upcast(&scores)?;
            let m = m.to_dtype(s.dtype())?;
            s.broadcast_add(&m)?
        }
        None => scores,
    };
    let probs = softmax_last_dim(&scores)?.to_dtype(dtype)?;
    Ok(probs.matmul(&v.contiguous()?)?)
}

/// Multi-head attention on projected tensors: `q` [B, Lq, H*Dh], `k`, `v` [B, Lk, H*Dh] →
/// [B, Lq, H*Dh]; scale `Dh^-0.5`; optional causal mask (requires Lq == Lk) and/or additive
/// mask broadcastable to [B, H, Lq, Lk].
pub fn multi_head_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    causal: bool,
    mask: Option<&Tensor>,
    upcast_scores: bool,
) -> Result<Tensor> {
    let (b, lq, inner) = q.dims3()?;
    let (_, lk, _) = k.dims3()?;
    if heads == 0 || inner % heads != 0 {
        return Err(Error::InvalidInput {
            name: "attention",
            msg: format!("inner dim {inner} is not divisible by {heads} heads"),
        });
    }
    let dh = inner / heads;
    let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32 && !t.track_op();
    if !causal && mask.is_none() && cpu_f32(q) && cpu_f32(k) && cpu_f32(v) {
        let op = crate::attention_cpu::FusedAttentionF32 {
            heads,
            scale: (dh as f32).powf(-0.5),
        };
        return Ok(q
            .contiguous()?
            .apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &op)?);
    }
    let split = |t: &Tensor, l: usize| -> Result<Tensor> {
        Ok(t.reshape((b, l, heads, dh))?
            .transpose(1, 2)?
            .contiguous()?)
    };
    let (qh, kh, vh) = (split(q, lq)?, split(k, lk)?, split(v, lk)?);
    let mut full_mask: Option<Tensor> = None;
    if causal {
        if lq != lk {
            return Err(Error::InvalidInput {
                name: "attention",
                msg: format!("causal mask needs equal lengths, got {lq} and {lk}"),
            });
        }
        full_mask = Some(causal_mask(lq, q.device())?);
    }
    if let Some(m) = mask {
        let m = m.to_dtype(DType::F32)?;
        full_mask = Some(match full_mask {
            Some(c) => m.broadcast_add(&c)?,
            None => m,
        });
    }
    let out = scaled_dot_product_attention(
        &qh,
        &kh,
        &vh,
        full_mask.as_ref(),
        (dh as f64).powf(-0.5),
        upcast_scores,
    )?;
    Ok(out.transpose(1, 2)?.reshape((b, lq, inner))?)
}

/// Exact GELU, `x * Φ(x)` with the error function (torch `gelu(approximate="none")`).
/// Inference on f32 CPU tensors takes [`FastActivationF32`].
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    match FastActivationF32::applies(x) {
        true => Ok(x
            .contiguous()?
            .apply_op1_no_bwd(&FastActivationF32::GeluErf)?),
        false => Ok(x.gelu_erf()?),
    }
}

/// Tanh-approximated GELU (torch `gelu(approximate="tanh")`, transformers `gelu_new`).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    Ok(x.gelu()?)
}

/// OpenAI CLIP's `x * sigmoid(1.702 x)`.
pub fn quick_gelu(x: &Tensor) -> Result<Tensor> {
    // x * sigmoid(a x) = silu(a x) / a
    Ok(((x * 1.702)?.silu()? / 1.702)?)
}

/// `x * sigmoid(x)`. Inference on f32 CPU tensors takes [`FastActivationF32`].
pub fn silu(x: &Tensor) -> Result<Tensor> {
    match FastActivationF32::applies(x) {
        true => Ok(x.contiguous()?.apply_op1_no_bwd(&FastActivationF32::Silu)?),
        false => Ok(x.silu()?),
    }
}

/// SiLU and exact GELU of a contiguous f32 CPU tensor with [`exp_f32`], a loop the compiler
/// vectorises (candle calls libm's `expf` and `erff` per element: a tenth of a small U-Net's
/// time). Inference only: a tensor that tracks gradients takes candle's differentiable op, so
/// training is unchanged. Tensors of 64Ki elements or more are split over the caller's pool.
#[derive(Clone, Copy, Debug)]
enum FastActivationF32 {
    Silu,
    GeluErf,
}

impl FastActivationF32 {
    fn applies(x: &Tensor) -> bool {
        !x.track_op() && x.dtype() == DType::F32 && x.device().is_cpu()
    }

    fn apply(self, src: &[f32], dst: &mut [f32]) {
        match self {
            FastActivationF32::Silu => silu_slice(src, dst),
            FastActivationF32::GeluErf => gelu_erf_slice(src, dst),
        }
    }
}

#[inline(always)]
fn silu_slice_inline(src: &[f32], dst: &mut [f32]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = v / (1.0 + exp_f32(-v));
    }
}

#[inline(always)]
fn gelu_erf_slice_inline(src: &[f32], dst: &mut [f32]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = 0.5 * v * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

crate::simd::widest_fn!(fn silu_slice(src: &[f32], dst: &mut [f32]) = silu_slice_inline);
crate::simd::widest_fn!(fn gelu_erf_slice(src: &[f32], dst: &mut [f32]) = gelu_erf_slice_inline);

impl candle_core::CustomOp1 for FastActivationF32 {
    fn name(&self) -> &'static str {
        match self {
            FastActivationF32::Silu => "brainrecon-silu-f32",
            FastActivationF32::GeluErf => "brainrecon-gelu-erf-f32",
        }
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        use rayon::prelude::*;
        let src = crate::conv::contiguous_f32(storage, layout, self.name(), "input")?;
        let mut dst = vec![0f32; src.len()];
        const CHUNK: usize = 16 * 1024;
        if src.len() >= 4 * CHUNK {
            dst.par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(|(d, s)| self.apply(s, d));
        } else {
            self.apply(src, &mut dst);
        }
        Ok((candle_core::CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// `erf(x)` for f32 without a libm call: Abramowitz & Stegun 7.1.26, absolute error below
/// 1.5e-7 (plus [`exp_f32`]'s), odd in `x`.
#[inline(always)]
pub(crate) fn erf_f32(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let mut p = 1.061_405_4f32;
    p = p * t - 1.453_152;
    p = p * t + 1.421_413_8;
    p = p * t - 0.284_496_74;
    p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp_f32(-a * a);
    y.copysign(x)
}

/// GEGLU feed-forward input projection (diffusers): `proj` [2*out, in]; returns
/// `hidden * gelu(gate)` where `hidden, gate = proj(x).chunk(2, -1)`.
#[derive(Debug, Clone)]
pub struct GeGlu {
    pub proj: Linear,
}

impl GeGlu {
    pub fn new(vb: VarBuilder, dim_in: usize, dim_out: usize) -> Result<Self> {
        Ok(Self {
            proj: Linear::new(vb.pp("proj"), dim_in, dim_out * 2, true)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.gate(&self.proj.forward(x)?)
    }

    /// `hidden * gelu(gate)` of the projection `h` [..., 2·out] → [..., out].
    pub fn gate(&self, h: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if fused(h, &[]) {
            return Ok(crate::cuda::geglu(h)?);
        }
        if cpu_f32_inference(h, &[]) {
            return Ok(h
                .contiguous()?
                .apply_op1_no_bwd(&crate::norm_cpu::GegluF32)?);
        }
        let half = h.dim(D::Minus1)? / 2;
        let hidden = h.narrow(D::Minus1, 0, half)?;
        let gate = h.narrow(D::Minus1, half, half)?;
        Ok((hidden * gelu(&gate)?)?)
    }
}

/// diffusers' `Attention` with `to_q`, `to_k`, `to_v` and `to_out.0` projections.
#[derive(Debug, Clone)]
pub struct Attention {
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    pub to_out: Linear,
    pub heads: usize,
    pub upcast_attention: bool,
}

impl Attention {
    /// `query_dim` → `heads * dim_head`; keys/values from `context_dim` (the query dim for
    /// self-attention). `qkv_bias` adds biases to q/k/v (the VAE's attention has them, the
    /// U-Net's does not); `to_out.0` always has a bias.
    pub fn new(
        vb: VarBuilder,
        query_dim: usize,
        context_dim: Option<usize>,
        heads: usize,
        dim_head: usize,
        qkv_bias: bool,
        upcast_attention: bool,
    ) -> Result<Self> {
        let inner = heads * dim_head;
        let ctx = context_dim.unwrap_or(query_dim);
        Ok(Self {
            to_q: Linear::new(vb.pp("to_q"), query_dim, inner, qkv_bias)?,
            to_k: Linear::new(vb.pp("to_k"), ctx, inner, qkv_bias)?,
            to_v: Linear::new(vb.pp("to_v"), ctx, inner, qkv_bias)?,
            to_out: Linear::new(vb.pp("to_out").pp("0"), inner, query_dim, true)?,
            heads,
            upcast_attention,
        })
    }

    /// `x` [B, L, query_dim], `context` [B, Lc, context_dim] (None: self-attention).
    pub fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let ctx = context.unwrap_or(x);
        let q = self.to_q.forward(x)?;
        let k = self.to_k.forward(ctx)?;
        let v = self.to_v.forward(ctx)?;
        let o = multi_head_attention(&q, &k, &v, self.heads, false, None, self.upcast_attention)?;
        self.to_out.forward(&o)
    }
}

/// Nearest-neighbour 2x upsampling of [B, C, H, W], written with broadcast/reshape so that its
/// backward pass accumulates correctly.
pub fn upsample_nearest_2x(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    Ok(x.reshape((b, c, h, 1, w, 1))?
        .broadcast_as((b, c, h, 2, w, 2))?
        .contiguous()?
        .reshape((b, c, 2 * h, 2 * w))?)
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        Linear::forward(self, xs).map_err(|e| match e {
            Error::Candle(c) => c,
            other => candle_core::Error::Msg(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_activations_match_libm_in_f64_and_leave_training_to_candle() -> Result<()> {
        let dev = Device::Cpu;
        // 200,001 points over [-12, 12], more than 64Ki so the parallel split runs too.
        let xs: Vec<f32> = (0..=200_000).map(|i| -12.0 + i as f32 * 1.2e-4).collect();
        let x = Tensor::from_vec(xs.clone(), xs.len(), &dev)?;
        let x64 = x.to_dtype(DType::F64)?;
        for (ours, reference, what) in [
            (silu(&x)?, x64.silu()?, "silu"),
            (gelu(&x)?, x64.gelu_erf()?, "gelu"),
        ] {
            let ours: Vec<f32> = ours.to_vec1()?;
            let reference: Vec<f64> = reference.to_vec1()?;
            for ((&v, &o), &r) in xs.iter().zip(&ours).zip(&reference) {
                let tolerance = 1e-6 * (v.abs() as f64).max(1.0);
                assert!(
                    (o as f64 - r).abs() < tolerance,
                    "{what}({v}) = {o}, expected {r}"
                );
            }
        }
        // A tensor that tracks gradients takes candle's op, which has a backward pass.
        let var = Var::from_tensor(&Tensor::new(&[-1.5f32, 0.5, 2.0], &dev)?)?;
        let loss = (silu(var.as_tensor())? + gelu(var.as_tensor())?)?.sum_all()?;
        let grad: Vec<f32> = loss.backward()?.get(var.as_tensor()).unwrap().to_vec1()?;
        assert!(
            grad.iter().all(|g| g.is_finite() && g.abs() > 1e-3),
            "{grad:?}"
        );
        Ok(())
    }

    fn det_values(n: usize, seed: u64) -> Vec<f64> {
        // A small deterministic generator (splitmix64) mapped to [-1, 1).
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            })
            .collect()
    }

    /// Central finite difference of a scalar function of one tensor, in f64.
    fn finite_diff(f: &dyn Fn(&Tensor) -> Result<Tensor>, x: &Tensor, h: f64) -> Result<Vec<f64>> {
        let base: Vec<f64> = x.flatten_all()?.to_vec1()?;
        let mut out = Vec::with_capacity(base.len());
        for i in 0..base.len() {
            let mut p = base.clone();
            p[i] += h;
            let mut m = base.clone();
            m[i] -= h;
            let fp = f(&Tensor::from_vec(p, x.shape(), x.device())?)?.to_scalar::<f64>()?;
            let fm = f(&Tensor::from_vec(m, x.shape(), x.device())?)?.to_scalar::<f64>()?;
            out.push((fp - fm) / (2.0 * h));
        }
        Ok(out)
    }

    fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn softmax_matches_definition_and_gradient_matches_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(det_values(24, 1), (2, 3, 4), &dev)?;
        let x = (x * 5.0)?;
        let probe = Tensor::from_vec(det_values(24, 2), (2, 3, 4), &dev)?;
        // Forward against the definition.
        let y: Vec<f64> = softmax_last_dim(&x)?.flatten_all()?.to_vec1()?;
        let xv: Vec<f64> = x.flatten_all()?.to_vec1()?;
        for row in 0..6 {
            let r = &xv[row * 4..row * 4 + 4];
            let z: f64 = r.iter().map(|v| v.exp()).sum();
            for j in 0..4 {
                assert!((y[row * 4 + j] - r[j].exp() / z).abs() < 1e-12);
            }
        }
        let loss =
            |t: &Tensor| -> Result<Tensor> { Ok((softmax_last_dim(t)? * &probe)?.sum_all()?) };
        let var = Var::from_tensor(&x)?;
        let grads = loss(var.as_tensor())?.backward()?;
        let g: Vec<f64> = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()?
            .to_vec1()?;
        let fd = finite_diff(&loss, &x, 1e-5)?;
        let err = max_abs_diff(&g, &fd);
        assert!(err < 1e-7, "softmax grad error {err}");
        assert!(g.iter().any(|v| v.abs() > 1e-3));
        Ok(())
    }

    #[test]
    fn layer_norm_gradients_reach_input_weight_and_bias() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(det_values(30, 3), (2, 3, 5), &dev)?;
        let w = (Tensor::from_vec(det_values(5, 4), 5, &dev)? + 1.0)?;
        let b = Tensor::from_vec(det_values(5, 5), 5, &dev)?;
        let probe = Tensor::from_vec(det_values(30, 6), (2, 3, 5), &dev)?;
        let eps = 1e-5;
        let loss_of = |x: &Tensor, w: &Tensor, b: &Tensor| -> Result<Tensor> {
            let ln = LayerNorm {
                weight: Some(w.clone()),
                bias: Some(b.clone()),
                eps,
            };
            // A nonlinear scalar so that the bias gradient is not trivial.
            Ok((ln.forward(x)?.sqr()? * &probe)?.sum_all()?)
        };
        let (xv, wv, bv) = (
            Var::from_tensor(&x)?,
            Var::from_tensor(&w)?,
            Var::from_tensor(&b)?,
        );
        let grads = loss_of(xv.as_tensor(), wv.as_tensor(), bv.as_tensor())?.backward()?;
        let gx: Vec<f64> = grads
            .get(xv.as_tensor())
            .unwrap()
            .flatten_all()?
            .to_vec1()?;
        let gw: Vec<f64> = grads
            .get(wv.as_tensor())
            .unwrap()
            .flatten_all()?
            .to_vec1()?;
        let gb: Vec<f64> = grads
            .get(bv.as_tensor())
            .unwrap()
            .flatten_all()?
            .to_vec1()?;
        let fx = finite_diff(&|t| loss_of(t, &w, &b), &x, 1e-5)?;
        let fw = finite_diff(&|t| loss_of(&x, t, &b), &w, 1e-5)?;
        let fb = finite_diff(&|t| loss_of(&x, &w, t), &b, 1e-5)?;
        for (name, g, f) in [("x", &gx, &fx), ("weight", &gw, &fw), ("bias", &gb, &fb)] {
            let err = max_abs_diff(g, f);
            assert!(err < 1e-6, "layer norm grad error for {name}: {err}");
            assert!(g.iter().any(|v| v.abs() > 1e-3), "{name} grad is zero");
        }
        Ok(())
    }

    #[test]
    fn group_norm_gradient_matches_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(det_values(2 * 4 * 3 * 2, 7), (2, 4, 3, 2), &dev)?;
        let w = (Tensor::from_vec(det_values(4, 8), 4, &dev)? + 1.0)?;
        let b = Tensor::from_vec(det_values(4, 9), 4, &dev)?;
        let probe = Tensor::from_vec(det_values(48, 10), (2, 4, 3, 2), &dev)?;
        let loss_of = |x: &Tensor, w: &Tensor| -> Result<Tensor> {
            let gn = GroupNorm {
                weight: w.clone(),
                bias: b.clone(),
                num_groups: 2,
                eps: 1e-6,
            };
            Ok((gn.forward(x)?.sqr()? * &probe)?.sum_all()?)
        };
        let (xv, wv) = (Var::from_tensor(&x)?, Var::from_tensor(&w)?);
        let grads = loss_of(xv.as_tensor(), wv.as_tensor())?.backward()?;
        let gx: Vec<f64> = grads
            .get(xv.as_tensor())
            .unwrap()
            .flatten_all()?
            .to_vec1()?;
        let gw: Vec<f64> = grads
            .get(wv.as_tensor())
            .unwrap()
            .flatten_all()?
            .to_vec1()?;
        assert!(max_abs_diff(&gx, &finite_diff(&|t| loss_of(t, &w), &x, 1e-5)?) < 1e-6);
        assert!(max_abs_diff(&gw, &finite_diff(&|t| loss_of(&x, t), &w, 1e-5)?) < 1e-6);
        Ok(())
    }

    #[test]
    fn conv_attention_and_activations_are_differentiable() -> Result<()> {
        let dev = Device::Cpu;
        // Strided conv + 2x upsample + GEGLU-style activations + causal attention.
        let x = Tensor::from_vec(det_values(2 * 3 * 6 * 6, 11), (2, 3, 6, 6), &dev)?;
        let k = Tensor::from_vec(det_values(4 * 3 * 3 * 3, 12), (4, 3, 3, 3), &dev)?;
        let probe = Tensor::from_vec(det_values(2 * 4 * 6 * 6, 13), (2, 4, 6, 6), &dev)?;
        let loss_of = |x: &Tensor, k: &Tensor| -> Result<Tensor> {
            let conv = Conv2d {
                weight: k.clone(),
                bias: None,
                stride: 2,
                padding: 1,
            };
            let y = upsample_nearest_2x(&conv.forward(x)?)?; // [2, 4, 6, 6]
            let y = (gelu(&y)? + gelu_tanh(&y)? + quick_gelu(&y)? + silu(&y)?)?;
            let seq = y.reshape((2, 4, 36))?.transpose(1, 2)?.contiguous()?; // [2, 36, 4]
            let a = multi_head_attention(&seq, &seq, &seq, 2, true, None, false)?;
            let a = a.transpose(1, 2)?.reshape((2, 4, 6, 6))?;
            Ok((a * &probe)?.sum_all()?)
        };
        let (xv, kv) = (Var::from_tensor(&x)?, Var::from_tensor(&k)?);
        let grads = loss_of(xv.as_tensor(), kv.as_tensor())?.backward()?;
        let gx: Vec<f64> = grads
            .get(xv.as_tensor())
            .unwrap()
            .flatten_all()?
            .to_vec1()?;
        let gk: Vec<f64> = grads
            .get(kv.as_tensor())
            .unwrap()
            .flatten_all()?
            .to_vec1()?;
        let ex = max_abs_diff(&gx, &finite_diff(&|t| loss_of(t, &k), &x, 1e-5)?);
        let ek = max_abs_diff(&gk, &finite_diff(&|t| loss_of(&x, t), &k, 1e-5)?);
        // candle's GELU backward formulas use 6-digit constants (0.398942, 0.0356774), so the
        // tolerance is relative to the gradient scale rather than at f64 precision.
        let scale = |g: &[f64]| g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale(&gx) > 1e-2 && scale(&gk) > 1e-2);
        assert!(ex < 1e-5 * scale(&gx), "input grad error {ex}");
        assert!(ek < 1e-5 * scale(&gk), "kernel grad error {ek}");
        Ok(())
    }

    /// f32 softmax while gradients are tracked: the one-pass op and its one-pass backward
    /// against the elementary ops in f64, on rows with a wide range and a constant row.
    #[test]
    fn trainable_f32_softmax_matches_the_elementary_ops() -> Result<()> {
        let dev = Device::Cpu;
        let mut v = det_values(7 * 37, 41);
        v.iter_mut().for_each(|x| *x *= 30.0);
        v[..37].iter_mut().for_each(|x| *x = 2.5);
        let x64 = Tensor::from_vec(v, (7, 37), &dev)?;
        let probe64 = Tensor::from_vec(det_values(7 * 37, 42), (7, 37), &dev)?;
        let run = |x: &Tensor, probe: &Tensor| -> Result<(Vec<f64>, Vec<f64>)> {
            let var = Var::from_tensor(x)?;
            let y = softmax_last_dim(var.as_tensor())?;
            let grads = (&y * probe)?.sum_all()?.backward()?;
            let g = grads.get(var.as_tensor()).expect("a gradient");
            let flat = |t: &Tensor| -> Result<Vec<f64>> {
                Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?)
            };
            Ok((flat(&y)?, flat(g)?))
        };
        let (y64, g64) = run(&x64, &probe64)?;
        let (y32, g32) = run(&x64.to_dtype(DType::F32)?, &probe64.to_dtype(DType::F32)?)?;
        let gscale = g64.iter().fold(0f64, |m, v| m.max(v.abs()));
        assert!(max_abs_diff(&y32, &y64) < 1e-6, "softmax values");
        assert!(
            max_abs_diff(&g32, &g64) < 1e-5 * gscale,
            "softmax gradients"
        );
        // the constant row: uniform probabilities, gradient summing to zero
        assert!(y32[..37].iter().all(|p| (p - 1.0 / 37.0).abs() < 1e-7));
        assert!(g32[..37].iter().sum::<f64>().abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn fused_inference_paths_agree_with_differentiable_paths() -> Result<()> {
        let dev = Device::Cpu;
        // Softmax: fused kernel (constant input) vs elementary ops.
        let x =
            (Tensor::from_vec(det_values(600, 30), (4, 150), &dev)?.to_dtype(DType::F32)? * 20.0)?;
        let fused = softmax_last_dim(&x)?;
        let ops = softmax_last_dim_differentiable(&x)?;
        let d = (fused - ops)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-6, "softmax paths differ by {d}");
        // Attention: chunked inference path (2 x 3000 x 3000 scores > 2^24) vs one-shot
        // tracked path.
        let mk = |seed| -> Result<Tensor> {
            Ok(
                Tensor::from_vec(det_values(2 * 3000 * 8, seed), (2, 1, 3000, 8), &dev)?
                    .to_dtype(DType::F32)?,
            )
        };
        let (q, k, v) = (mk(31)?, mk(32)?, mk(33)?);
        let chunked = scaled_dot_product_attention(&q, &k, &v, None, 0.5, false)?;
        let qv = Var::from_tensor(&q)?;
        let whole = scaled_dot_product_attention(qv.as_tensor(), &k, &v, None, 0.5, false)?;
        let d = (chunked - whole.detach())?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(d < 1e-6, "attention paths differ by {d}");
        Ok(())
    }

    #[test]
    fn fast_exp_is_accurate() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 0.5 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) < 1e-37);
    }

    #[test]
    fn causal_attention_ignores_future_positions() -> Result<()> {
        let dev = Device::Cpu;
        let q = Tensor::from_vec(det_values(5 * 4, 20), (1, 5, 4), &dev)?.to_dtype(DType::F32)?;
        let v1 = Tensor::from_vec(det_values(20, 21), (1, 5, 4), &dev)?.to_dtype(DType::F32)?;
        // Changing the last position must not change the outputs at earlier positions.
        let mut vals: Vec<f32> = v1.flatten_all()?.to_vec1()?;
        for x in vals[16..].iter_mut() {
            *x += 3.0;
        }
        let v2 = Tensor::from_vec(vals, (1, 5, 4), &dev)?;
        let a1 = multi_head_attention(&q, &v1, &v1, 2, true, None, false)?;
        let a2 = multi_head_attention(&q, &v2, &v2, 2, true, None, false)?;
        let d = (a1 - a2)?.abs()?;
        let early = d.narrow(1, 0, 4)?.max_all()?.to_scalar::<f32>()?;
        let last = d.narrow(1, 4, 1)?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(early, 0.0);
        assert!(last > 0.1);
        Ok(())
    }

    #[test]
    fn missing_and_misshapen_weights_are_named() {
        let dev = Device::Cpu;
        let mut ts = HashMap::new();
        ts.insert(
            "blk.proj.weight".to_string(),
            Tensor::zeros((3, 2), DType::F32, &dev).unwrap(),
        );
        let vb = tensors_var_builder(ts, DType::F32, &dev);
        match Linear::new(vb.pp("blk").pp("proj"), 2, 3, true) {
            Err(Error::MissingTensor { name }) => assert_eq!(name, "blk.proj.bias"),
            other => panic!("expected a missing tensor, got {other:?}"),
        }
        match Linear::new(vb.pp("blk").pp("proj"), 3, 3, false) {
            Err(Error::ShapeMismatch {
                name,
                expected,
                got,
            }) => {
                assert_eq!(name, "blk.proj.weight");
                assert_eq!(expected, vec![3, 3]);
                assert_eq!(got, vec![3, 2]);
            }
            other => panic!("expected a shape mismatch, got {other:?}"),
        }
    }
}
