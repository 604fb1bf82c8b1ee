//! One CUDA device as the GPU ridge solver uses it: a stream, a cuBLAS and a cuSOLVER handle
//! bound to it, and the solver's own kernels (compiled by NVRTC for this device).
//!
//! Everything runs on the one stream, so its order is the only synchronisation needed; the
//! host waits only where it reads results back.

use std::sync::Arc;

use cudarc::cublas::{sys as blas, CudaBlas};
use cudarc::cusolver::{sys as lapack, DnHandle};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DeviceRepr,
    LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};

use crate::error::{Result, RidgeError};

const KERNELS: &str = include_str!("kernels.cu");

/// A device pointer as the kernels and the libraries take it (0 = null).
pub(crate) type Ptr = u64;

/// Maps any CUDA-side failure to the crate's error, naming the step.
pub(crate) fn gpu_error(step: &str, error: impl std::fmt::Debug) -> RidgeError {
    RidgeError::Gpu(format!("{step}: {error:?}"))
}

/// Element type of the solver's matrices on the device: f32 or f64.
pub(crate) trait GpuReal:
    DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + 'static
{
    /// Suffix of the kernels instantiated for this type.
    const SUFFIX: &'static str;
    fn of(v: f64) -> Self;
    /// `C = α op(A) op(B) + β C` (cuBLAS gemm).
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        blas: &CudaBlas,
        ta: bool,
        tb: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f64,
        a: Ptr,
        lda: usize,
        b: Ptr,
        ldb: usize,
        beta: f64,
        c: Ptr,
        ldc: usize,
    ) -> blas::cublasStatus_t;
    /// `y = α op(A) x + β y` (cuBLAS gemv).
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemv(
        blas: &CudaBlas,
        ta: bool,
        m: usize,
        n: usize,
        alpha: f64,
        a: Ptr,
        lda: usize,
        x: Ptr,
        beta: f64,
        y: Ptr,
    ) -> blas::cublasStatus_t;
    /// Workspace length of the eigendecomposition of an n×n matrix.
    unsafe fn syevd_work(
        dn: &DnHandle,
        n: usize,
        a: Ptr,
        lda: usize,
        w: Ptr,
        lwork: &mut i32,
    ) -> lapack::cusolverStatus_t;
    /// Eigenvalues (ascending) into `w` and eigenvectors over `a` of the lower triangle of `a`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn syevd(
        dn: &DnHandle,
        n: usize,
        a: Ptr,
        lda: usize,
        w: Ptr,
        work: Ptr,
        lwork: i32,
        info: Ptr,
    ) -> lapack::cusolverStatus_t;
}

fn op(transpose: bool) -> blas::cublasOperation_t {
    if transpose {
        blas::cublasOperation_t::CUBLAS_OP_T
    } else {
        blas::cublasOperation_t::CUBLAS_OP_N
    }
}

