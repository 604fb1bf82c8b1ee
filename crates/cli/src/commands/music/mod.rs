//! `brainrecon music …`: the Brain2Music route (decode music embeddings, identify, retrieve,
//! generate); the work is in `brainrecon_routes::music`.

pub(crate) mod demo;
mod fit;
mod generate;
mod retrieve;

subcommands! {
    /// Music from brain activity: decode music embeddings from fMRI, then retrieve or generate music
    pub enum MusicCommand {
        Fit(fit::Args) => fit::run,
        Retrieve(retrieve::Args) => retrieve::run,
        Generate(generate::Args) => generate::run,
        Demo(demo::Args) => demo::run,
    }
}
