//! `brainrecon realtime run`: the real-time route. The export folder is followed as `watch`
//! follows it; each volume's pattern at the decoders' voxels is decoded into z and c and the
//! newest is drawn with the diffusion model (`brainrecon_routes::realtime::run_session`, which
//! also serves the live page); this file turns flags into its options and prints.

use super::realtime::stop_flag;
use crate::commands::prelude::*;
use brainrecon_routes::realtime::{run_session, LiveOptions, PageOptions};

/// Reconstruct what the subject sees while the scanner runs, volume by volume.
///
/// Follows the scanner's export folder as `realtime watch` does (Siemens mosaics or 3-D
/// NIfTI; each file read once complete; realigned to the session's first volume, which is
/// registered to --subject-reference, the subject's reference volume on the grid the decoders
/// were fit on, e.g. fMRIPrep's boldref). At the decoders' voxels each volume is detrended and
/// z-scored with running statistics; the mean of the last --window-s seconds of volumes,
/// standardised per voxel by the running statistics of those means, is decoded by the linear
/// route's ridge decoders (DECODERS/z and DECODERS/c, from `brainrecon fit`) and drawn as the
/// linear route draws: the picture of z, noised to --strength and denoised conditioned on c.
/// The newest volume is drawn; volumes that arrive while an image is being made are decoded
/// and recorded but not drawn.
///
/// The live page (--serve, default 127.0.0.1:8080) shows the current and the previous image,
/// motion traces, the early visual cortex's signal, the latency from a file's last write to
/// its image, and messages (a refused file, a pause). OUT holds the session's record:
/// motion.tsv, volumes.tsv (per volume: decoded, drawn, timings), images/ and decoded-z/
/// (vol-NNNNNN.png), decoded/{volumes,z,c}.npy and session.json; with --events (the session's
/// BIDS events.tsv) also OUT/recons, a reconstruction folder of the shown images that
/// `brainrecon eval --stimuli SUBJECT --recons OUT/recons` scores like any other, and
/// OUT/recons-offline: the same images from the same volumes analysed after the session
/// (each voxel detrended and z-scored over the whole session), to measure what being live
/// costs.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  \
    brainrecon realtime run --folder /mnt/scanner/export --subject sub-01 --decoders decoders \\\n      \
    --subject-reference sub-01_task-images_run-01_space-T1w_boldref.nii.gz --tr 1.6\n  \
    brainrecon realtime run --folder rt-sim/export --subject demo-out/sub-01 --decoders demo-out/decoders \\\n      \
    --tr 1.0 --events rt-sim/events.tsv --no-serve --idle-seconds 5 --json")]
pub struct RunArgs {
    #[command(flatten)]
    options: LiveOptions,
    #[command(flatten)]
    page: PageOptions,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    dtype: DtypeArgs,
    /// Print the session summary as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: Box<RunArgs>) -> anyhow::Result<()> {
    let args = *args;
    let out = args.options.out.clone();
    check_sampling(args.options.steps, args.options.guidance)?;
    let device = args.device.device()?;
    let dtype = args.dtype.dtype_on(&device)?;
    let options = LiveOptions {
        device,
        dtype,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        ..args.options
    };
    let summary = run_session(options, &args.page, stop_flag(), &|line| {
        eprintln!("{line}")
    })?;
    super::report(args.json, &summary, |s| s.text(&out))?;
    // A session that read no volume is no success: exit 2, naming the files refused.
    Ok(summary.require_volumes()?)
}
