//! The demo: a whole route run offline on a simulated subject with the built-in models, step by
//! step as a user would type it, ending with the headline figures.
//!
//! Each step is announced with the brainrecon command that does it (so the demo doubles as a
//! recipe) and run by the library function behind that command; the caller shows the steps
//! and what they report ([`DemoSteps`]). [`run`] runs the route `--route` names: the new-subject
//! and EEG routes have modules of their own ([`crate::demo_new_subject`], [`crate::demo_eeg`]),
//! the real-time route's live session too ([`crate::realtime_demo`]). For the routes that
//! reconstruct a subject's test images it decides which steps to run, skip or redo (an
//! interrupted demo continues where it stopped; decoders and reconstructions made with other
//! model files are made again), then scores the reconstructions, draws the pairs picture and
//! writes the summary.

use crate::demo_eeg::EegDemoSummary;
use crate::demo_new_subject::NewSubjectSummary;
pub use crate::realtime_demo::{LiveSettings, ScannerError};
use brainrecon_core::fs::{read_json, write_json_atomic};
use brainrecon_core::DataError;
use brainrecon_datasets::experiment::prepare::{prepare_experiment, ExperimentOptions, TestSet};
use brainrecon_datasets::nsd::prepare::{prepare, PrepareOptions, ZScore};
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::DType;
use brainrecon_diffusion::weights::ModelDir;
use brainrecon_formats::image::{read_png, write_png, RgbImage};
use brainrecon_routes::caption::decode::{caption_request, CaptionOptions, CaptionRequest};
use brainrecon_routes::caption::embedded::{SHAPES_BLIP, SHAPES_BLIP_MODEL};
use brainrecon_routes::decode::decoders::{fit_request, FitRequest};
use brainrecon_routes::decode::features::{features_request, FeaturesRequest};
use brainrecon_routes::decode::options::parse_device;
use brainrecon_routes::glm::{fit_folder, model_folder, GlmOptions, Source};
use brainrecon_routes::linear::{Manifest, ReconstructOptions};
use brainrecon_routes::reconstruct::ReconstructRequest;
use brainrecon_routes::score::folder_eval::{eval, EvalRequest};
use brainrecon_routes::{Result, RouteError};
use brainrecon_simulate::classify::{scene_accuracy, SceneAccuracy};
use brainrecon_simulate::request::{self as simulate, Request};
use brainrecon_simulate::scene::Scene;
use brainrecon_simulate::Truth;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// Which route the demo runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// Decoded VAE latent z and CLIP text context c (Takagi & Nishimoto 2023).
    Linear,
    /// Decoded z and a caption written from decoded BLIP image tokens.
    Caption,
    /// The linear route on an own event-related experiment: fMRIPrep's derivatives → glm →
    /// glm prepare.
    Experiment,
    /// The experiment's subject reconstructed volume by volume while a simulated scanner
    /// exports its next session.
    Realtime,
    /// A new subject from one session through a space shared by a simulated group
    /// ([`crate::demo_new_subject`]).
    #[serde(rename = "new-subject")]
    NewSubject,
    /// Seen images decoded from simulated EEG in THINGS-EEG2's layout by ridge and NICE's
    /// contrastive encoder ([`crate::demo_eeg`]).
    Eeg,
}

impl Route {
    /// The route's name as `--route` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Route::Linear => "linear",
            Route::Caption => "caption",
            Route::Experiment => "experiment",
            Route::Realtime => "realtime",
            Route::NewSubject => "new-subject",
            Route::Eeg => "eeg",
        }
    }

    /// `linear`, `caption`, `experiment`, `realtime`, `new-subject` or `eeg` (as
    /// [`Route::name`] writes them).
    pub fn parse(text: &str) -> Result<Self> {
        [
            Route::Linear,
            Route::Caption,
            Route::Experiment,
            Route::Realtime,
            Route::NewSubject,
            Route::Eeg,
        ]
        .into_iter()
        .find(|route| route.name() == text)
        .ok_or_else(|| {
            RouteError::Usage(format!(
                "--route: expected linear, caption, experiment, realtime, new-subject or eeg, found '{text}'"
            ))
        })
    }

    /// `reconstruct --method`.
    fn method(self) -> &'static str {
        match self {
            Route::Caption => "caption",
            _ => "linear",
        }
    }

    /// Output names: reconstructions, headline file, pairs image.
    pub(crate) fn outputs(self) -> [&'static str; 3] {
        match self {
            Route::Linear => ["recons", "demo.json", "pairs.png"],
            Route::Caption => ["recons-caption", "demo-caption.json", "pairs-caption.png"],
            Route::Experiment => [
                "recons-experiment",
                "demo-experiment.json",
                "pairs-experiment.png",
            ],
            Route::Realtime => [
                "realtime-session/recons",
                "demo-realtime.json",
                "pairs-realtime.png",
            ],
            Route::NewSubject => [
                "new-subject",
                "demo-new-subject.json",
                "pairs-new-subject.png",
            ],
            Route::Eeg => ["eeg", "demo-eeg.json", "retrievals-eeg.png"],
        }
    }

    /// How many numbered steps the route's demo announces.
    pub fn steps(self) -> usize {
        match self {
            Route::Eeg => 7,
            _ => 6,
        }
    }

    /// Distinct images of the simulated subject when `--images` is not given (per subject for
    /// the new-subject route).
    pub fn default_images(self) -> usize {
        match self {
            Route::NewSubject => 300,
            _ => 600,
        }
    }

    /// (feature kind, model) of the stimuli that the route decodes.
    fn features(self, diffusion: &str) -> [(&'static str, &str); 2] {
        match self {
            Route::Linear
            | Route::Experiment
            | Route::Realtime
            | Route::NewSubject
            | Route::Eeg => [("vae", diffusion), ("clip-text", diffusion)],
            Route::Caption => [("vae", diffusion), ("blip-vision", SHAPES_BLIP)],
        }
    }

    /// The experiment routes simulate a lab's own experiment; the others NSD's layout.
    fn is_experiment(self) -> bool {
        matches!(self, Route::Experiment | Route::Realtime)
    }
}

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Output folder (created; an earlier demo there is resumed).
    pub out: PathBuf,
    /// Distinct images shown to the simulated subject (a tenth are test images).
    pub images: usize,
    /// Seed of the simulated subject and of the sampling noise.
    pub seed: u64,
    /// The diffusion model (folder, cached id, or shapes-ldm).
    pub model: String,
    /// Reconstructions per test image.
    pub samples: usize,
    /// DDIM steps of the full schedule.
    pub steps: usize,
    /// cpu, cuda or cuda:N.
    pub device: String,
    /// The route.
    pub route: Route,
    /// The command line, recorded in the manifests and reports.
    pub command: String,
    /// Draw progress bars.
    pub progress: bool,
    /// `--route realtime`: the live session.
    pub live: LiveSettings,
}

