pub mod b2c;
pub mod bench;
pub mod bids;
pub mod caption;
pub mod cortex;
pub mod decode;
pub mod demo;
pub mod eeg;
pub mod encode;
pub mod eval;
pub mod features;
pub mod fit;
pub mod generate;
pub mod glm;
pub mod group;
pub mod info;
pub mod music;
pub mod nsd;
pub mod realtime;
pub mod realtime_run;
pub mod realtime_simulate;
pub mod reconstruct;
pub mod ridge;
pub mod simulate;
pub mod slurm;
pub mod stream;
pub mod train;
pub mod video;

use std::io::IsTerminal;

/// A wrong argument that clap cannot see (e.g. two options that conflict by value): bad input,
/// exit 2.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    brainrecon_core::DataError::Usage(message.into()).into()
}

/// Checks `--steps` and `--guidance` of the commands that sample.
pub fn check_sampling(steps: usize, guidance: f64) -> anyhow::Result<()> {
    Ok(brainrecon_routes::decode::options::check_sampling(
        steps, guidance,
    )?)
}

/// Progress bars only when a person is watching.
pub fn show_progress() -> bool {
    std::io::stderr().is_terminal()
}

pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// Prints `report` as pretty JSON with `--json`, else the text `text` makes of it, as it is
/// (the library's reports end their lines themselves).
pub fn report<R: serde::Serialize>(
    json: bool,
    report: &R,
    text: impl FnOnce(&R) -> String,
) -> anyhow::Result<()> {
    if json {
        return print_json(report);
    }
    out!("{}", text(report))
}

/// A training step on a terminal: `\r{what}: step {step}/{total}, loss {loss:.4}`, rewritten in
/// place and ended by a newline at the last step; nothing when no person watches.
pub fn step_line(show: bool, what: &str, step: usize, total: usize, loss: f64) {
    if show {
        eprint!("\r{what}: step {step}/{total}, loss {loss:.4}   ");
        if step == total {
            eprintln!();
        }
        let _ = std::io::Write::flush(&mut std::io::stderr());
    }
}

/// `--dtype`: the precision the U-Net and text encoder run in.
pub fn dtype(name: &str) -> anyhow::Result<brainrecon_diffusion::pipeline::DType> {
    Ok(brainrecon_routes::decode::options::dtype(name)?)
}

/// bf16 runs on GPUs only: the CPU has no bf16 matrix products.
pub fn check_dtype_on(
    dtype: brainrecon_diffusion::pipeline::DType,
    device: &brainrecon_diffusion::pipeline::Device,
) -> anyhow::Result<()> {
    Ok(brainrecon_routes::decode::options::check_dtype_on(
        dtype, device,
    )?)
}

/// The command line as typed, quoted where a shell would need it, for reports.
pub fn command_line() -> String {
    std::env::args()
        .map(|arg| {
            if !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+".contains(c))
            {
                arg
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
