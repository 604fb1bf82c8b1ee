//! `brainrecon cortex draw`: volume maps on the cortex (the work is in
//! `brainrecon_cortex::report::draw_volumes`).

use crate::commands::prelude::*;
use brainrecon_routes::cortex::{draw_volumes, DrawOptions};

/// Maps on the cortex.
#[derive(clap::Subcommand)]
pub enum CortexCommand {
    Draw(DrawArgs),
}

/// Draw NIfTI maps on a cortex: flat map and inflated views per map (PNG), a self-contained
/// viewer page (rotate, flat ↔ inflated, hover), and the maps as .func.gii / .dscalar.nii.
///
/// Each vertex averages the volume at 10 points from the pial to the white surface (nilearn's
/// vol_to_surf, kind depth). `--cortex fsaverage5` (the default here) takes the volume as MNI
/// space, as nilearn projects MNI volumes on fsaverage; a FreeSurfer subject folder takes it as
/// that subject's scanner space (NSD's `nsddata/freesurfer/subjNN`, fMRIPrep's
/// `sourcedata/freesurfer/sub-NN`), with its atlas outlined where present (NSD's
/// `label/?h.streams.mgz`, else recon-all's `label/?h.aparc.annot`); `fsaverage5:FOLDER`
/// samples on the subject and draws on fsaverage5 through its `surf/?h.sphere.reg`.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon cortex draw --volume enc/maps/r.nii.gz --cortex fsaverage5 --out r-on-cortex\n  brainrecon cortex draw --volume r.nii.gz --cortex nsddata/freesurfer/subj01 --threshold 0.1 --out subj01-r"
)]
pub struct DrawArgs {
    /// 3-D NIfTI maps on one grid, comma-separated (one picture each)
    #[arg(long, value_delimiter = ',', required = true)]
    volume: Vec<PathBuf>,
    /// Draw only where this NIfTI is non-zero (default: where the first map is non-zero)
    #[arg(long)]
    mask: Option<PathBuf>,
    /// signed (blue–white–red), positive (hot) or categorical (whole values 0, 1, …)
    #[arg(long, default_value = "signed")]
    kind: String,
    /// Leave values whose magnitude is under this undrawn (curvature shows)
    #[arg(long)]
    threshold: Option<f64>,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    cortex: CortexArg,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(command: CortexCommand) -> anyhow::Result<()> {
    let CortexCommand::Draw(args) = command;
    let figures = draw_volumes(&DrawOptions {
        volumes: args.volume,
        mask: args.mask,
        cortex: args.cortex.choice()?,
        kind: args.kind,
        threshold: args.threshold,
        out: args.out,
    })?;
    super::report(args.json.json, &figures.json(), |_| figures.text())
}