/// The demo's folders, as the steps use them.
#[derive(Debug, Clone)]
pub struct DemoPaths {
    /// The output folder.
    pub out: PathBuf,
    /// The simulated data set (OUT/nsd or OUT/events).
    pub root: PathBuf,
    /// The prepared subject (OUT/subj01 or OUT/sub-01).
    pub subject: PathBuf,
    /// The decoders (OUT/decoders/{z,c,blip}).
    pub decoders: PathBuf,
    /// The reconstructions scored.
    pub recons: PathBuf,
}

impl DemoPaths {
    /// The folders of `route` under `out`.
    pub fn new(out: &Path, route: Route) -> Self {
        let (root, subject) = if route.is_experiment() {
            (out.join("events"), out.join("sub-01"))
        } else {
            (out.join("nsd"), out.join("subj01"))
        };
        DemoPaths {
            out: out.to_path_buf(),
            root,
            subject,
            decoders: out.join("decoders"),
            recons: out.join(route.outputs()[0]),
        }
    }

    /// `--route realtime`: the reconstructions of the same volumes analysed after the session.
    pub fn offline_recons(&self) -> PathBuf {
        self.out.join("realtime-session/recons-offline")
    }
}

/// How the caller shows the demo's steps and what they report.
pub trait DemoSteps {
    /// The caller's error; the demo's own become it.
    type Error: From<RouteError> + From<ScannerError>;

    /// Step `number` of the route's [`Route::steps`], titled `title`, starts: `args` is the
    /// brainrecon command (without the program name) that does it, shown so that the demo
    /// doubles as a recipe (as [`announcement`] writes it).
    fn announce(&mut self, number: usize, title: &str, args: &[&str]);

    /// Another command of the step last announced, run beside it (`brainrecon ARGS`).
    fn announce_next(&mut self, args: &[&str]);

    /// What a step reports, for people (the command's standard output).
    fn print(&mut self, text: &str) -> Result<(), Self::Error>;

    /// A step's warning.
    fn warn(&mut self, text: &str);

    /// A line of a step's progress, or a note (the command's standard error).
    fn log(&self, line: &str);

    /// Step `number` was found done, or must be redone: `text` says which and why.
    fn note(&mut self, number: usize, text: &str);

    /// The flag that ends `--route realtime`'s live session after the volume in hand (the
    /// caller's signal handler sets it); asked for as the session starts.
    fn stop(&mut self) -> &'static AtomicBool;
}

/// Step `number` of `of` as the command line announces it: a blank line, `[N/OF] TITLE`, and
/// the command indented under it.
pub fn announcement(number: usize, of: usize, title: &str, args: &[&str]) -> String {
    format!("\n[{number}/{of}] {title}\n  brainrecon {}", args.join(" "))
}

/// What `demo` ends with: the route's headline figures, as the route's summary file holds them.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Summary {
    /// The routes that reconstruct a subject's test images (linear, caption, experiment,
    /// realtime).
    Reconstruction(DemoSummary),
    /// `--route new-subject`.
    NewSubject(NewSubjectSummary),
    /// `--route eeg`.
    Eeg(EegDemoSummary),
}

impl Summary {
    /// The figures as the command prints them.
    pub fn text(&self) -> String {
        match self {
            Summary::Reconstruction(summary) => summary.text(),
            Summary::NewSubject(summary) => summary.text(),
            Summary::Eeg(summary) => summary.text(),
        }
    }
}

