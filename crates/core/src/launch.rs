//! GPU runs from the CPU build: whether `brainrecon` hands a `--device cuda` command to
//! `brainrecon-cuda`.
//!
//! A `--features cuda` build links the CUDA libraries (candle links them at build time), so
//! it cannot even start where the NVIDIA driver or the CUDA 13 libraries are missing, such as
//! a cluster's login node. The project therefore ships two programs side by side
//! (`tools/build-cuda.sh` makes both): `brainrecon`, which links no CUDA and runs everywhere,
//! and `brainrecon-cuda`. When a command asks for `--device cuda[:N]`, `brainrecon` loads each
//! CUDA library the GPU build needs; if all load, it replaces itself with `brainrecon-cuda`
//! (same arguments, same process id); if one is missing, or there is no `brainrecon-cuda`
//! beside it, it says why on stderr and runs the command on the CPU. [`route`] decides; the
//! binary replaces itself.

use std::ffi::{CString, OsString};
use std::path::PathBuf;

/// The GPU build's program name, looked for beside this program.
pub const CUDA_PROGRAM: &str = "brainrecon-cuda";

/// The shared libraries the GPU build needs at run time (the driver and CUDA 13's).
const CUDA_LIBRARIES: [&str; 8] = [
    "libcuda.so.1",
    "libcudart.so.13",
    "libcublasLt.so.13",
    "libcublas.so.13",
    "libcurand.so.10",
    "libnvrtc.so.13",
    "libcusparse.so.12",
    "libcusolver.so.12",
];

/// What to do with a command line.
#[derive(Debug, PartialEq)]
pub enum Route {
    /// Run here (no GPU asked for).
    Here,
    /// Replace this process with the GPU build.
    Gpu(PathBuf),
    /// A GPU was asked for and cannot be used: run here on the CPU, after saying why.
    Cpu {
        /// Why the GPU build cannot run the command.
        reason: String,
        /// The command line with `--device cpu`.
        args: Vec<OsString>,
    },
}

/// The value of `--device` (`--device X` or `--device=X`) on a command line.
fn device_argument(args: &[OsString]) -> Option<(usize, String)> {
    args.iter().enumerate().find_map(|(i, arg)| {
        let text = arg.to_str()?;
        if text == "--device" {
            Some((i + 1, args.get(i + 1)?.to_str()?.to_string()))
        } else {
            text.strip_prefix("--device=").map(|v| (i, v.to_string()))
        }
    })
}

/// The first library of `libraries` that cannot be loaded, with the loader's message.
fn missing_library(libraries: &[String]) -> Option<String> {
    libraries.iter().find_map(|name| {
        let c_name = CString::new(name.as_str()).ok()?;
        // SAFETY: dlopen with a valid C string; the handle stays open (the GPU build will load
        // the same libraries, and closing CUDA libraries is not always safe)
        let handle = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if !handle.is_null() {
            return None;
        }
        // SAFETY: dlerror returns a C string owned by the loader, or null
        let error = unsafe { libc::dlerror() };
        let message = if error.is_null() {
            format!("{name}: not found")
        } else {
            unsafe { std::ffi::CStr::from_ptr(error) }
                .to_string_lossy()
                .into_owned()
        };
        Some(message)
    })
}

/// Decides where `args` (the whole command line, program name first) runs. `libraries`
/// overrides the list of libraries to check (tests set it through BRAINRECON_CUDA_LIBRARIES).
pub fn route(
    args: &[OsString],
    program_dir: Option<PathBuf>,
    libraries: Option<Vec<String>>,
) -> Route {
    let Some((at, device)) = device_argument(args) else {
        return Route::Here;
    };
    if !device.starts_with("cuda") {
        return Route::Here;
    }
    let fall_back = |reason: String| {
        let mut args = args.to_vec();
        if args[at]
            .to_str()
            .is_some_and(|a| a.starts_with("--device="))
        {
            args[at] = OsString::from("--device=cpu");
        } else {
            args[at] = OsString::from("cpu");
        }
        Route::Cpu { reason, args }
    };
    let gpu_program = program_dir.map(|dir| dir.join(CUDA_PROGRAM));
    let Some(gpu_program) = gpu_program.filter(|p| p.is_file()) else {
        return fall_back(format!(
            "this brainrecon has no GPU build beside it ({CUDA_PROGRAM}; build it with \
             tools/build-cuda.sh)"
        ));
    };
    let libraries =
        libraries.unwrap_or_else(|| CUDA_LIBRARIES.iter().map(|s| s.to_string()).collect());
    match missing_library(&libraries) {
        Some(message) => fall_back(format!(
            "the CUDA libraries cannot be loaded ({message}); on a GPU machine, `source \
             tools/cuda-env.sh` puts the driver and CUDA 13 on the loader's path"
        )),
        None => Route::Gpu(gpu_program),
    }
}
