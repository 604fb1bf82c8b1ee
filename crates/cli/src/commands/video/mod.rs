//! `brainrecon video …`: brain activity recorded while watching videos (CC2017's layout).

mod demo;
mod eval;
mod fit;
mod prepare;
mod reconstruct;
mod train_encoder;
pub(crate) mod train_motion;

use std::path::PathBuf;

subcommands! {
    /// Video from brain activity: prepare CC2017-style fMRI, decode it, generate and score clips
    pub enum VideoCommand {
        Prepare(prepare::Args) => prepare::run,
        TrainMotion(train_motion::Args) => train_motion::run,
        Fit(fit::Args) => fit::run,
        TrainEncoder(train_encoder::Args) => train_encoder::run,
        Reconstruct(reconstruct::Args) => reconstruct::run,
        Eval(eval::Args) => eval::run,
        Demo(demo::Args) => demo::run,
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