/// Runs the demo of `options.route`: every step not already done, then the headline figures,
/// written to the route's summary file.
pub fn run<S: DemoSteps>(options: &DemoOptions, steps: &mut S) -> Result<Summary, S::Error> {
    Ok(match options.route {
        Route::Eeg => Summary::Eeg(crate::demo_eeg::run(options, steps)?),
        Route::NewSubject => Summary::NewSubject(crate::demo_new_subject::run(options, steps)?),
        _ => Summary::Reconstruction(reconstruction_route(options, steps)?),
    })
}

/// The headline figures of a demo (OUT/demo.json and the like).
#[derive(Debug, Serialize)]
pub struct DemoSummary {
    /// The output folder.
    pub out: PathBuf,
    /// The route run.
    pub route: Route,
    /// Test images reconstructed.
    pub n_test: usize,
    /// Reconstructions (mean over samples).
    pub reconstruction: SceneAccuracy,
    /// The VAE decode of the decoded z alone.
    pub decoded_z: SceneAccuracy,
    /// Chance accuracies.
    pub chance: SceneAccuracy,
    /// Two-way identification of the reconstructions on pixels, and of the decoded latents.
    pub two_way_pixels: Option<f64>,
    /// Two-way identification of the decoded z.
    pub two_way_latent_z: Option<f64>,
    /// Two-way identification of the decoded c.
    pub two_way_latent_c: Option<f64>,
    /// The evaluation's HTML report.
    pub report: PathBuf,
    /// The evaluation's metrics.json.
    pub metrics: PathBuf,
    /// The pairs picture: stimulus | decoded z | reconstruction.
    pub pairs: PathBuf,
    /// --route realtime: the same figures for the same volumes analysed after the session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<Figures>,
    /// --route realtime: the live session's record (OUT/realtime-session/session.json).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime: Option<serde_json::Value>,
    /// Wall time of the demo.
    pub seconds: f64,
    /// --route realtime: the live session's repetition time, seconds (printed, not written).
    #[serde(skip)]
    pub tr: f64,
}

impl DemoSummary {
    /// The summary as the command prints it.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let summary = self;
        let mut text = String::new();
        let pct = |v: f64| format!("{:.0}%", 100.0 * v);
        let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
        let _ = writeln!(
            text,
            "\ndemo finished in {:.0} s: {} test images",
            summary.seconds, summary.n_test
        );
        let _ = writeln!(
            text,
            "  reconstructions: colour right {} (chance {}), shape right {} (chance {}), both {}",
            pct(summary.reconstruction.colour),
            pct(summary.chance.colour),
            pct(summary.reconstruction.shape),
            pct(summary.chance.shape),
            pct(summary.reconstruction.both)
        );
        let _ = writeln!(
            text,
            "  decoded z alone: colour right {}, shape right {}",
            pct(summary.decoded_z.colour),
            pct(summary.decoded_z.shape)
        );
        let _ = writeln!(
            text,
            "  two-way identification: reconstructions (pixels) {}, decoded z {}, decoded c {} (chance 0.5)",
            opt(summary.two_way_pixels),
            opt(summary.two_way_latent_z),
            opt(summary.two_way_latent_c)
        );
        if let Some(offline) = &summary.offline {
            let _ = writeln!(
                text,
                "  the same volumes analysed after the session: colour right {}, shape right {}; two-way: pixels {}, decoded z {}, decoded c {}",
                pct(offline.reconstruction.colour),
                pct(offline.reconstruction.shape),
                opt(offline.two_way_pixels),
                opt(offline.two_way_latent_z),
                opt(offline.two_way_latent_c)
            );
        }
        if let Some(session) = &summary.realtime {
            let ms = |key: &str| {
                session[key]
                    .as_f64()
                    .map_or("n/a".to_string(), |v| format!("{v:.0} ms"))
            };
            let _ = writeln!(
                text,
                "  live session: {} volumes at TR {} s, {} drawn, {} decoded but not drawn, {} refused; image latency median {}, p95 {}",
                session["volumes"],
                summary.tr,
                session["drawn"],
                session["not_drawn"],
                session["refused"].as_array().map_or(0, Vec::len),
                ms("image_latency_ms_median"),
                ms("image_latency_ms_p95")
            );
        }
        let _ = writeln!(text, "  report: {}", summary.report.display());
        let _ = writeln!(
            text,
            "  pairs:  {} (stimulus | decoded z | reconstruction)",
            summary.pairs.display()
        );
        text
    }
}

/// How well a reconstruction folder's images and decoded features identify their stimuli.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Reconstructions (mean over samples).
    pub reconstruction: SceneAccuracy,
    /// The VAE decode of the decoded z alone.
    pub decoded_z: SceneAccuracy,
    /// Two-way identification of the reconstructions on pixels.
    pub two_way_pixels: Option<f64>,
    /// Two-way identification of the decoded z.
    pub two_way_latent_z: Option<f64>,
    /// Two-way identification of the decoded c.
    pub two_way_latent_c: Option<f64>,
}

