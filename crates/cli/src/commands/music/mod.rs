//! `brainrecon music …`: the Brain2Music route (decode music embeddings, identify, retrieve,
//! generate); the work is in `brainrecon_routes::music`.

pub(crate) mod demo;
mod fit;
mod generate;
mod retrieve;

/// Music from brain activity: decode music embeddings from fMRI, then retrieve or generate music
#[derive(clap::Subcommand)]
pub enum MusicCommand {
    Fit(fit::Args),
    Retrieve(retrieve::Args),
    Generate(generate::Args),
    Demo(demo::Args),
}

pub fn run(command: MusicCommand) -> anyhow::Result<()> {
    match command {
        MusicCommand::Fit(args) => fit::run(args),
        MusicCommand::Retrieve(args) => retrieve::run(args),
        MusicCommand::Generate(args) => generate::run(args),
        MusicCommand::Demo(args) => demo::run(args),
    }
}
