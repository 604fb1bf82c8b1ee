//! `brainrecon train <model>`: the project's own small models, trained on synthetic data by
//! the model zoo (`brainrecon_zoo`). The older verbs `train-prior`, `train-captioner`,
//! `train-clap`, `train-word2vec` and `video train-motion` are the same commands.

pub mod captioner;
pub mod clap;
pub mod prior;
pub mod word2vec;
// Apart from `clap` (the genres-clap verb), whose name hides the crate the derive expands to.
mod verb;

pub use verb::TrainCommand;