/// Runs a route that reconstructs the subject's test images: every step not already done, then
/// the headline figures, written to OUT/demo.json (OUT/demo-<route>.json) beside the pairs
/// picture.
fn reconstruction_route<S: DemoSteps>(
    options: &DemoOptions,
    steps: &mut S,
) -> Result<DemoSummary, S::Error> {
    let started = std::time::Instant::now();
    let out = &options.out;
    std::fs::create_dir_all(out).map_err(|e| RouteError::from(DataError::io(out, e)))?;
    let paths = DemoPaths::new(out, options.route);
    if options.route.is_experiment() {
        experiment_subject(options, &paths, steps)?;
    } else {
        nsd_subject(options, &paths, steps)?;
    }
    let device = options.device.as_str();
    let subject = path(&paths.subject);
    for (kind, model) in options.route.features(&options.model) {
        steps.announce(
            3,
            &format!("features of the stimuli: {kind}"),
            &[
                "features",
                "--subject",
                subject,
                "--model",
                model,
                "--kind",
                kind,
                "--device",
                device,
            ],
        );
        features(
            &options.device,
            options.progress,
            &paths.subject,
            kind,
            model,
            steps,
        )?;
    }
    // Decoders and reconstructions made with other files under the model's name (an
    // earlier version of shapes-ldm or shapes-blip) are made again.
    let fingerprint = model_fingerprint(&options.model)?;
    let refit = decoders(options, &paths, &fingerprint, steps)?;
    let recons = &paths.recons;
    if recons.join(Manifest::FILE).is_file()
        && (refit || Manifest::load(recons)?.model_fingerprint != fingerprint)
    {
        steps.note(
            5,
            &format!(
                "the reconstructions in {} were made with other decoders or model files: \
                 making them again",
                recons.display()
            ),
        );
        remove_dir(recons)?;
    }
    let captions = out.join("captions");
    if options.route == Route::Caption {
        steps.announce(
            5,
            "caption the test images from their decoded BLIP tokens (shapes-blip)",
            &[
                "caption",
                "--subject",
                subject,
                "--decoders",
                path(&paths.decoders),
                "--out",
                path(&captions),
                "--device",
                device,
            ],
        );
        let file = caption_request(&CaptionRequest {
            subject: paths.subject.clone(),
            decoders: Some(paths.decoders.clone()),
            source: "decoded".into(),
            features: None,
            blip: SHAPES_BLIP.into(),
            out: captions.clone(),
            options: CaptionOptions::default(),
            beam_scoring: "published".into(),
            device: parse_device(&options.device)?,
            progress: options.progress,
        })?;
        steps.print(&file.text(&captions))?;
    }
    if options.route == Route::Realtime {
        crate::realtime_demo::session(options, &paths, steps)?;
    } else {
        reconstruct(options, &paths, &captions, steps)?;
    }
    evaluate(
        options,
        &paths,
        recons,
        "evaluate and write the report",
        steps,
    )?;
    if options.route == Route::Realtime {
        let offline = paths.offline_recons();
        let title = "evaluate the same volumes analysed after the session";
        evaluate(options, &paths, &offline, title, steps)?;
    }
    Ok(summarize(options, &paths, started)?)
}

/// Step 3: features of `kind` of the subject's stimuli with `model` on `device` (into
/// SUBJECT/features), as every demo asks for them.
pub(crate) fn features<S: DemoSteps>(
    device: &str,
    progress: bool,
    subject: &Path,
    kind: &str,
    model: &str,
    steps: &mut S,
) -> Result<(), S::Error> {
    let request = FeaturesRequest {
        subject: subject.to_path_buf(),
        kind: kind.into(),
        model: Some(model.into()),
        layer: "last".into(),
        normalize: false,
        out: None,
        size: None,
        sample: false,
        seed: 0,
        batch: 8,
        device: parse_device(device)?,
        dtype: DType::F32,
        progress,
    };
    features_request(&request, |summary, seconds| {
        steps.print(&format!("{}\n", summary.text(seconds)))
    })
}

/// Step 5: the test images reconstructed by the route (conditioned on the captions of the
/// caption route).
fn reconstruct<S: DemoSteps>(
    options: &DemoOptions,
    paths: &DemoPaths,
    captions: &Path,
    steps: &mut S,
) -> Result<(), S::Error> {
    let caption_route = options.route == Route::Caption;
    let (seed, samples, sampler_steps) = (
        options.seed.to_string(),
        options.samples.to_string(),
        options.steps.to_string(),
    );
    let mut recipe = vec![
        "reconstruct",
        "--method",
        options.route.method(),
        "--subject",
        path(&paths.subject),
        "--decoders",
        path(&paths.decoders),
        "--model",
        &options.model,
        "--out",
        path(&paths.recons),
        "--samples",
        &samples,
        "--steps",
        &sampler_steps,
        "--seed",
        &seed,
        "--device",
        &options.device,
    ];
    if caption_route {
        recipe.extend(["--captions", path(captions)]);
    }
    let title = format!(
        "reconstruct the test images ({} route)",
        options.route.name()
    );
    steps.announce(5, &title, &recipe);
    let done = brainrecon_routes::reconstruct::run(&ReconstructRequest {
        method: options.route.method().into(),
        captions: caption_route.then(|| captions.to_path_buf()),
        b2c: None,
        init: "noise".into(),
        subject: paths.subject.clone(),
        decoders: Some(paths.decoders.clone()),
        model: options.model.clone(),
        out: paths.recons.clone(),
        options: ReconstructOptions {
            samples: options.samples,
            steps: options.steps,
            seed: options.seed,
            ..ReconstructOptions::default()
        },
        batch: None,
        shard: None,
        device: parse_device(&options.device)?,
        dtype: DType::F32,
        command: options.command.clone(),
        progress: options.progress,
    })?;
    steps.print(&format!("{}\n", done.text()))
}

