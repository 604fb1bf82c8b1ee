//! `brainrecon glm compare`: a `glm --nsd` fit's betas against NSD's released betas.

use brainrecon_routes::glm::{compare_nsd, CompareOptions};
use std::path::PathBuf;

/// Compare a `glm --nsd` fit's single-trial betas with NSD's released betas_fithrf_GLMdenoise_RR
///
/// For each session of the fit, reads NSD's
/// nsddata_betas/ppdata/subjAA/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_sessionBB.hdf5
/// (int16 (trials, Z, Y, X), percent signal change × 300) at the fit's voxels and gives, per
/// voxel, Pearson's r over the session's trials between the two betas: its median and
/// quartiles over the voxels, the same within nsdgeneral (roi/nsdgeneral.nii.gz, when present),
/// and the median ratio of the two betas' spreads (NSD's / the fit's). Writes it as JSON
/// (--out, default <glm>/compare_nsd.json).
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon glm --nsd NSD --subject 1 --session 1 --out glm-nsd-s01\n  brainrecon glm compare --glm glm-nsd-s01 --nsd NSD"
)]
pub struct Args {
    /// A finished `brainrecon glm --nsd` folder
    #[arg(long)]
    glm: PathBuf,
    /// NSD's root folder (holding nsddata_betas/)
    #[arg(long)]
    nsd: PathBuf,
    /// Which of GLMsingle's models: typeb, typec or typed
    #[arg(long, default_value = "typed")]
    betas: String,
    /// The comparison's JSON file [default: <glm>/compare_nsd.json]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the comparison as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = CompareOptions {
        glm: args.glm,
        nsd: args.nsd,
        betas: args.betas,
        out: args.out,
    };
    let comparison = compare_nsd(&opts)?;
    crate::commands::report(args.json, &comparison, |_| {
        comparison.text(&opts.out_file())
    })
}
