//! Fused inference kernels for NVIDIA GPUs (`cuda` feature): group norm (+ SiLU), layer norm,
//! per-channel affine and bias, softmax, GEGLU and the columns of a convolution, each one or two
//! passes over memory where candle's generic ops take several (and casts to f32 and back).
//!
//! They serve inference only: callers take them when a tensor is on a CUDA device and tracks no
//! gradient; training keeps the differentiable ops of [`crate::layers`]. The kernels
//! (`kernels.cu`) are compiled by NVRTC once per process for the device's architecture.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::{DevicePtr, LaunchConfig, PushKernelArg};
use candle_core::cuda::cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use candle_core::cuda::{CudaDType, CudaStorageSlice};
use candle_core::{
    bail, CpuStorage, CudaDevice, CudaStorage, CustomOp1, DType, Layout, Shape, Storage, Tensor,
};

const KERNELS: &str = include_str!("kernels.cu");

/// Module name and PTX per device ordinal (NVRTC runs once per device and process).
static PTX: Mutex<Option<HashMap<usize, (&'static str, &'static str)>>> = Mutex::new(None);

fn ptx(device: &CudaDevice) -> candle_core::Result<(&'static str, &'static str)> {
    let context = device.cuda_stream().context().clone();
    let mut cache = PTX.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(found) = cache.get(&context.ordinal()) {
        return Ok(*found);
    }
    let (major, minor) = context
        .compute_capability()
        .map_err(|e| candle_core::Error::Msg(format!("reading the compute capability: {e:?}")))?;
    let arch: &'static str = Box::leak(format!("sm_{major}{minor}").into_boxed_str());
    let ptx = compile_ptx_with_opts(
        KERNELS,
        CompileOptions {
            arch: Some(arch),
            ..Default::default()
        },
    )
    .map_err(|e| candle_core::Error::Msg(format!("compiling the fused kernels with NVRTC: {e:?}")))?
    .to_src();
    let entry: (&'static str, &'static str) = (
        Box::leak(format!("brainrecon_sm{major}{minor}").into_boxed_str()),
        Box::leak(ptx.into_boxed_str()),
    );
    cache.insert(context.ordinal(), entry);
    Ok(entry)
}

/// Compiles and loads the kernels now (model loading calls this, so that the first step of a
/// stream does not wait for NVRTC).
pub fn warm_up(device: &candle_core::Device) -> candle_core::Result<()> {
    if let candle_core::Device::Cuda(device) = device {
        let (module, ptx) = ptx(device)?;
        device.get_or_load_custom_func("softmax_rows_f32", module, ptx)?;
    }
    Ok(())
}

/// A kernel argument: a device address (0 = null) or a scalar.
#[derive(Clone, Copy)]
enum Arg {
    Ptr(u64),
    I32(i32),
    I64(i64),
    F32(f32),
}

fn launch(
    device: &CudaDevice,
    name: &str,
    config: LaunchConfig,
    args: &[Arg],
) -> candle_core::Result<()> {
    let (module, ptx) = ptx(device)?;
    let function = device.get_or_load_custom_func(name, module, ptx)?;
    let mut builder = function.builder();
    for arg in args {
        match arg {
            Arg::Ptr(v) => builder.arg(v),
            Arg::I32(v) => builder.arg(v),
            Arg::I64(v) => builder.arg(v),
            Arg::F32(v) => builder.arg(v),
        };
    }
    unsafe { builder.launch(config) }
        .map(|_| ())
        .map_err(|e| candle_core::Error::Msg(format!("launching {name}: {e:?}")))
}

fn suffix(dtype: DType) -> candle_core::Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        other => bail!("fused CUDA kernels: unsupported dtype {other:?}"),
    })
}

/// The device address of a contiguous CUDA tensor's first element.
fn address(storage: &CudaStorage, layout: &Layout) -> candle_core::Result<u64> {
    if !layout.is_contiguous() {
        bail!("fused CUDA kernels need contiguous inputs");
    }
    let stream = storage.device.cuda_stream();
    let offset = layout.start_offset() as u64;
    // one stream orders all of candle's work, so the addresses stay valid for the launch
    Ok(match &storage.slice {
        CudaStorageSlice::F32(s) => s.device_ptr(&stream).0 + 4 * offset,
        CudaStorageSlice::F16(s) => s.device_ptr(&stream).0 + 2 * offset,
        CudaStorageSlice::BF16(s) => s.device_ptr(&stream).0 + 2 * offset,
        _ => bail!(
            "fused CUDA kernels: unsupported dtype {:?}",
            storage.dtype()
        ),
    })
}

