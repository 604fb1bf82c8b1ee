//! The `train <model>` verb: one subcommand per model of the zoo.

/// Train one of the project's own models (the older train-* verbs are the same commands)
#[derive(clap::Subcommand)]
pub enum TrainCommand {
    ShapesLdm(super::prior::Args),
    ShapesBlip(super::captioner::Args),
    GenresClap(super::clap::Args),
    ShapesMotion(crate::commands::video::train_motion::Args),
    Word2vecMovie(super::word2vec::Args),
}

pub fn run(command: TrainCommand) -> anyhow::Result<()> {
    match command {
        TrainCommand::ShapesLdm(args) => super::prior::run(args),
        TrainCommand::ShapesBlip(args) => super::captioner::run(args),
        TrainCommand::GenresClap(args) => super::clap::run(args),
        TrainCommand::ShapesMotion(args) => crate::commands::video::train_motion::run(args),
        TrainCommand::Word2vecMovie(args) => super::word2vec::run(args),
    }
}
