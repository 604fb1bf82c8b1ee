//! `brainrecon realtime …`: real-time fMRI. `watch` follows a scanner's export folder volume by
//! volume: each file is read once complete, realigned and registered, and its motion written
//! as it arrives. `run` (realtime_run.rs) adds the decoders and the diffusion model: an image
//! per volume on a live page. `simulate` and `replay` (realtime_simulate.rs) write a simulated
//! subject's session, or a recorded run, as a scanner's export.

use brainrecon_realtime::follow::{self, FollowOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

subcommands! {
    /// Real-time fMRI: reconstruct what a subject sees while the scanner runs
    pub enum RealtimeCommand {
        Run(Box<super::realtime_run::RunArgs>) => super::realtime_run::run,
        Watch(WatchArgs) => watch,
        Simulate(super::realtime_simulate::SimulateArgs) => super::realtime_simulate::run,
        Replay(super::realtime_simulate::ReplayArgs) => super::realtime_simulate::replay,
    }
}

/// Watch a scanner's real-time export folder: realign each volume as it arrives.
///
/// Reads the DICOM layouts scanners export (.dcm, .ima): Siemens EPI mosaics and enhanced
/// multi-frame files (a volume per file), single-frame series (a slice per file, stacked into
/// volumes: see --slices); or 3-D NIfTI volumes (.nii, .nii.gz). A file is read as soon as its size holds over one poll;
/// one that does not read yet is read again until its size has held for --settle-ms (or a
/// later file has appeared), and only then reported as broken. The first volume is the session's reference;
/// with --subject-reference (a NIfTI volume of the subject on another day, e.g. a mean EPI) it
/// is registered to that volume too. OUT/motion.tsv gets one row per volume as it is done
/// (6 motion parameters, framewise displacement, latency from the file's last write);
/// OUT/session.json the summary when the session ends (--volumes reached, --idle-seconds
/// without a new file, or Ctrl-C / SIGTERM). A file that cannot be read or realigned is
/// reported and the session goes on; a file cut short (still being written) is read again
/// until its size has held for 10 × --settle-ms. A session that read no volume exits with 2,
/// naming the files refused.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  \
    brainrecon realtime watch --folder /mnt/scanner/export --out rt-session --volumes 300\n  \
    brainrecon realtime watch --folder export --subject-reference subj01/mean_epi.nii.gz --out rt --json")]
pub struct WatchArgs {
    #[command(flatten)]
    pub(super) folder: FolderArgs,
    /// Where motion.tsv and session.json go
    #[arg(long, default_value = "realtime-session")]
    out: PathBuf,
    /// A NIfTI volume on the subject's grid to register the session to
    #[arg(long)]
    subject_reference: Option<PathBuf>,
    /// Print the session summary as JSON
    #[arg(long)]
    json: bool,
}

/// How the export folder is followed (shared by `watch` and `run`).
#[derive(clap::Args)]
pub struct FolderArgs {
    /// The folder the scanner's real-time export writes into
    #[arg(long)]
    pub folder: PathBuf,
    /// Stop after this many volumes
    #[arg(long)]
    pub volumes: Option<usize>,
    /// Stop when no new file has arrived for this long (seconds) since the last one was read
    #[arg(long, default_value_t = 60.0)]
    pub idle_seconds: f64,
    /// A file that does not read is given this long without a change of size (ms) before it
    /// counts as broken; a file cut short (still being written), 10 times this
    #[arg(long, default_value_t = 200)]
    pub settle_ms: u64,
    /// How often the folder is listed (ms)
    #[arg(long, default_value_t = 20)]
    pub poll_ms: u64,
    /// Gaussian smoothing before realignment (mm FWHM)
    #[arg(long, default_value_t = 5.0)]
    pub smoothing_mm: f64,
    /// Slices per volume of a single-frame export (one DICOM file per slice); without it,
    /// the first volume is stacked when a slice of the second arrives
    #[arg(long)]
    pub slices: Option<usize>,
}

impl FolderArgs {
    /// The follower's options.
    pub(super) fn options(&self) -> FollowOptions {
        FollowOptions {
            folder: self.folder.clone(),
            volumes: self.volumes,
            idle_seconds: self.idle_seconds,
            settle_ms: self.settle_ms,
            poll_ms: self.poll_ms,
            smoothing_mm: self.smoothing_mm,
            slices: self.slices,
        }
    }
}

/// Set by Ctrl-C or SIGTERM: the session ends after the volume in hand.
static STOP: AtomicBool = AtomicBool::new(false);

/// The stop flag a signal sets (the handler is installed on first use).
pub(super) fn stop_flag() -> &'static AtomicBool {
    let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst));
    &STOP
}

fn watch(args: WatchArgs) -> anyhow::Result<()> {
    let log = |line: &str| eprintln!("{line}");
    let reference = args.subject_reference.as_deref();
    let record = follow::watch(
        args.folder.options(),
        reference,
        &args.out,
        stop_flag(),
        &log,
    )?;
    // The summary is printed (and session.json written) either way; a session that read no
    // volume then exits 2, naming the files refused.
    super::report(args.json, &record, |r| r.text(&args.out))?;
    Ok(record.require_volumes()?)
}
