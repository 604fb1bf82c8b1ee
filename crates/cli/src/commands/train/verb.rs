//! The `train <model>` verb: one subcommand per model of the zoo.

use crate::commands::video::train_motion;

subcommands! {
    /// Train one of the project's own models (the older train-* verbs are the same commands)
    pub enum TrainCommand {
        ShapesLdm(super::prior::Args) => super::prior::run,
        ShapesBlip(super::captioner::Args) => super::captioner::run,
        GenresClap(super::clap::Args) => super::clap::run,
        ShapesMotion(train_motion::Args) => train_motion::run,
        Word2vecMovie(super::word2vec::Args) => super::word2vec::run,
    }
}
