pub mod b2c;
pub mod bench;
pub mod bids;
pub mod bids_app;
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

/// What the commands' files share: the flag groups, the printers below, the sampling checks and
/// `PathBuf`.
pub mod prelude {
    pub use super::{progress_line, report, show_progress, step_line, usage};
    pub use crate::args::{choice, CortexArg, DeviceArgs, DtypeArgs, JsonArg, PresetArgs};
    pub use brainrecon_routes::decode::options::{check_dtype_on, check_sampling};
    pub use std::path::PathBuf;
}

/// A wrong argument that clap cannot see (e.g. two options that conflict by value): bad input,
/// exit 2.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    brainrecon_core::DataError::Usage(message.into()).into()
}

/// `text` parsed as `flag`'s value by its library type; a usage error (exit 2) `{flag}: {why}`
/// when it is none of the type's values.
pub fn parse_flag<T: std::str::FromStr<Err = String>>(flag: &str, text: &str) -> anyhow::Result<T> {
    text.parse().map_err(|e| usage(format!("{flag}: {e}")))
}

/// Progress bars only when a person is watching.
pub fn show_progress() -> bool {
    std::io::stderr().is_terminal()
}

pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?)
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
    let line = format_args!("{what}: step {step}/{total}, loss {loss:.4}");
    progress_line(show, line, step == total);
}

/// `line` on a terminal, rewritten in place (`\r{line}   `) and ended by a newline when it is
/// the `last`; nothing when no person watches.
pub fn progress_line(show: bool, line: std::fmt::Arguments, last: bool) {
    if show {
        eprint!("\r{line}   ");
        if last {
            eprintln!();
        }
        let _ = std::io::Write::flush(&mut std::io::stderr());
    }
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