/// The device address of a parameter tensor, or 0 when absent; checks its dtype and length.
fn parameter(t: Option<&Tensor>, dtype: DType, len: usize, what: &str) -> candle_core::Result<u64> {
    let Some(t) = t else { return Ok(0) };
    if t.dtype() != dtype || t.elem_count() != len {
        bail!(
            "{what}: expected {len} values of {dtype:?}, found {:?} of {:?}",
            t.dims(),
            t.dtype()
        );
    }
    // a contiguous copy made here would be freed before the kernel runs: weights are contiguous
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cuda(s) => address(s, layout),
        _ => bail!("{what}: the parameter is not on the GPU"),
    }
}

/// A new uninitialised buffer of `len` elements of `dtype` on `device`.
fn output(
    device: &CudaDevice,
    dtype: DType,
    len: usize,
) -> candle_core::Result<(CudaStorage, u64)> {
    fn make<T: CudaDType + candle_core::cuda::cudarc::driver::DeviceRepr>(
        device: &CudaDevice,
        len: usize,
    ) -> candle_core::Result<(CudaStorage, u64)> {
        let slice = unsafe { device.alloc::<T>(len.max(1)) }?;
        let address = slice.device_ptr(&device.cuda_stream()).0;
        Ok((CudaStorage::wrap_cuda_slice(slice, device.clone()), address))
    }
    match dtype {
        DType::F32 => make::<f32>(device, len),
        DType::F16 => make::<half::f16>(device, len),
        DType::BF16 => make::<half::bf16>(device, len),
        other => bail!("fused CUDA kernels: unsupported dtype {other:?}"),
    }
}

fn grid(x: usize, y: usize, block: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (
            (x.max(1) as u32).min(2048),
            (y.max(1) as u32).min(65_535),
            1,
        ),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A contiguous CUDA tensor as a fused kernel reads it.
struct Input<'a> {
    device: &'a CudaDevice,
    dtype: DType,
    /// Kernel name suffix of the dtype (`f32`, `f16`, `bf16`).
    suffix: &'static str,
    /// Device address of the first element.
    address: u64,
    layout: &'a Layout,
}

/// One fused inference kernel (or a few launches): the output storage and shape.
trait FusedKernel {
    const NAME: &'static str;
    fn run(&self, x: &Input) -> candle_core::Result<(CudaStorage, Shape)>;
}

/// A [`FusedKernel`] as a candle op: CUDA only, no backward pass.
struct Fused<K>(K);

impl<K: FusedKernel> CustomOp1 for Fused<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        bail!(
            "{} is a CUDA kernel; on the CPU the differentiable ops run instead",
            K::NAME
        )
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let dtype = x.dtype();
        let input = Input {
            device: &x.device,
            dtype,
            suffix: suffix(dtype)?,
            address: address(x, layout)?,
            layout,
        };
        self.0.run(&input)
    }
}

/// Runs `kernel` on (a contiguous copy of) `x`.
fn apply<K: FusedKernel>(x: &Tensor, kernel: K) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&Fused(kernel))
}

/// Group norm over [B, C, ...] with optional SiLU.
struct GroupNormOp {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f32,
    silu: bool,
}

impl FusedKernel for GroupNormOp {
    const NAME: &'static str = "brainrecon-group-norm";

