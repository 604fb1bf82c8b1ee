pub mod bench;
pub mod decode;
pub mod encode;
pub mod eval;
pub mod fit;
pub mod generate;
pub mod info;
pub mod nsd;
pub mod ridge;
pub mod simulate;

use std::io::IsTerminal;

/// A wrong argument that clap cannot see (e.g. two options that conflict by value).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// Progress bars only when a person is watching.
pub fn show_progress() -> bool {
    std::io::stderr().is_terminal()
}

pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