/// Step 6: `recons` evaluated, with its report.
fn evaluate<S: DemoSteps>(
    options: &DemoOptions,
    paths: &DemoPaths,
    recons: &Path,
    title: &str,
    steps: &mut S,
) -> Result<(), S::Error> {
    let args = [
        "eval",
        "--stimuli",
        path(&paths.subject),
        "--recons",
        path(recons),
    ];
    steps.announce(6, title, &args);
    let evaluated = eval(
        &EvalRequest {
            stimuli: paths.subject.clone(),
            recons: recons.to_path_buf(),
            clip: None,
            metric_weights: None,
            protocol: "mindeye".into(),
            device: brainrecon_core::Device::Cpu,
            rows_per_page: 50,
            thumbnail: 128,
            captions: None,
            meteor_jar: None,
            clip_score_model: None,
            sheet: None,
            command: options.command.clone(),
        },
        brainrecon_routes::reconstruct::eval_extras,
    )?;
    steps.print(&evaluated.text())
}

/// Steps 1–2 of the linear and caption routes: a subject simulated in NSD's layout, prepared.
fn nsd_subject<S: DemoSteps>(
    options: &DemoOptions,
    paths: &DemoPaths,
    steps: &mut S,
) -> Result<(), S::Error> {
    let (root, subject) = (&paths.root, &paths.subject);
    if root.join("truth").join("truth.json").is_file() {
        steps.note(1, &format!("simulated subject found in {}", root.display()));
    } else {
        let (images, seed) = (options.images.to_string(), options.seed.to_string());
        steps.announce(
            1,
            "simulate a subject (NSD layout)",
            &[
                "simulate",
                "--out",
                path(root),
                "--images",
                &images,
                "--seed",
                &seed,
            ],
        );
        simulate_subject(options, root, simulate::Kind::Image, None, steps)?;
    }
    if subject.join("subject.json").is_file() {
        steps.note(
            2,
            &format!("prepared subject found in {}", subject.display()),
        );
        return Ok(());
    }
    steps.announce(
        2,
        "prepare it as NSD is prepared",
        &[
            "nsd",
            "prepare",
            "--nsd-root",
            path(root),
            "--subject",
            "subj01",
            "--out",
            path(subject),
        ],
    );
    let report = prepare(&PrepareOptions {
        progress: options.progress,
        ..PrepareOptions::defaults(root, 1, subject)
    })
    .map_err(RouteError::from)?;
    steps.print(&report.text())?;
    if let Some(note) = report.note() {
        steps.log(&note);
    }
    Ok(())
}

/// `simulate --out ROOT --images N --seed S` (with `--kind events --runs R` for an
/// experiment): its defaults but for those flags.
fn simulate_subject<S: DemoSteps>(
    options: &DemoOptions,
    root: &Path,
    kind: simulate::Kind,
    runs: Option<usize>,
    steps: &mut S,
) -> Result<(), S::Error> {
    let summary = simulate::run(&Request {
        out: root.to_path_buf(),
        kind,
        size: simulate::Size::Small,
        runs,
        run_seconds: None,
        clips_per_genre: None,
        clips_per_run: None,
        track_seconds: None,
        library_per_genre: None,
        images: Some(options.images),
        seed: options.seed,
        layout: brainrecon_simulate::OutputLayout::Nsd,
        subject: "subj01".into(),
        image_size: 64,
        sessions: None,
        volume: None,
        progress: options.progress,
        subjects: None,
        individual_share: None,
        shared_images: None,
        generator: brainrecon_simulate::Generator::Fields,
        ncsnr: None,
    })
    .map_err(RouteError::from)?;
    steps.print(&format!("{}\n", summary.text()))
}

/// Runs of the event-related experiment for `images` images (one in six a test image shown
/// three times, the others twice): the fewest runs from 7 whose trials divide evenly.
pub fn experiment_runs(images: usize) -> Result<usize> {
    let test = (images / 6).max(2);
    let trials = 2 * images.saturating_sub(test) + 3 * test;
    (7..=24)
        .find(|&r| trials.is_multiple_of(r))
        .ok_or_else(|| {
            RouteError::Usage(format!(
                "--images {images}: its {trials} trials do not split evenly into 7 to 24 runs; choose another count"
            ))
        })
}

