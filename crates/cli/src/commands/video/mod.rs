//! `brainrecon video …`: brain activity recorded while watching videos (CC2017's layout).

mod demo;
mod eval;
mod fit;
mod prepare;
mod reconstruct;
mod train_encoder;
pub(crate) mod train_motion;

use std::path::PathBuf;

/// Video from brain activity: prepare CC2017-style fMRI, decode it, generate and score clips
#[derive(clap::Subcommand)]
pub enum VideoCommand {
    Prepare(prepare::Args),
    TrainMotion(train_motion::Args),
    Fit(fit::Args),
    TrainEncoder(train_encoder::Args),
    Reconstruct(reconstruct::Args),
    Eval(eval::Args),
    Demo(demo::Args),
}

pub fn run(command: VideoCommand) -> anyhow::Result<()> {
    match command {
        VideoCommand::Prepare(args) => prepare::run(args),
        VideoCommand::TrainMotion(args) => train_motion::run(args),
        VideoCommand::Fit(args) => fit::run(args),
        VideoCommand::TrainEncoder(args) => train_encoder::run(args),
        VideoCommand::Reconstruct(args) => reconstruct::run(args),
        VideoCommand::Eval(args) => eval::run(args),
        VideoCommand::Demo(args) => demo::run(args),
    }
}

/// The decoders' inputs: windows, stimuli and captions.
#[derive(clap::Args)]
pub struct WindowsArgs {
    /// `video prepare`'s folder
    #[arg(long)]
    pub prepared: PathBuf,
    /// The stimuli: segK.mp4 / testK.mp4 or frame folders segK/ / testK/
    #[arg(long)]
    pub stimuli: PathBuf,
    /// split<TAB>segment<TAB>tr<TAB>caption per stimulus TR
    #[arg(long)]
    pub captions: PathBuf,
}