macro_rules! gpu_real {
    ($t:ty, $suffix:literal, $gemm:ident, $gemv:ident, $work:ident, $syevd:ident) => {
        impl GpuReal for $t {
            const SUFFIX: &'static str = $suffix;
            fn of(v: f64) -> Self {
                v as $t
            }
            unsafe fn gemm(
                blas: &CudaBlas,
                ta: bool,
                tb: bool,
                m: usize,
                n: usize,
                k: usize,
                alpha: f64,
                a: Ptr,
                lda: usize,
                b: Ptr,
                ldb: usize,
                beta: f64,
                c: Ptr,
                ldc: usize,
            ) -> blas::cublasStatus_t {
                let (alpha, beta) = (alpha as $t, beta as $t);
                blas::$gemm(
                    *blas.handle(),
                    op(ta),
                    op(tb),
                    m as i32,
                    n as i32,
                    k as i32,
                    &alpha,
                    a as *const $t,
                    lda as i32,
                    b as *const $t,
                    ldb as i32,
                    &beta,
                    c as *mut $t,
                    ldc as i32,
                )
            }
            unsafe fn gemv(
                blas: &CudaBlas,
                ta: bool,
                m: usize,
                n: usize,
                alpha: f64,
                a: Ptr,
                lda: usize,
                x: Ptr,
                beta: f64,
                y: Ptr,
            ) -> blas::cublasStatus_t {
                let (alpha, beta) = (alpha as $t, beta as $t);
                blas::$gemv(
                    *blas.handle(),
                    op(ta),
                    m as i32,
                    n as i32,
                    &alpha,
                    a as *const $t,
                    lda as i32,
                    x as *const $t,
                    1,
                    &beta,
                    y as *mut $t,
                    1,
                )
            }
            unsafe fn syevd_work(
                dn: &DnHandle,
                n: usize,
                a: Ptr,
                lda: usize,
                w: Ptr,
                lwork: &mut i32,
            ) -> lapack::cusolverStatus_t {
                lapack::$work(
                    dn.cu(),
                    lapack::cusolverEigMode_t::CUSOLVER_EIG_MODE_VECTOR,
                    lapack::cublasFillMode_t::CUBLAS_FILL_MODE_LOWER,
                    n as i32,
                    a as *const $t,
                    lda as i32,
                    w as *const $t,
                    lwork,
                )
            }
            unsafe fn syevd(
                dn: &DnHandle,
                n: usize,
                a: Ptr,
                lda: usize,
                w: Ptr,
                work: Ptr,
                lwork: i32,
                info: Ptr,
            ) -> lapack::cusolverStatus_t {
                lapack::$syevd(
                    dn.cu(),
                    lapack::cusolverEigMode_t::CUSOLVER_EIG_MODE_VECTOR,
                    lapack::cublasFillMode_t::CUBLAS_FILL_MODE_LOWER,
                    n as i32,
                    a as *mut $t,
                    lda as i32,
                    w as *mut $t,
                    work as *mut $t,
                    lwork,
                    info as *mut i32,
                )
            }
        }
    };
}

gpu_real!(
    f32,
    "f32",
    cublasSgemm_v2,
    cublasSgemv_v2,
    cusolverDnSsyevd_bufferSize,
    cusolverDnSsyevd
);
gpu_real!(
    f64,
    "f64",
    cublasDgemm_v2,
    cublasDgemv_v2,
    cusolverDnDsyevd_bufferSize,
    cusolverDnDsyevd
);

/// The device, its stream and handles, and the compiled kernels.
pub(crate) struct Gpu {
    pub context: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub blas: CudaBlas,
    pub dn: DnHandle,
    module: Arc<CudaModule>,
    /// Device memory in use when the solver started (the context, other processes).
    baseline: usize,
}

/// Peak device memory the last GPU fit of this process allocated, in bytes.
static LAST_PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Device memory (bytes) that the last GPU fit of this process held at its peak: its own
/// buffers and the libraries' workspaces, not the CUDA context.
pub fn last_fit_peak_bytes() -> usize {
    LAST_PEAK.load(std::sync::atomic::Ordering::Relaxed)
}

impl Gpu {
    /// Opens CUDA device `ordinal` and compiles the kernels for it.
    pub fn open(ordinal: usize) -> Result<Self> {
        let count =
            CudaContext::device_count().map_err(|e| gpu_error("counting CUDA devices", e))?;
        if ordinal >= count.max(0) as usize {
            return Err(RidgeError::Gpu(format!(
                "device cuda:{ordinal} does not exist: this machine has {count} CUDA device(s)"
            )));
        }
        // NVRTC needs no context: the kernels compile while the context and the libraries start
        let (major, minor) = compute_capability(ordinal)?;
        let compiled = std::thread::spawn(move || compile_kernels(major, minor));
        let context =
            CudaContext::new(ordinal).map_err(|e| gpu_error("opening the CUDA device", e))?;
        // one stream orders everything: no per-buffer events are needed
        unsafe { context.disable_event_tracking() };
        let stream = context.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(|e| gpu_error("starting cuBLAS", e))?;
        let dn = DnHandle::new(stream.clone()).map_err(|e| gpu_error("starting cuSOLVER", e))?;
        let ptx = compiled
            .join()
            .map_err(|_| RidgeError::Gpu("kernel compilation thread failed".into()))??;
        let module = context
            .load_module(ptx)
            .map_err(|e| gpu_error("loading the ridge kernels", e))?;
        let (free, total) = context
            .mem_get_info()
            .map_err(|e| gpu_error("reading device memory", e))?;
        LAST_PEAK.store(0, std::sync::atomic::Ordering::Relaxed);
        Ok(Self {
            context,
            stream,
            blas,
            dn,
            module,
            baseline: total - free,
        })
    }

