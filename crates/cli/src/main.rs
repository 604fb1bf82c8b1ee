//! `brainrecon`: reconstruct what a brain saw from recordings of it.

/// `println!` that returns an error instead of panicking when standard output is a closed
/// pipe or a full disk (see [`stdout::write`]).
macro_rules! outln {
    () => {
        $crate::stdout::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` with [`outln!`]'s errors.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*))
    };
}

mod args;
// The doc comments of the commands are their --help text, shown as written: `<S>`, `[:N]` and
// `[HH:MM:SS]` there are what the user types, not HTML or doc links.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]
mod commands;
#[cfg(all(unix, not(feature = "cuda")))]
mod launch;
mod stdout;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "brainrecon",
    version,
    about = "Reconstruct what a brain saw from fMRI, with ridge decoders and latent diffusion"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Demo(commands::demo::Args),
    Simulate(commands::simulate::Args),
    #[command(subcommand)]
    Nsd(commands::nsd::NsdCommand),
    #[command(subcommand)]
    Bids(commands::bids::BidsCommand),
    Glm(commands::glm::Args),
    #[command(subcommand)]
    Group(commands::group::GroupCommand),
    #[command(subcommand)]
    Eeg(commands::eeg::EegCommand),
    #[command(subcommand)]
    Cortex(commands::cortex::CortexCommand),
    Info(commands::info::Args),
    Features(commands::features::Args),
    Fit(commands::fit::Args),
    Decode(commands::decode::Args),
    Reconstruct(commands::reconstruct::Args),
    #[command(subcommand)]
    B2c(commands::b2c::B2cCommand),
    Eval(commands::eval::Args),
    Generate(commands::generate::Args),
    TrainPrior(commands::train::prior::Args),
    TrainCaptioner(commands::train::captioner::Args),
    TrainClap(commands::train::clap::Args),
    TrainWord2vec(commands::train::word2vec::Args),
    /// Train one of the project's own models (the train-* verbs are the same commands)
    #[command(subcommand)]
    Train(commands::train::TrainCommand),
    Caption(commands::caption::Args),
    Encode(commands::encode::Args),
    EncodeRuns(commands::encode::runs::Args),
    #[command(subcommand)]
    Music(commands::music::MusicCommand),
    #[command(subcommand)]
    Video(commands::video::VideoCommand),
    #[command(subcommand)]
    Ridge(commands::ridge::RidgeCommand),
    #[command(subcommand)]
    Slurm(commands::slurm::SlurmCommand),
    #[command(subcommand)]
    Realtime(commands::realtime::RealtimeCommand),
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    Stream(commands::stream::Args),
}

/// User errors (bad data, bad arguments) exit with 2; a run stopped by a signal with 143
/// (128 + SIGTERM, so a scheduler counts the task as failed); anything else with 1.
fn exit_code(error: &anyhow::Error) -> u8 {
    use brainrecon_routes::error::{is_interrupted, is_user_error};
    if error.chain().any(is_interrupted) {
        return 143;
    }
    let user = error
        .chain()
        .any(|cause| is_user_error(cause) || cause.is::<stdout::StdoutError>());
    if user {
        2
    } else {
        1
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Simulate(args) => commands::simulate::run(args),
        Command::Nsd(command) => commands::nsd::run(command),
        Command::Bids(command) => commands::bids::run(command),
        Command::Glm(args) => commands::glm::run(args),
        Command::Group(command) => commands::group::run(command),
        Command::Eeg(command) => commands::eeg::run(command),
        Command::Cortex(command) => commands::cortex::run(command),
        Command::Info(args) => commands::info::run(args),
        Command::Features(args) => commands::features::run(args),
        Command::Fit(args) => commands::fit::run(args),
        Command::Decode(args) => commands::decode::run(args),
        Command::Reconstruct(args) => commands::reconstruct::run(args),
        Command::B2c(command) => commands::b2c::run(command),
        Command::Eval(args) => commands::eval::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::TrainPrior(args) => commands::train::prior::run(args),
        Command::TrainCaptioner(args) => commands::train::captioner::run(args),
        Command::TrainClap(args) => commands::train::clap::run(args),
        Command::TrainWord2vec(args) => commands::train::word2vec::run(args),
        Command::Train(command) => commands::train::run(command),
        Command::Caption(args) => commands::caption::run(args),
        Command::Encode(args) => commands::encode::run(args),
        Command::EncodeRuns(args) => commands::encode::runs::run(args),
        Command::Music(command) => commands::music::run(command),
        Command::Video(command) => commands::video::run(command),
        Command::Ridge(command) => commands::ridge::run(command),
        Command::Slurm(command) => commands::slurm::run(command),
        Command::Realtime(command) => commands::realtime::run(command),
        Command::Bench(command) => commands::bench::run(command),
        Command::Stream(args) => commands::stream::run(args),
    }
}

/// Runs `brainrecon ARGS...` in this process (the demo's steps are the commands users run).
pub fn run_command_line(args: &[&str]) -> anyhow::Result<()> {
    let cli = Cli::try_parse_from(std::iter::once("brainrecon").chain(args.iter().copied()))
        .map_err(|e| commands::usage(e.to_string()))?;
    dispatch(cli.command)
}

/// Keeps freed tensor buffers in the process for reuse: glibc otherwise returns every buffer
/// over its mmap threshold (32 MB at most) to the kernel and maps it again on the next
/// allocation, and the page faults of refilling it cost a tenth of a CLIP forward pass.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    keep_freed_memory();
    // the CPU build hands `--device cuda` to the GPU build beside it (see launch.rs)
    #[cfg(all(unix, not(feature = "cuda")))]
    let parsed = Cli::try_parse_from(launch::arguments());
    #[cfg(not(all(unix, not(feature = "cuda"))))]
    let parsed = Cli::try_parse();
    let result = match parsed {
        Ok(cli) => dispatch(cli.command),
        Err(e) => return clap_message(e),
    }
    .and_then(|()| stdout::flush());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `brainrecon info --json | head -c1`: the reader left; end quietly, as `ls | head`.
        Err(error) if stdout::is_closed_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error_text(&error));
            ExitCode::from(exit_code(&error))
        }
    }
}

/// The error and its causes, each said once: errors that show their source in their own
/// message (a file's path, then the I/O error) would otherwise print it twice.
fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Help and version go to standard output through [`stdout`] (a full disk is an error there
/// too); usage errors to standard error with clap's exit code.
fn clap_message(error: clap::Error) -> ExitCode {
    if error.use_stderr() {
        let _ = error.print();
        return ExitCode::from(error.exit_code().clamp(0, 255) as u8);
    }
    let text = error.render().to_string();
    match out!("{text}").and_then(|()| stdout::flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if stdout::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
