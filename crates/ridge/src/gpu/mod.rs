//! Ridge on NVIDIA GPUs (`cuda` feature): cuBLAS products, the cuSOLVER eigendecomposition and
//! a few NVRTC kernels; GCV and LOO with one alpha per target, as the CPU fit.

mod context;
mod fit;

pub use context::last_fit_peak_bytes;
pub(crate) use fit::fit_on_gpu;
