//! `brainrecon realtime simulate`: a simulated subject's next session, written as a scanner's
//! real-time export.

use brainrecon_data::atomic::{read_json, write_bytes_atomic, write_json_atomic};
use brainrecon_data::simulate::events::{
    simulate_session, EventsTruth, SessionOptions, SessionTrial,
};
use brainrecon_realtime::export::{head_poses, planted_motion, session_offset, write_export};
use brainrecon_realtime::rigid::RigidParams;
use std::path::PathBuf;
use std::time::Duration;

/// Write a simulated subject's next session as a scanner's real-time export.
///
/// The subject is the one `simulate --kind events` made (--experiment: its folder), the one
/// whose prepared data the decoders were fit on: same brain, voxels' response shapes and
/// tuning; new noise and drifts. The session shows its test images (the first --images, each
/// --repeats times, in shuffled order, a 3-s image every 4 s, one blank in four) at --tr; the
/// head lies a few mm and degrees away from where it lay in the subject's reference and moves
/// (a slow drift and one sudden 0.8 mm / 0.6° movement at 60% of the session), and
/// every volume is written as a Siemens EPI mosaic into --export (OUT/export by default),
/// named as Siemens' real-time export names them, one every TR with --pace real (as a scanner
/// would) or all at once.
///
/// OUT/events.tsv holds the session's events (BIDS: onset, duration, trial_type, stim_file),
/// OUT/truth.json the trials and the planted motion of every volume.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  \
    brainrecon simulate --kind events --out exp\n  \
    brainrecon realtime simulate --experiment exp --out rt-sim --tr 1.0 --pace real &\n  \
    brainrecon realtime run --folder rt-sim/export --subject sub-01 --decoders decoders --tr 1.0")]
pub struct SimulateArgs {
    /// The folder `simulate --kind events` wrote
    #[arg(long)]
    experiment: PathBuf,
    /// Where events.tsv, truth.json (and export/) go
    #[arg(long, default_value = "realtime-simulated")]
    out: PathBuf,
    /// The folder the volumes are written to [default: OUT/export]
    #[arg(long)]
    export: Option<PathBuf>,
    /// Repetition time in seconds
    #[arg(long, default_value_t = 1.6)]
    tr: f64,
    /// real: one volume every TR; none: all at once
    #[arg(long, value_enum, default_value = "none")]
    pace: Pace,
    /// Show only the first N test images
    #[arg(long)]
    images: Option<usize>,
    /// Times each image is shown
    #[arg(long, default_value_t = 1)]
    repeats: usize,
    /// Scale of the planted head motion (0: none)
    #[arg(long, default_value_t = 1.0)]
    motion: f64,
    /// Seed of the session's noise, order and motion
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Pace {
    Real,
    None,
}

/// OUT/truth.json.
#[derive(serde::Serialize)]
struct SessionTruth {
    experiment: PathBuf,
    tr: f64,
    volumes: usize,
    trials: Vec<SessionTrial>,
    /// The head's pose at the first volume relative to the subject's reference (the
    /// registration's answer), about the grid's centre.
    offset: RigidParams,
    /// Head motion of every volume relative to the first, about the grid's centre.
    motion: Vec<RigidParams>,
    export: PathBuf,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    if !args.motion.is_finite() || args.motion < 0.0 {
        return Err(super::usage("--motion: expected a finite scale ≥ 0"));
    }
    let truth: EventsTruth = read_json(&args.experiment.join("truth/events_truth.json"))?;
    let session = simulate_session(
        &truth,
        &SessionOptions {
            seed: args.seed,
            tr: args.tr,
            images: args.images,
            repeats: args.repeats,
        },
    )?;
    let motion = planted_motion(session.volumes.len(), args.seed, args.motion);
    let offset = session_offset(args.motion);
    let centre = brainrecon_realtime::grid::Grid {
        shape: session.shape,
        affine: session.affine,
    }
    .centre();
    let poses = head_poses(&offset, &motion, centre);
    let export = args
        .export
        .clone()
        .unwrap_or_else(|| args.out.join("export"));
    std::fs::create_dir_all(&args.out).map_err(|e| brainrecon_data::DataError::io(&args.out, e))?;
    write_bytes_atomic(&args.out.join("events.tsv"), session.events_tsv.as_bytes())?;
    let record = SessionTruth {
        experiment: args.experiment.clone(),
        tr: session.tr,
        volumes: session.volumes.len(),
        trials: session.trials.clone(),
        offset,
        motion,
        export: export.clone(),
    };
    write_json_atomic(&args.out.join("truth.json"), &record)?;
    let pace = (args.pace == Pace::Real).then(|| Duration::from_secs_f64(args.tr));
    write_export(&session, &poses, &export, pace, |_, _| {})?;
    if args.json {
        return super::print_json(&serde_json::json!({
            "export": export, "volumes": record.volumes, "trials": record.trials.len(),
            "tr": record.tr, "events": args.out.join("events.tsv"),
        }));
    }
    outln!(
        "wrote {} volumes ({} trials, TR {} s) to {}; events in {}",
        record.volumes,
        record.trials.len(),
        record.tr,
        export.display(),
        args.out.join("events.tsv").display()
    )?;
    Ok(())
}