/// Steps 1–2 of the experiment routes: an event-related experiment simulated as a lab records
/// it and fMRIPrep preprocesses it, its single-trial betas (GLMsingle's method) and the
/// prepared subject made from them.
fn experiment_subject<S: DemoSteps>(
    options: &DemoOptions,
    paths: &DemoPaths,
    steps: &mut S,
) -> Result<(), S::Error> {
    let (root, subject) = (&paths.root, &paths.subject);
    if root.join("truth").join("events_truth.json").is_file() {
        steps.note(
            1,
            &format!("simulated experiment found in {}", root.display()),
        );
    } else {
        let runs = experiment_runs(options.images)?;
        let (images, seed) = (options.images.to_string(), options.seed.to_string());
        steps.announce(
            1,
            "simulate an event-related experiment (raw BIDS + fMRIPrep's derivatives)",
            &[
                "simulate",
                "--kind",
                "events",
                "--out",
                path(root),
                "--images",
                &images,
                "--runs",
                &runs.to_string(),
                "--seed",
                &seed,
            ],
        );
        simulate_subject(options, root, simulate::Kind::Events, Some(runs), steps)?;
    }
    if subject.join("subject.json").is_file() {
        steps.note(
            2,
            &format!("prepared subject found in {}", subject.display()),
        );
        return Ok(());
    }
    let fmriprep = root.join("derivatives").join("fmriprep");
    let glm = subject.with_file_name("glm");
    steps.announce(
        2,
        "single-trial betas by GLMsingle's method",
        &[
            "glm",
            "--fmriprep",
            path(&fmriprep),
            "--bids-root",
            path(root),
            "--subject",
            "01",
            "--task",
            "images",
            "--space",
            "T1w",
            "--out",
            path(&glm),
        ],
    );
    // `glm`'s defaults but for the flags above.
    let fitted = fit_folder(&GlmOptions {
        source: Source::Fmriprep {
            fmriprep,
            bids_root: root.clone(),
        },
        subject: "01".into(),
        tasks: vec!["images".into()],
        sessions: Vec::new(),
        space: Some("T1w".into()),
        mask: None,
        confounds: "none".into(),
        condition_column: None,
        stimdur: None,
        out: glm.clone(),
        cortex: "auto"
            .parse()
            .map_err(|e: String| RouteError::Usage(format!("--cortex: {e}")))?,
        progress: options.progress,
    })?;
    if !fitted.resumed.is_empty() {
        steps.log(&format!(
            "resumed the interrupted fit's {}",
            fitted.resumed.join(", ")
        ));
    }
    if let Some(failed) = &fitted.stage_not_kept {
        steps.warn(&format!(
            "a finished stage could not be kept for resuming ({failed})"
        ));
    }
    steps.print(&fitted.text(&glm))?;
    let captions = root.join("stimuli").join("captions.json");
    steps.announce(
        2,
        "prepare a subject from the betas",
        &[
            "glm",
            "prepare",
            "--glm",
            path(&glm),
            "--captions",
            path(&captions),
            "--out",
            path(subject),
        ],
    );
    // `glm prepare`'s defaults but for the flags above.
    let report = prepare_experiment(&ExperimentOptions {
        glm,
        out: subject.clone(),
        model: model_folder("typed")?.to_string(),
        stimuli: None,
        captions: Some(captions),
        atlas: None,
        atlas_transform: None,
        atlas_labels: None,
        rois: vec!["visual".into(), "streams".into()],
        test: TestSet::MinRepeats(3),
        zscore: ZScore::Session,
        average_train: false,
        image_size: None,
        leave_out_missing: false,
    })
    .map_err(RouteError::from)?;
    steps.print(&report.text())
}

/// The fingerprint of the diffusion model's files.
fn model_fingerprint(model: &str) -> Result<String> {
    Ok(ModelDir::resolve(model)?.fingerprint()?)
}

/// The fingerprint of the built-in shapes-blip, whose tokens the blip decoder is fit on (to
/// spot a stale decoder).
fn shapes_blip_fingerprint() -> Result<String> {
    let root = SHAPES_BLIP_MODEL.dir()?;
    Ok(ModelDir { root }.fingerprint()?)
}

/// Step 4: the ridge decoders the route needs; one fit on features of other model files than
/// `fingerprint` (shapes-blip's for the blip decoder) is fit again. Returns whether any
/// decoder was fit.
fn decoders<S: DemoSteps>(
    options: &DemoOptions,
    paths: &DemoPaths,
    fingerprint: &str,
    steps: &mut S,
) -> Result<bool, S::Error> {
    let mut refit = false;
    let targets = match options.route {
        Route::Linear | Route::Experiment | Route::Realtime | Route::NewSubject | Route::Eeg => {
            ["z", "c"]
        }
        Route::Caption => ["z", "blip"],
    };
    for target in targets {
        let fingerprint = match target {
            "blip" => shapes_blip_fingerprint()?,
            _ => fingerprint.to_string(),
        };
        let dir = paths.decoders.join(target);
        let model_json = dir.join("model.json");
        if model_json.is_file() {
            let fit: serde_json::Value = read_json(&model_json).map_err(RouteError::from)?;
            let fit_on = fit["metadata"]["target_model_fingerprint"].as_str();
            if fit_on == Some(fingerprint.as_str()) {
                steps.note(4, &format!("decoder {target} found in {}", dir.display()));
                continue;
            }
            steps.note(
                4,
                &format!(
                    "decoder {target} in {} was fit on features of other model files: \
                     fitting it again",
                    dir.display()
                ),
            );
            remove_dir(&dir)?;
        }
        refit = true;
        let args = [
            "fit",
            "--subject",
            path(&paths.subject),
            "--target",
            target,
            "--out",
            path(&dir),
        ];
        steps.announce(4, &format!("fit the ridge decoder of {target}"), &args);
        let fitted = fit_request(
            &FitRequest::with_defaults(paths.subject.clone(), target, dir),
            &mut |warning| steps.warn(&warning),
        )?;
        steps.print(&fitted.text())?;
    }
    Ok(refit)
}

