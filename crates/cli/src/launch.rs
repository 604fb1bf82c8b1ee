//! GPU runs from the CPU build: `brainrecon` replaces itself with `brainrecon-cuda` when a
//! command asks for `--device cuda` and the GPU build can run (see `brainrecon_core::launch`).

use brainrecon_core::launch::{route, Route};
use std::ffi::OsString;
use std::path::PathBuf;

/// Applies [`route`] to this process: returns the arguments to run here (or never returns,
/// when the GPU build takes over).
pub fn arguments() -> Vec<OsString> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let program_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from));
    // BRAINRECON_CUDA_LIBRARIES: a comma-separated list replacing the libraries to check
    let libraries = std::env::var("BRAINRECON_CUDA_LIBRARIES")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    match route(&args, program_dir, libraries) {
        Route::Here => args,
        Route::Cpu { reason, args } => {
            eprintln!("brainrecon: running on the CPU: {reason}");
            args
        }
        Route::Gpu(program) => {
            use std::os::unix::process::CommandExt;
            let error = std::process::Command::new(&program).args(&args[1..]).exec();
            eprintln!(
                "brainrecon: running on the CPU: could not start {}: {error}",
                program.display()
            );
            match route(&args, None, Some(Vec::new())) {
                Route::Cpu { args, .. } => args,
                _ => args,
            }
        }
    }
}