    fn run(&self, x: &Input) -> candle_core::Result<(CudaStorage, Shape)> {
        let dims = x.layout.dims();
        let (batch, channels) = (dims[0], dims[1]);
        let plane: usize = dims[2..].iter().product();
        let (dtype, s, device, x_ptr) = (x.dtype, x.suffix, x.device, x.address);
        let w = parameter(Some(&self.weight), dtype, channels, "group norm weight")?;
        let b = parameter(Some(&self.bias), dtype, channels, "group norm bias")?;
        let groups = batch * self.groups;
        let group_len = channels / self.groups * plane;
        let chunks = group_len.div_ceil(8192).clamp(1, 1024);
        let part = device.alloc_zeros::<f32>(groups * chunks * 3)?;
        let stats = device.alloc_zeros::<f32>(groups * 2)?;
        let stream = device.cuda_stream();
        let (part_ptr, stats_ptr) = (part.device_ptr(&stream).0, stats.device_ptr(&stream).0);
        let moments = LaunchConfig {
            grid_dim: (chunks as u32, groups as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        launch(
            device,
            &format!("group_moments_{s}"),
            moments,
            &[
                Arg::Ptr(x_ptr),
                Arg::I64(group_len as i64),
                Arg::I32(chunks as i32),
                Arg::Ptr(part_ptr),
            ],
        )?;
        launch(
            device,
            "group_finish_f32",
            grid(groups.div_ceil(128), 1, 128),
            &[
                Arg::Ptr(part_ptr),
                Arg::I32(groups as i32),
                Arg::I32(chunks as i32),
                Arg::F32(self.eps),
                Arg::Ptr(stats_ptr),
            ],
        )?;
        let rows = batch * channels;
        let (out, y) = output(device, dtype, rows * plane)?;
        launch(
            device,
            &format!("group_apply_{s}"),
            grid(plane.div_ceil(256).min(64), rows, 256),
            &[
                Arg::Ptr(x_ptr),
                Arg::Ptr(w),
                Arg::Ptr(b),
                Arg::Ptr(stats_ptr),
                Arg::Ptr(y),
                Arg::I32(rows as i32),
                Arg::I32(channels as i32),
                Arg::I32(plane as i32),
                Arg::I32((channels / self.groups) as i32),
                Arg::I32(self.silu as i32),
            ],
        )?;
        Ok((out, x.layout.shape().clone()))
    }
}

/// Layer norm over the last dimension.
struct LayerNormOp {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    eps: f32,
}

impl FusedKernel for LayerNormOp {
    const NAME: &'static str = "brainrecon-layer-norm";

    fn run(&self, x: &Input) -> candle_core::Result<(CudaStorage, Shape)> {
        let dim = *x.layout.dims().last().unwrap_or(&1);
        let rows = x.layout.shape().elem_count() / dim.max(1);
        let (dtype, s, device, x_ptr) = (x.dtype, x.suffix, x.device, x.address);
        let w = parameter(self.weight.as_ref(), dtype, dim, "layer norm weight")?;
        let b = parameter(self.bias.as_ref(), dtype, dim, "layer norm bias")?;
        let (out, y) = output(device, dtype, rows * dim)?;
        let config = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (if dim >= 1024 { 256 } else { 128 }, 1, 1),
            shared_mem_bytes: 0,
        };
        launch(
            device,
            &format!("layer_norm_{s}"),
            config,
            &[
                Arg::Ptr(x_ptr),
                Arg::Ptr(w),
                Arg::Ptr(b),
                Arg::Ptr(y),
                Arg::I32(dim as i32),
                Arg::F32(self.eps),
            ],
        )?;
        Ok((out, x.layout.shape().clone()))
    }
}

/// `y = x·scale[c] + shift[c]` over dimension 1 of [B, C, ...] (a bias over the last
/// dimension when the input is [rows, C]).
struct ChannelAffineOp {
    scale: Option<Tensor>,
    shift: Option<Tensor>,
}

impl FusedKernel for ChannelAffineOp {
    const NAME: &'static str = "brainrecon-channel-affine";

    fn run(&self, x: &Input) -> candle_core::Result<(CudaStorage, Shape)> {
        let dims = x.layout.dims();
        let channels = dims[1];
        let plane: usize = dims[2..].iter().product();
        let total = x.layout.shape().elem_count();
        let rows = total / plane;
        let (dtype, s, device, x_ptr) = (x.dtype, x.suffix, x.device, x.address);
        let a = parameter(self.scale.as_ref(), dtype, channels, "channel scale")?;
        let b = parameter(self.shift.as_ref(), dtype, channels, "channel shift")?;
        let (out, y) = output(device, dtype, total)?;
        let config = if plane == 1 {
            grid(channels.div_ceil(256), rows / channels, 256)
        } else {
            grid(plane.div_ceil(256).min(64), rows, 256)
        };
        launch(
            device,
            &format!("channel_affine_{s}"),
            config,
            &[
                Arg::Ptr(x_ptr),
                Arg::Ptr(a),
                Arg::Ptr(b),
                Arg::Ptr(y),
                Arg::I32(rows as i32),
                Arg::I32(channels as i32),
                Arg::I32(plane as i32),
            ],
        )?;
        Ok((out, x.layout.shape().clone()))
    }
}

/// Values per thread of the long-row softmax kernel (`LONG_ROW` in kernels.cu).
const LONG_ROW: usize = 16;

/// Softmax over the last dimension of `x·scale`, computed in f32.
struct SoftmaxOp {
    scale: f32,
}

impl FusedKernel for SoftmaxOp {
    const NAME: &'static str = "brainrecon-softmax";