/// The headline figures, the pairs picture and the summary file.
fn summarize(
    options: &DemoOptions,
    paths: &DemoPaths,
    started: std::time::Instant,
) -> Result<DemoSummary> {
    let route = options.route;
    let scored = score(route, paths, &paths.recons)?;
    let offline = match route {
        Route::Realtime => Some(score(route, paths, &paths.offline_recons())?),
        _ => None,
    };
    let (ids, decoded_z, sample_sets) =
        (&scored.ids, &scored.decoded_z_images, &scored.sample_sets);
    let subject = PreparedSubject::open(&paths.subject)?;
    let stimuli = subject.images()?;
    let triples: Vec<[RgbImage; 3]> = ids
        .iter()
        .zip(decoded_z.iter().zip(&sample_sets[0]))
        .take(12)
        .map(|(&id, (z, sample))| -> Result<[RgbImage; 3]> {
            let stimulus = stimuli.get(id).ok_or_else(|| {
                RouteError::Usage(format!(
                    "{}: test image {id} missing",
                    paths.subject.display()
                ))
            })?;
            Ok([stimulus, z.clone(), sample.clone()])
        })
        .collect::<Result<_>>()?;
    let [_, summary_name, pairs_name] = route.outputs();
    let out = &options.out;
    let pairs = out.join(pairs_name);
    write_png(&pairs, &pairs_image(&triples, 4))?;
    let recons = &paths.recons;
    let summary = DemoSummary {
        out: out.clone(),
        route,
        n_test: ids.len(),
        reconstruction: scored.figures.reconstruction,
        decoded_z: scored.figures.decoded_z,
        chance: SceneAccuracy::chance(),
        two_way_pixels: scored.figures.two_way_pixels,
        two_way_latent_z: scored.figures.two_way_latent_z,
        two_way_latent_c: scored.figures.two_way_latent_c,
        report: recons.join("eval").join("report.html"),
        metrics: recons.join("eval").join("metrics.json"),
        offline: offline.map(|o| o.figures),
        pairs,
        realtime: (route == Route::Realtime)
            .then(|| read_json(&out.join("realtime-session").join("session.json")))
            .transpose()?,
        seconds: started.elapsed().as_secs_f64(),
        tr: options.live.tr,
    };
    write_json_atomic(&out.join(summary_name), &summary)?;
    Ok(summary)
}

/// A scored reconstruction folder: its figures, and its images for the pairs picture.
struct Scored {
    figures: Figures,
    ids: Vec<usize>,
    decoded_z_images: Vec<RgbImage>,
    sample_sets: Vec<Vec<RgbImage>>,
}

/// Reads `recons` (evaluated: `eval/metrics.json`) and scores it against the shown scenes.
fn score(route: Route, paths: &DemoPaths, recons: &Path) -> Result<Scored> {
    let manifest = Manifest::load(recons)?;
    let ids = manifest.ids.clone();
    let scenes = shown_scenes(route, paths, &ids)?;
    let read_set = |dir: &Path| -> Result<Vec<RgbImage>> {
        ids.iter()
            .map(|id| Ok(read_png(&dir.join(format!("{id}.png")))?))
            .collect()
    };
    let decoded_z_images = read_set(&Manifest::decoded_z_dir(recons))?;
    let sample_sets = (1..=manifest.options.samples)
        .map(|k| read_set(&Manifest::sample_dir(recons, k)))
        .collect::<Result<Vec<_>>>()?;
    let per_sample: Vec<SceneAccuracy> = sample_sets
        .iter()
        .map(|set| scene_accuracy(&scenes, set))
        .collect();
    let metrics: serde_json::Value = read_json(&recons.join("eval").join("metrics.json"))?;
    let row_value = |prefix: &str, key: &str| -> Option<f64> {
        metrics["rows"]
            .as_array()?
            .iter()
            .find(|row| row["name"].as_str().is_some_and(|n| n.starts_with(prefix)))?[key]
            .as_f64()
    };
    Ok(Scored {
        figures: Figures {
            reconstruction: mean_accuracy(&per_sample),
            decoded_z: scene_accuracy(&scenes, &decoded_z_images),
            two_way_pixels: row_value("reconstruction", "two_way_pixels"),
            two_way_latent_z: row_value("decoded z (features)", "two_way_latent"),
            two_way_latent_c: row_value("decoded c (features)", "two_way_latent"),
        },
        ids,
        decoded_z_images,
        sample_sets,
    })
}

