//! `brainrecon train <model>`: the project's own small models, trained on synthetic data by
//! the model zoo (`brainrecon_zoo`). The older verbs `train-prior`, `train-captioner`,
//! `train-clap`, `train-word2vec` and `video train-motion` are the same commands.

pub mod captioner;
// not `clap`: the module would shadow the crate that the derives name
pub mod genres_clap;
pub mod prior;
pub mod word2vec;

use crate::commands::video::train_motion;

// The `train <model>` verb: one subcommand per model of the zoo.
subcommands! {
    /// Train one of the project's own models (the older train-* verbs are the same commands)
    pub enum TrainCommand {
        ShapesLdm(prior::Args) => prior::run,
        ShapesBlip(captioner::Args) => captioner::run,
        GenresClap(genres_clap::Args) => genres_clap::run,
        ShapesMotion(train_motion::Args) => train_motion::run,
        Word2vecMovie(word2vec::Args) => word2vec::run,
    }
}