    fn run(&self, x: &Input) -> candle_core::Result<(CudaStorage, Shape)> {
        let cols = *x.layout.dims().last().unwrap_or(&1);
        let total = x.layout.shape().elem_count();
        let rows = total / cols.max(1);
        let (dtype, s, device, x_ptr) = (x.dtype, x.suffix, x.device, x.address);
        let (out, y) = output(device, dtype, total)?;
        if cols > 1024 && cols <= 256 * LONG_ROW {
            // long rows (self-attention over a 64×64 latent): a block per row, held in registers
            let config = LaunchConfig {
                grid_dim: (rows as u32, 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            launch(
                device,
                &format!("softmax_long_rows_{s}"),
                config,
                &[
                    Arg::Ptr(x_ptr),
                    Arg::Ptr(y),
                    Arg::I32(cols as i32),
                    Arg::F32(self.scale),
                ],
            )?;
        } else {
            let config = LaunchConfig {
                grid_dim: (rows.div_ceil(8) as u32, 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            launch(
                device,
                &format!("softmax_rows_{s}"),
                config,
                &[
                    Arg::Ptr(x_ptr),
                    Arg::Ptr(y),
                    Arg::I64(rows as i64),
                    Arg::I32(cols as i32),
                    Arg::F32(self.scale),
                ],
            )?;
        }
        Ok((out, x.layout.shape().clone()))
    }
}

/// `hidden · gelu(gate)` of `hidden, gate = x.chunk(2, -1)`.
struct GegluOp;

impl FusedKernel for GegluOp {
    const NAME: &'static str = "brainrecon-geglu";

    fn run(&self, x: &Input) -> candle_core::Result<(CudaStorage, Shape)> {
        let mut dims = x.layout.dims().to_vec();
        let width = *dims.last().unwrap_or(&0);
        if width % 2 == 1 {
            bail!("GEGLU: the last dimension ({width}) is odd");
        }
        let dim = width / 2;
        let rows = x.layout.shape().elem_count() / width.max(1);
        let (dtype, s, device, x_ptr) = (x.dtype, x.suffix, x.device, x.address);
        let (out, y) = output(device, dtype, rows * dim)?;
        launch(
            device,
            &format!("geglu_{s}"),
            grid(dim.div_ceil(256), rows, 256),
            &[
                Arg::Ptr(x_ptr),
                Arg::Ptr(y),
                Arg::I32(rows as i32),
                Arg::I32(dim as i32),
            ],
        )?;
        *dims.last_mut().unwrap() = dim;
        Ok((out, Shape::from(dims)))
    }
}

/// The columns of a convolution of one image [C, H, W] over output rows
/// `first_row..first_row + rows_out`: [C·kh·kw, rows_out·out_w].
struct Im2colOp {
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    out_w: usize,
    first_row: usize,
    rows_out: usize,
}

impl FusedKernel for Im2colOp {
    const NAME: &'static str = "brainrecon-im2col";

    fn run(&self, x: &Input) -> candle_core::Result<(CudaStorage, Shape)> {
        let (channels, height, width) = x.layout.shape().dims3()?;
        let (kh, kw) = self.kernel;
        let taps = channels * kh * kw;
        let pixels = self.rows_out * self.out_w;
        let (dtype, s, device, x_ptr) = (x.dtype, x.suffix, x.device, x.address);
        let (out, cols) = output(device, dtype, taps * pixels)?;
        // eight pixels per thread and one wide store where rows hold whole groups of eight
        let (kernel, per_thread) = match self.out_w % 8 {
            0 => (format!("im2col8_{s}"), 8),
            _ => (format!("im2col_{s}"), 1),
        };
        launch(
            device,
            &kernel,
            grid((pixels / per_thread).div_ceil(256).min(64), taps, 256),
            &[
                Arg::Ptr(x_ptr),
                Arg::Ptr(cols),
                Arg::I32(channels as i32),
                Arg::I32(height as i32),
                Arg::I32(width as i32),
                Arg::I32(kh as i32),
                Arg::I32(kw as i32),
                Arg::I32(self.stride.0 as i32),
                Arg::I32(self.stride.1 as i32),
                Arg::I32(self.padding.0 as i32),
                Arg::I32(self.padding.1 as i32),
                Arg::I32(self.out_w as i32),
                Arg::I32(self.first_row as i32),
                Arg::I32(self.rows_out as i32),
            ],
        )?;
        Ok((out, Shape::from((taps, pixels))))
    }
}

/// Whether `x` can take the fused kernels: on a CUDA device, tracking no gradient, f32/f16/bf16.
pub fn applies(x: &Tensor) -> bool {
    x.device().is_cuda()
        && !x.track_op()
        && matches!(x.dtype(), DType::F32 | DType::F16 | DType::BF16)
}

/// Group norm of [B, C, ...] (then SiLU when `silu`).
pub fn group_norm(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    groups: usize,
    eps: f64,
    silu: bool,
) -> candle_core::Result<Tensor> {
    let kernel = GroupNormOp {
        weight: weight.clone(),
        bias: bias.clone(),
        groups,
        eps: eps as f32,
        silu,
    };
    apply(x, kernel)
}

/// Layer norm over the last dimension.
pub fn layer_norm(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let op = LayerNormOp {
        weight: weight.cloned(),
        bias: bias.cloned(),
        eps: eps as f32,
    };
    apply(x, op)
}

/// `x·scale[c] + shift[c]` over dimension 1.
pub fn channel_affine(
    x: &Tensor,
    scale: Option<&Tensor>,
    shift: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let op = ChannelAffineOp {
        scale: scale.cloned(),
        shift: shift.cloned(),
    };
    apply(x, op)
}

/// Softmax over the last dimension of `x·scale`, in f32, returned in x's dtype.
pub fn softmax_last_dim(x: &Tensor, scale: f32) -> candle_core::Result<Tensor> {
    apply(x, SoftmaxOp { scale })
}

/// GEGLU: `hidden · gelu(gate)` with `hidden, gate = x.chunk(2, -1)`.
pub fn geglu(x: &Tensor) -> candle_core::Result<Tensor> {
    apply(x, GegluOp)
}

/// Convolution columns are made in bands of output rows of at most this many values.
const COLUMN_BUDGET: usize = 1 << 27;

/// Convolution (no bias) of [B, C, H, W] with [O, C, kh, kw], padding and stride as (rows,
/// columns), as columns × weight products on cuBLAS: 1×1 convolutions multiply directly; others
/// build the columns of each image (in bands of output rows when they would exceed
/// [`COLUMN_BUDGET`] values).
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    padding: (usize, usize),
    stride: (usize, usize),
) -> candle_core::Result<Tensor> {
    let (batch, channels, height, width) = x.dims4()?;
    let (out_channels, _, kh, kw) = weight.dims4()?;
    let ((ph, pw), (sh, sw)) = (padding, stride);
    if height + 2 * ph < kh || width + 2 * pw < kw || sh == 0 || sw == 0 {
        bail!("convolution: a {kh}×{kw} kernel does not fit a {height}×{width} input padded by {padding:?}");
    }
    let out_h = (height + 2 * ph - kh) / sh + 1;
    let out_w = (width + 2 * pw - kw) / sw + 1;
    let taps = channels * kh * kw;
    let w2 = weight.contiguous()?.reshape((out_channels, taps))?;
    if kh == 1 && kw == 1 && stride == (1, 1) && padding == (0, 0) {
        let flat = x.contiguous()?.reshape((batch, channels, height * width))?;
        return w2.broadcast_left(batch)?.matmul(&flat)?.reshape((
            batch,
            out_channels,
            out_h,
            out_w,
        ));
    }
    let x = x.contiguous()?;
    let band = (COLUMN_BUDGET / (taps * out_w).max(1)).clamp(1, out_h);
    let mut images = Vec::with_capacity(batch);
    for b in 0..batch {
        let image = x.get(b)?;
        let mut bands = Vec::with_capacity(out_h.div_ceil(band));
        let mut first_row = 0;
        while first_row < out_h {
            let rows_out = band.min(out_h - first_row);
            let op = Im2colOp {
                kernel: (kh, kw),
                stride,
                padding,
                out_w,
                first_row,
                rows_out,
            };
            let cols = apply(&image, op)?;
            bands.push(w2.matmul(&cols)?);
            first_row += rows_out;
        }
        let image = if bands.len() == 1 {
            bands.pop().unwrap()
        } else {
            Tensor::cat(&bands, 1)?
        };
        images.push(image.reshape((out_channels, out_h, out_w))?);
    }
    Tensor::stack(&images, 0)
}