/// The mean of accuracies (of each sample's reconstructions).
pub(crate) fn mean_accuracy(parts: &[SceneAccuracy]) -> SceneAccuracy {
    let n = parts.len().max(1) as f64;
    SceneAccuracy {
        colour: parts.iter().map(|a| a.colour).sum::<f64>() / n,
        shape: parts.iter().map(|a| a.shape).sum::<f64>() / n,
        both: parts.iter().map(|a| a.both).sum::<f64>() / n,
    }
}

/// The scene each reconstructed stimulus id shows.
fn shown_scenes(route: Route, paths: &DemoPaths, ids: &[usize]) -> Result<Vec<Scene>> {
    if !route.is_experiment() {
        let truth: Truth = read_json(&paths.root.join("truth").join("truth.json"))?;
        return Ok(ids.iter().map(|&id| truth.scenes[id]).collect());
    }
    // Stimulus ids are conditions; their files are named scene-<scene id>.png.
    let names_path = paths.subject.join("stimuli").join("names.json");
    let names: std::collections::BTreeMap<String, String> = read_json(&names_path)?;
    ids.iter()
        .map(|id| {
            names
                .get(&id.to_string())
                .and_then(|n| n.strip_prefix("scene-")?.strip_suffix(".png")?.parse().ok())
                .map(Scene::from_id)
                .ok_or_else(|| {
                    RouteError::Usage(format!(
                        "{}: no scene file for stimulus {id}",
                        names_path.display()
                    ))
                })
        })
        .collect()
}

/// Columns of (stimulus | decoded z | reconstruction) triples, `per_row` triples a row, all
/// at the stimulus size, on a white ground.
pub fn pairs_image(triples: &[[RgbImage; 3]], per_row: usize) -> RgbImage {
    let groups: Vec<Vec<RgbImage>> = triples.iter().map(|t| t.to_vec()).collect();
    crate::demo_new_subject::sheet(&groups, per_row)
}

/// A demo path as a command-line argument.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("demo paths are UTF-8")
}

/// Removes an earlier, stale output folder of the demo.
fn remove_dir(dir: &Path) -> Result<()> {
    std::fs::remove_dir_all(dir).map_err(|e| DataError::io(dir, e).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_laid_out_in_rows_of_triples() {
        let image = RgbImage::new(8, 8, vec![0u8; 8 * 8 * 3]);
        let triples = vec![[image.clone(), image.clone(), image.clone()]; 5];
        let sheet = pairs_image(&triples, 4);
        // 2 rows, 4 triples wide: 8 px gaps around, 2 px between the images of a triple.
        assert_eq!(sheet.height, 2 * (8 + 8) + 8);
        assert_eq!(sheet.width, 4 * (3 * 8 + 4 + 8) + 8);
    }

    #[test]
    fn experiment_runs_divide_the_trials_evenly() {
        // 600 images: 100 test shown 3 times, 500 twice = 1300 trials.
        let runs = experiment_runs(600).unwrap();
        assert_eq!(1300 % runs, 0);
        assert!((7..=24).contains(&runs));
    }

    /// Records the steps; stops the demo at the first report.
    struct Plan(Vec<String>);

    type Failure = Box<dyn std::error::Error + Send + Sync>;

    impl DemoSteps for Plan {
        type Error = Failure;
        fn announce(&mut self, number: usize, _: &str, args: &[&str]) {
            self.0.push(format!("{number} {}", args[0]));
        }
        fn announce_next(&mut self, args: &[&str]) {
            self.0.push(format!("also {}", args[0]));
        }
        fn print(&mut self, _: &str) -> Result<(), Failure> {
            // Stop before the model is needed: the plan of steps 1–2 is what is checked.
            Err("planned".into())
        }
        fn warn(&mut self, _: &str) {}
        fn log(&self, _: &str) {}
        fn note(&mut self, number: usize, text: &str) {
            self.0.push(format!("{number} note {text}"));
        }
        fn stop(&mut self) -> &'static AtomicBool {
            static NEVER: AtomicBool = AtomicBool::new(false);
            &NEVER
        }
    }

    #[test]
    fn a_found_subject_is_not_simulated_again() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("demo");
        let options = DemoOptions {
            out: out.clone(),
            images: 60,
            seed: 1,
            model: "shapes-ldm".into(),
            samples: 1,
            steps: 5,
            device: "cpu".into(),
            route: Route::Linear,
            command: String::new(),
            progress: false,
            live: LiveSettings::default(),
        };
        let mut plan = Plan(Vec::new());
        assert!(run(&options, &mut plan).is_err());
        assert_eq!(plan.0, ["1 simulate"]);
        std::fs::create_dir_all(out.join("nsd/truth")).unwrap();
        std::fs::write(out.join("nsd/truth/truth.json"), b"{}").unwrap();
        let mut plan = Plan(Vec::new());
        assert!(run(&options, &mut plan).is_err());
        assert_eq!(plan.0.len(), 2);
        assert!(plan.0[0].starts_with("1 note simulated subject found in"));
        assert_eq!(plan.0[1], "2 nsd");
    }
}
