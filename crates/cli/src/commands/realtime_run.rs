//! `brainrecon realtime run`: the real-time route. The export folder is followed as `watch`
//! follows it; each volume's pattern at the decoders' voxels is decoded into z and c and the
//! newest is drawn with the diffusion model (`brainrecon_routes::realtime::run_session`, which
//! also serves the live page); this file turns flags into its options and prints.

use super::realtime::{stop_flag, FolderArgs};
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
    folder: FolderArgs,
    /// The prepared subject the decoders were fit on
    #[arg(long)]
    subject: PathBuf,
    /// The folder holding the z and c decoders (`brainrecon fit --target z|c --out DIR/z|c`)
    #[arg(long)]
    decoders: PathBuf,
    /// A volume on the subject's grid (NIfTI) to register the session to; without it the
    /// session is taken to be on the subject's grid already
    #[arg(long)]
    subject_reference: Option<PathBuf>,
    /// The session's repetition time in seconds
    #[arg(long)]
    tr: f64,
    /// Seconds of volumes averaged into each decoded pattern
    #[arg(long, default_value_t = 4.0)]
    window_s: f64,
    /// Seconds from an image's onset to the first volume of its pattern (scoring with --events)
    #[arg(long, default_value_t = 4.0)]
    delay_s: f64,
    /// Draw every decoded volume, however late (rehearsal on a folder filled at once; live,
    /// only the newest volume is drawn)
    #[arg(long)]
    draw_all: bool,
    /// The session's BIDS events.tsv (onset, stim_file): write OUT/recons for scoring
    #[arg(long)]
    events: Option<PathBuf>,
    /// Where the session's record goes
    #[arg(long, default_value = "realtime-session")]
    out: PathBuf,
    /// Diffusers folder, cache snapshot, cached model id, or shapes-ldm (built in)
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// DDIM steps of the full schedule (--strength of them run)
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Share of the schedule img2img runs, in (0, 1]
    #[arg(long, default_value_t = 0.8)]
    strength: f64,
    /// Classifier-free guidance scale (≤ 1 disables guidance)
    #[arg(long, default_value_t = 5.0)]
    guidance: f64,
    /// Seed of the sampler's noise
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Serve the live page on this address [default: 127.0.0.1:8080, or a free port when that
    /// one is taken]
    #[arg(long, value_name = "ADDRESS", conflicts_with = "no_serve")]
    serve: Option<String>,
    /// Do not serve the page
    #[arg(long)]
    no_serve: bool,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    dtype: DtypeArgs,
    /// Print the session summary as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: Box<RunArgs>) -> anyhow::Result<()> {
    check_sampling(args.steps, args.guidance)?;
    let device = args.device.device()?;
    let dtype = args.dtype.dtype_on(&device)?;
    let options = LiveOptions {
        follow: args.folder.options(),
        subject: args.subject,
        decoders: args.decoders,
        subject_reference: args.subject_reference,
        tr: args.tr,
        window_s: args.window_s,
        delay_s: args.delay_s,
        draw_all: args.draw_all,
        events: args.events,
        out: args.out.clone(),
        model: args.model,
        steps: args.steps,
        strength: args.strength,
        guidance: args.guidance,
        seed: args.seed,
        device,
        dtype,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let page = PageOptions {
        no_serve: args.no_serve,
        address: args.serve,
    };
    let summary = run_session(options, &page, stop_flag(), &|line| eprintln!("{line}"))?;
    super::report(args.json, &summary, |s| s.text(&args.out))?;
    // A session that read no volume is no success: exit 2, naming the files refused.
    Ok(summary.require_volumes()?)
}
