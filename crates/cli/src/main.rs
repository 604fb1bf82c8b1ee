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

/// A clap subcommand enum, one variant per command holding its arguments, and `run`, which
/// hands the chosen variant's arguments to its command's function:
/// `subcommands! { /// about \n pub enum Name { Variant(Args) => function, … } }`.
macro_rules! subcommands {
    ($(#[$attr:meta])* $vis:vis enum $name:ident {
        $($(#[$variant_attr:meta])* $variant:ident($args:ty) => $run:expr,)*
    }) => {
        $(#[$attr])*
        #[derive(clap::Subcommand)]
        $vis enum $name {
            $($(#[$variant_attr])* $variant($args),)*
        }

        impl $name {
            /// Runs the chosen command.
            $vis fn run(self) -> anyhow::Result<()> {
                match self {
                    $($name::$variant(args) => $run(args),)*
                }
            }
        }
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

use clap::Parser;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "brainrecon",
    version,
    about = "Reconstruct what a brain saw from fMRI, with ridge decoders and latent diffusion"
)]
struct Cli {
    /// Refuse, by name, anything that would reach the network (as BRAINRECON_OFFLINE=1);
    /// nothing is downloaded either way
    #[arg(long, global = true)]
    offline: bool,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// Runs the command, with the offline setting on when `--offline` asks for it (set in the
    /// environment, so a GPU build this one hands over to and the library checks see it).
    fn run(self) -> anyhow::Result<()> {
        if self.offline {
            std::env::set_var(brainrecon_core::offline::OFFLINE_VAR, "1");
        }
        self.command.run()
    }
}

subcommands! {
    enum Command {
        Demo(commands::demo::Args) => commands::demo::run,
        Simulate(commands::simulate::Args) => commands::simulate::run,
        #[command(subcommand)]
        Nsd(commands::nsd::NsdCommand) => commands::nsd::run,
        #[command(subcommand)]
        Bids(commands::bids::BidsCommand) => commands::bids::run,
        BidsApp(commands::bids_app::Args) => commands::bids_app::run,
        Glm(commands::glm::Args) => commands::glm::run,
        #[command(subcommand)]
        Group(commands::group::GroupCommand) => commands::group::run,
        #[command(subcommand)]
        Eeg(commands::eeg::EegCommand) => commands::eeg::run,
        #[command(subcommand)]
        Cortex(commands::cortex::CortexCommand) => commands::cortex::run,
        Info(commands::info::Args) => commands::info::run,
        Features(commands::features::Args) => commands::features::run,
        Fit(commands::fit::Args) => commands::fit::run,
        Decode(commands::decode::Args) => commands::decode::run,
        Reconstruct(commands::reconstruct::Args) => commands::reconstruct::run,
        #[command(subcommand)]
        B2c(commands::b2c::B2cCommand) => commands::b2c::B2cCommand::run,
        Eval(commands::eval::Args) => commands::eval::run,
        Generate(commands::generate::Args) => commands::generate::run,
        TrainPrior(commands::train::prior::Args) => commands::train::prior::run,
        TrainCaptioner(commands::train::captioner::Args) => commands::train::captioner::run,
        TrainClap(commands::train::genres_clap::Args) => commands::train::genres_clap::run,
        TrainWord2vec(commands::train::word2vec::Args) => commands::train::word2vec::run,
        /// Train one of the project's own models (the train-* verbs are the same commands)
        #[command(subcommand)]
        Train(commands::train::TrainCommand) => commands::train::TrainCommand::run,
        Caption(commands::caption::Args) => commands::caption::run,
        Encode(commands::encode::Args) => commands::encode::run,
        EncodeRuns(commands::encode::runs::Args) => commands::encode::runs::run,
        #[command(subcommand)]
        Music(commands::music::MusicCommand) => commands::music::MusicCommand::run,
        #[command(subcommand)]
        Video(commands::video::VideoCommand) => commands::video::VideoCommand::run,
        #[command(subcommand)]
        Ridge(commands::ridge::RidgeCommand) => commands::ridge::RidgeCommand::run,
        #[command(subcommand)]
        Slurm(commands::slurm::SlurmCommand) => commands::slurm::SlurmCommand::run,
        #[command(subcommand)]
        Realtime(commands::realtime::RealtimeCommand) =>
            commands::realtime::RealtimeCommand::run,
        #[command(subcommand)]
        Bench(commands::bench::BenchCommand) => commands::bench::BenchCommand::run,
        Stream(commands::stream::Args) => commands::stream::run,
    }
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

/// Runs `brainrecon ARGS...` in this process (the demo's steps are the commands users run).
pub fn run_command_line(args: &[&str]) -> anyhow::Result<()> {
    let cli = Cli::try_parse_from(std::iter::once("brainrecon").chain(args.iter().copied()))
        .map_err(|e| commands::usage(e.to_string()))?;
    cli.run()
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
        Ok(cli) => cli.run(),
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
    // A typed flag's parser lives with its type in a library and says what it expected as a
    // usage error; that is printed as the commands print theirs (`error: --device: expected …`).
    let cause = std::error::Error::source(&error);
    if let Some(cause) = cause.filter(|c| brainrecon_routes::error::is_user_error(*c)) {
        eprintln!("error: {cause}");
        return ExitCode::from(2);
    }
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