    /// Records the memory in use now (called after each allocation).
    fn note_memory(&self) {
        if let Ok((free, total)) = self.context.mem_get_info() {
            let used = (total - free).saturating_sub(self.baseline);
            LAST_PEAK.fetch_max(used, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn function(&self, name: &str) -> Result<CudaFunction> {
        self.module
            .load_function(name)
            .map_err(|e| gpu_error(&format!("kernel {name}"), e))
    }

    /// A zeroed device buffer of `len` elements; names `what` if the device is out of memory.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        len: usize,
        what: &str,
    ) -> Result<CudaSlice<T>> {
        let buffer = self.stream.alloc_zeros::<T>(len.max(1)).map_err(|e| {
            let (free, total) = self.context.mem_get_info().unwrap_or((0, 0));
            RidgeError::Gpu(format!(
                "allocating {what} ({:.2} GB) on the GPU: {e:?} ({:.2} of {:.2} GB free); \
                 fit fewer targets at a time (--target-chunk) or use --device cpu",
                (len * std::mem::size_of::<T>()) as f64 / 1e9,
                free as f64 / 1e9,
                total as f64 / 1e9,
            ))
        })?;
        self.note_memory();
        Ok(buffer)
    }

    /// Copies `data` to a new device buffer.
    pub fn upload<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        data: &[T],
        what: &str,
    ) -> Result<CudaSlice<T>> {
        let mut buffer = self.zeros::<T>(data.len(), what)?;
        self.stream
            .memcpy_htod(data, &mut buffer)
            .map_err(|e| gpu_error(&format!("copying {what} to the GPU"), e))?;
        Ok(buffer)
    }

    /// Copies the first `len` elements of `buffer` back (waits for the stream).
    pub fn download<T: DeviceRepr + Default + Clone>(
        &self,
        buffer: &CudaSlice<T>,
        len: usize,
        what: &str,
    ) -> Result<Vec<T>> {
        let mut out = vec![T::default(); len];
        self.download_into(buffer, &mut out, what)?;
        Ok(out)
    }

    pub fn download_into<T: DeviceRepr>(
        &self,
        buffer: &CudaSlice<T>,
        out: &mut [T],
        what: &str,
    ) -> Result<()> {
        let view = buffer.slice(..out.len());
        self.stream
            .memcpy_dtoh(&view, out)
            .map_err(|e| gpu_error(&format!("copying {what} from the GPU"), e))?;
        self.sync(what)
    }

    /// Copies `columns` columns of `rows` f32 values (device column pitch `rows`) from `source`
    /// into the host matrix `target` (its own column stride), in one transfer.
    pub fn download_columns(
        &self,
        source: Ptr,
        rows: usize,
        target: faer::MatMut<'_, f32>,
        what: &str,
    ) -> Result<()> {
        use cudarc::driver::sys;
        assert_eq!(target.nrows(), rows, "rows of the host matrix");
        if target.ncols() == 0 {
            return Ok(());
        }
        let stride = if target.ncols() == 1 {
            rows
        } else {
            target.col_stride() as usize
        };
        assert!(
            target.row_stride() == 1 && stride >= rows,
            "column-major host matrix"
        );
        let copy = sys::CUDA_MEMCPY2D {
            srcXInBytes: 0,
            srcY: 0,
            srcMemoryType: sys::CUmemorytype::CU_MEMORYTYPE_DEVICE,
            srcHost: std::ptr::null(),
            srcDevice: source,
            srcArray: std::ptr::null_mut(),
            srcPitch: rows * 4,
            dstXInBytes: 0,
            dstY: 0,
            dstMemoryType: sys::CUmemorytype::CU_MEMORYTYPE_HOST,
            dstHost: target.as_ptr_mut() as *mut std::ffi::c_void,
            dstDevice: 0,
            dstArray: std::ptr::null_mut(),
            dstPitch: stride * 4,
            WidthInBytes: rows * 4,
            Height: target.ncols(),
        };
        let status = unsafe { sys::cuMemcpy2DAsync_v2(&copy, self.stream.cu_stream()) };
        if status != sys::cudaError_enum::CUDA_SUCCESS {
            return Err(RidgeError::Gpu(format!(
                "copying {what} from the GPU: {status:?}"
            )));
        }
        self.sync(what)
    }

    pub fn sync(&self, what: &str) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| gpu_error(&format!("waiting for {what}"), e))
    }

    /// Launches kernel `name` with `config` and `args` in the kernel's parameter order.
    pub fn launch(&self, name: &str, config: LaunchConfig, args: &[Arg]) -> Result<()> {
        let function = self.function(name)?;
        let mut builder = self.stream.launch_builder(&function);
        for arg in args {
            match arg {
                Arg::Ptr(v) => builder.arg(v),
                Arg::I64(v) => builder.arg(v),
                Arg::I32(v) => builder.arg(v),
                Arg::F64(v) => builder.arg(v),
            };
        }
        unsafe { builder.launch(config) }
            .map(|_| ())
            .map_err(|e| gpu_error(&format!("launching {name}"), e))
    }

    pub fn check_blas(&self, status: blas::cublasStatus_t, what: &str) -> Result<()> {
        if status == blas::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            Ok(())
        } else {
            Err(RidgeError::Gpu(format!(
                "cuBLAS failed in {what}: {status:?}"
            )))
        }
    }
}

