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
    pub(super) folder: FollowOptions,
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
    let record = follow::watch(args.folder, reference, &args.out, stop_flag(), &log)?;
    // The summary is printed (and session.json written) either way; a session that read no
    // volume then exits 2, naming the files refused.
    super::report(args.json, &record, |r| r.text(&args.out))?;
    Ok(record.require_volumes()?)
}
