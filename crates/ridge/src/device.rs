//! Where a fit runs: the CPU (faer) or an NVIDIA GPU (cuBLAS, cuSOLVER; `cuda` feature). The
//! choice is the house's one [`Device`] (`brainrecon_core::Device`).

pub use brainrecon_core::Device;

/// Whether this build can fit on CUDA devices at all (the `cuda` feature).
pub const fn cuda_compiled() -> bool {
    cfg!(feature = "cuda")
}
