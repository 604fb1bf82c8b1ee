//! Step 5 of `demo --route realtime`: the subject's next session is exported by a simulated
//! scanner (`realtime simulate`, on a thread) while the live session (`realtime run`) follows
//! the export folder and reconstructs it. Both are library calls; their command lines are
//! announced so that the demo doubles as a recipe.

use crate::demo::{path, DemoOptions, DemoPaths, DemoSteps};
use brainrecon_core::DataError;
use brainrecon_formats::dicom::write::DicomLayout;
use brainrecon_realtime::follow::FollowOptions;
use brainrecon_routes::decode::options::{check_sampling, device, dtype};
use brainrecon_routes::realtime::{run_session, LiveOptions, PageOptions};
use brainrecon_routes::RouteError;
use brainrecon_simulate::scanner_export::{
    export_session, wait_for_volume_count, ExportOptions, Exported,
};
use std::thread::JoinHandle;
use std::time::Duration;

/// The live session of `--route realtime`.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSettings {
    /// The session's repetition time, seconds.
    pub tr: f64,
    /// One volume written per TR while it is reconstructed (as a scanner writes them); `false`:
    /// the session is written at once and every volume drawn (a rehearsal).
    pub real_pace: bool,
    /// Show only the first this many test images in the session.
    pub images: Option<usize>,
    /// Seconds of rest before the session's first image (a baseline block, in which the
    /// running statistics settle).
    pub rest_seconds: f64,
}

impl Default for LiveSettings {
    /// `demo`'s defaults: TR 1.6 s at the scanner's pace, every test image, 30 s of rest.
    fn default() -> Self {
        LiveSettings {
            tr: 1.6,
            real_pace: true,
            images: None,
            rest_seconds: 30.0,
        }
    }
}

/// The simulated scanner failed without an error of its own (exit status 1 at the command
/// line, as for any internal failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScannerError {
    /// The scanner ended, or 120 s passed, before it wrote the session's volume count.
    StoppedEarly,
    /// The scanner's thread panicked.
    Panicked,
}

impl std::fmt::Display for ScannerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ScannerError::StoppedEarly => "the scanner stopped early",
            ScannerError::Panicked => "the simulated scanner panicked",
        })
    }
}

impl std::error::Error for ScannerError {}

/// Runs the scanner and the live session side by side; OUT/realtime-sim and
/// OUT/realtime-session are made again. The scanner's summary line and the session's summary
/// go to [`DemoSteps::print`] once both have ended; the session's events to
/// [`DemoSteps::log`]. A session that read no volume fails (exit status 2), naming the files
/// refused.
pub fn session<S: DemoSteps>(
    options: &DemoOptions,
    paths: &DemoPaths,
    steps: &mut S,
) -> Result<(), S::Error> {
    let live = &options.live;
    let out = &paths.out;
    let (sim, record) = (out.join("realtime-sim"), out.join("realtime-session"));
    for dir in [&sim, &record] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| RouteError::from(DataError::io(dir, e)))?;
        }
    }
    let (tr, seed, rest) = (
        live.tr.to_string(),
        options.seed.to_string(),
        live.rest_seconds.to_string(),
    );
    let pace = if live.real_pace { "real" } else { "none" };
    let mut recipe = vec![
        "realtime",
        "simulate",
        "--experiment",
        path(&paths.root),
        "--out",
        path(&sim),
        "--tr",
        &tr,
        "--pace",
        pace,
        "--seed",
        &seed,
        "--rest-seconds",
        &rest,
    ];
    let images = live.images.map(|n| n.to_string());
    if let Some(n) = &images {
        recipe.extend(["--images", n]);
    }
    // shown as a shell runs it: in the background, beside `realtime run`
    recipe.push("&");
    steps.announce(
        5,
        "a scanner exports the subject's next session while it is reconstructed",
        &recipe,
    );
    // `realtime simulate`'s defaults but for the flags above.
    let export = ExportOptions {
        experiment: paths.root.clone(),
        out: sim.clone(),
        export: None,
        tr: live.tr,
        real_pace: live.real_pace,
        layout: DicomLayout::Mosaic,
        images: live.images,
        repeats: 1,
        rest_seconds: live.rest_seconds,
        motion: 1.0,
        seed: options.seed,
    };
    let scanner = std::thread::spawn(move || export_session(&export));
    let volumes = wait_for_volume_count(&sim, Duration::from_secs(120), || scanner.is_finished());
    let volumes = match volumes.map_err(RouteError::from)? {
        Some(volumes) => volumes,
        None => {
            finish::<S::Error>(scanner)?;
            return Err(ScannerError::StoppedEarly.into());
        }
    };
    let boldref = paths.root.join(
        "derivatives/fmriprep/sub-01/func/sub-01_task-images_run-01_space-T1w_boldref.nii.gz",
    );
    let (events, folder) = (sim.join("events.tsv"), sim.join("export"));
    let idle_seconds = (10.0 * live.tr).max(10.0);
    let (volume_count, idle) = (volumes.to_string(), idle_seconds.to_string());
    let mut recipe = vec![
        "realtime",
        "run",
        "--folder",
        path(&folder),
        "--subject",
        path(&paths.subject),
        "--decoders",
        path(&paths.decoders),
        "--subject-reference",
        path(&boldref),
        "--tr",
        &tr,
        "--events",
        path(&events),
        "--model",
        &options.model,
        "--seed",
        &seed,
        "--device",
        &options.device,
        "--volumes",
        &volume_count,
        "--idle-seconds",
        &idle,
        "--out",
        path(&record),
    ];
    if !live.real_pace {
        recipe.push("--draw-all");
    }
    steps.announce_next(&recipe);
    // `realtime run`'s defaults but for the flags above.
    let (sampler_steps, guidance) = (10, 5.0);
    let live_options = || -> brainrecon_routes::Result<LiveOptions> {
        check_sampling(sampler_steps, guidance)?;
        let device = device(&options.device)?;
        let mut follow = FollowOptions::new(folder.clone());
        follow.volumes = Some(volumes);
        follow.idle_seconds = idle_seconds;
        Ok(LiveOptions {
            follow,
            subject: paths.subject.clone(),
            decoders: paths.decoders.clone(),
            subject_reference: Some(boldref.clone()),
            tr: live.tr,
            window_s: 4.0,
            delay_s: 4.0,
            draw_all: !live.real_pace,
            events: Some(events.clone()),
            out: record.clone(),
            model: options.model.clone(),
            steps: sampler_steps,
            strength: 0.8,
            guidance,
            seed: options.seed,
            dtype: dtype("f32")?,
            device,
            command: options.command.clone(),
        })
    };
    let session = live_options().and_then(|live| {
        let stop = steps.stop();
        run_session(live, &PageOptions::default(), stop, &|line| steps.log(line))
    });
    // A failure of the scanner is reported before the session's.
    let exported = finish::<S::Error>(scanner)?;
    steps.print(&format!("{}\n", exported.text()))?;
    let summary = session?;
    steps.print(&summary.text(&record))?;
    Ok(summary.require_volumes()?)
}

/// Waits for the scanner; its own error, or [`ScannerError::Panicked`].
fn finish<E: From<RouteError> + From<ScannerError>>(
    scanner: JoinHandle<brainrecon_core::Result<Exported>>,
) -> Result<Exported, E> {
    match scanner.join() {
        Ok(exported) => Ok(exported.map_err(RouteError::from)?),
        Err(_) => Err(ScannerError::Panicked.into()),
    }
}
