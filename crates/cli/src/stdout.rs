//! Standard output that fails as an error: a closed pipe ends the command quietly, a full
//! disk is exit 2 naming standard output. `println!` would panic on either.

use std::io::Write;

/// Writing to standard output failed.
#[derive(Debug)]
pub struct StdoutError(pub std::io::Error);

impl std::fmt::Display for StdoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "writing to standard output: {}", self.0)
    }
}

impl std::error::Error for StdoutError {}

/// Writes to standard output (line-buffered, so a full disk shows at the newline).
pub fn write(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    std::io::stdout()
        .lock()
        .write_fmt(args)
        .map_err(|e| StdoutError(e).into())
}

/// Flushes what is left, so that a failure is reported rather than dropped at exit.
pub fn flush() -> anyhow::Result<()> {
    std::io::stdout()
        .lock()
        .flush()
        .map_err(|e| StdoutError(e).into())
}

/// True when `error` is standard output's reader having gone away.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<StdoutError>())
        .any(|e| e.0.kind() == std::io::ErrorKind::BrokenPipe)
}