/// The compute capability of device `ordinal`, read without creating a context.
fn compute_capability(ordinal: usize) -> Result<(i32, i32)> {
    use cudarc::driver::{result, sys::CUdevice_attribute as A};
    let read = |attribute| -> Result<i32> {
        result::init().map_err(|e| gpu_error("starting the CUDA driver", e))?;
        let device = result::device::get(ordinal as i32)
            .map_err(|e| gpu_error("opening the CUDA device", e))?;
        unsafe { result::device::get_attribute(device, attribute) }
            .map_err(|e| gpu_error("reading the compute capability", e))
    };
    Ok((
        read(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
        read(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
    ))
}

/// The solver's kernels as PTX for compute capability major.minor (NVRTC), so the driver has
/// nothing left to JIT but the final assembly of a few small kernels.
fn compile_kernels(major: i32, minor: i32) -> Result<cudarc::nvrtc::Ptx> {
    let arch: &'static str = Box::leak(format!("sm_{major}{minor}").into_boxed_str());
    compile_ptx_with_opts(
        KERNELS,
        CompileOptions {
            arch: Some(arch),
            ..Default::default()
        },
    )
    .map_err(|e| gpu_error("compiling the ridge kernels with NVRTC", e))
}

/// The raw device address of `buffer` plus `offset` elements.
pub(crate) fn ptr<T>(gpu: &Gpu, buffer: &CudaSlice<T>, offset: usize) -> Ptr {
    let (base, _sync) = buffer.device_ptr(&gpu.stream);
    base + (offset * std::mem::size_of::<T>()) as u64
}

/// A grid-stride launch over `n` elements.
pub(crate) fn elementwise(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 65_535 * 8) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A kernel argument: a device address (0 = null) or a scalar.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg {
    Ptr(Ptr),
    I64(i64),
    I32(i32),
    F64(f64),
}

/// `usize` as the kernels' 32-bit count (checked where sizes enter the solver).
pub(crate) fn int(v: usize) -> Arg {
    Arg::I32(v as i32)
}

/// `usize` as the kernels' 64-bit leading dimension or length.
pub(crate) fn long(v: usize) -> Arg {
    Arg::I64(v as i64)
}
