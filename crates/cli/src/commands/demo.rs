use brainrecon_data::atomic::{read_json, write_json_atomic};
use brainrecon_data::image::{read_png, write_png, RgbImage};
use brainrecon_data::prepared::PreparedSubject;
use brainrecon_routes::caption::embedded::{SHAPES_BLIP, SHAPES_BLIP_MODEL};
use brainrecon_routes::linear::Manifest;
use brainrecon_simulate::classify::{scene_accuracy, SceneAccuracy};
use brainrecon_simulate::scene::Scene;
use brainrecon_simulate::Truth;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Run a whole route (linear, or caption) offline on a synthetic subject with the built-in models.
///
/// Steps: simulate a subject in NSD's layout; `nsd prepare` it; compute VAE latents (z) and
/// text embeddings (c) of its stimuli with shapes-ldm; fit ridge decoders of z from early
/// visual cortex and of c from ventral cortex; reconstruct the test images (decoded z →
/// image → re-encoded, noised to 0.8 and denoised with the decoded c); evaluate and write the
/// HTML report. It ends with the headline figures: how often the reconstructions show the
/// scene's colour and shape (read by the same rule as the model's quality tests; chance 1/6
/// and 1/4) and two-way identification.
///
/// `--route caption` runs the caption route on the same subject instead: BLIP image tokens of
/// the stimuli with the built-in shapes-blip, a ridge decoder of them from the `streams` ROIs,
/// captions written from the decoded tokens (OUT/captions), and img2img from the decoded z
/// conditioned on each caption (OUT/recons-caption), scored the same way.
///
/// `--route experiment` runs the linear route from a lab's own experiment instead: `simulate
/// --kind events` writes raw BIDS runs with events and fMRIPrep's derivatives (OUT/events),
/// `glm` fits GLMsingle's models (OUT/glm), `glm prepare` makes the subject (OUT/sub-01) from
/// TYPED's betas and the stimulus files, and the same features, decoders, reconstructions and
/// report follow (OUT/recons-experiment).
///
/// `--route realtime` reconstructs while the scanner runs, on the experiment route's subject
/// and decoders: `realtime simulate` writes the subject's next session as a scanner's
/// real-time export fills its folder (Siemens mosaics, one every --tr seconds, with head
/// motion; OUT/realtime-sim), while `realtime run` follows the folder, realigns, decodes and
/// draws each volume (OUT/realtime-session; the live page at http://127.0.0.1:8080/). The
/// shown images' reconstructions are scored as the other routes' are, and the latency from a
/// file to its image is reported. The session is made again on every run.
///
/// Each step is skipped or resumed when its output is already in OUT, so an interrupted demo
/// continues where it stopped. Writes OUT/demo.json (OUT/demo-caption.json) and OUT/pairs.png
/// (OUT/pairs-caption.png): stimulus | decoded z | reconstruction.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon demo --out demo-out\n  brainrecon demo --out demo-out --route caption\n  brainrecon demo --out demo-out --route experiment\n  brainrecon demo --out demo-out --route realtime --tr 1.0\n  brainrecon demo --out demo-out --images 1000 --samples 3 --json"
)]
pub struct Args {
    /// Output directory (created; an earlier demo there is resumed)
    #[arg(long, default_value = "demo-out")]
    out: PathBuf,
    /// Distinct images shown to the simulated subject (a tenth are test images)
    #[arg(long, default_value_t = 600)]
    images: usize,
    /// Seed of the simulated subject and of the sampling noise
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The diffusion model (folder, cached id, or shapes-ldm)
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// Reconstructions per test image
    #[arg(long, default_value_t = 2)]
    samples: usize,
    /// DDIM steps of the full schedule (0.8 of them are run)
    #[arg(long, default_value_t = 25)]
    steps: usize,
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    device: String,
    /// linear (decoded z and c), caption (decoded z and a caption of decoded BLIP tokens),
    /// experiment (the linear route on an own event-related experiment: fMRIPrep's
    /// derivatives → glm → glm prepare), or realtime (the experiment's subject reconstructed
    /// volume by volume while a simulated scanner exports its next session)
    #[arg(long, value_enum, default_value = "linear")]
    route: Route,
    /// --route realtime: the session's repetition time in seconds
    #[arg(long, default_value_t = 1.6)]
    tr: f64,
    /// --route realtime: real (the session is written one volume per TR while it is
    /// reconstructed) or none (written at once and every volume drawn: a rehearsal)
    #[arg(long, value_enum, default_value = "real")]
    pace: super::realtime_simulate::Pace,
    /// --route realtime: show only the first N test images in the session
    #[arg(long)]
    session_images: Option<usize>,
    /// --route realtime: seconds of rest before the session's first image (a baseline block,
    /// in which the running statistics settle)
    #[arg(long, default_value_t = 30.0)]
    rest_seconds: f64,
    /// Print the headline figures as JSON (the steps' own output then goes to stderr)
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Linear,
    Caption,
    Experiment,
    Realtime,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Linear => "linear",
            Route::Caption => "caption",
            Route::Experiment => "experiment",
            Route::Realtime => "realtime",
        }
    }

    /// `reconstruct --method`.
    fn method(self) -> &'static str {
        match self {
            Route::Caption => "caption",
            _ => "linear",
        }
    }

    /// Output names: reconstructions, headline file, pairs image.
    fn outputs(self) -> [&'static str; 3] {
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
        }
    }

    /// (feature kind, model) of the stimuli that the route decodes.
    fn features(self, diffusion: &str) -> [(&'static str, &str); 2] {
        match self {
            Route::Linear | Route::Experiment | Route::Realtime => {
                [("vae", diffusion), ("clip-text", diffusion)]
            }
            Route::Caption => [("vae", diffusion), ("blip-vision", SHAPES_BLIP)],
        }
    }
}

/// The fingerprint of the built-in shapes-blip, whose tokens the blip decoder is fit on (to
/// spot a stale decoder).
fn shapes_blip_fingerprint() -> anyhow::Result<String> {
    let root = SHAPES_BLIP_MODEL.dir()?;
    Ok(brainrecon_diffusion::weights::ModelDir { root }.fingerprint()?)
}

#[derive(Debug, Serialize)]
pub struct DemoSummary {
    pub out: PathBuf,
    pub route: Route,
    pub n_test: usize,
    /// Reconstructions (mean over samples).
    pub reconstruction: SceneAccuracy,
    /// The VAE decode of the decoded z alone.
    pub decoded_z: SceneAccuracy,
    pub chance: SceneAccuracy,
    /// Two-way identification of the reconstructions on pixels, and of the decoded latents.
    pub two_way_pixels: Option<f64>,
    pub two_way_latent_z: Option<f64>,
    pub two_way_latent_c: Option<f64>,
    pub report: PathBuf,
    pub metrics: PathBuf,
    pub pairs: PathBuf,
    /// --route realtime: the same figures for the same volumes analysed after the session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<Figures>,
    /// --route realtime: the live session's record (OUT/realtime-session/session.json).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime: Option<serde_json::Value>,
    pub seconds: f64,
}

/// How well a reconstruction folder's images and decoded features identify their stimuli.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub reconstruction: SceneAccuracy,
    pub decoded_z: SceneAccuracy,
    pub two_way_pixels: Option<f64>,
    pub two_way_latent_z: Option<f64>,
    pub two_way_latent_c: Option<f64>,
}

/// A scored reconstruction folder: its figures, and its images for the pairs picture.
struct Scored {
    figures: Figures,
    ids: Vec<usize>,
    decoded_z_images: Vec<RgbImage>,
    sample_sets: Vec<Vec<RgbImage>>,
}

/// Reads `recons` (evaluated: `eval/metrics.json`) and scores it against the shown scenes.
fn score(route: Route, root: &Path, subject_dir: &Path, recons: &Path) -> anyhow::Result<Scored> {
    let manifest = Manifest::load(recons)?;
    let ids = manifest.ids.clone();
    let scenes = shown_scenes(route, root, subject_dir, &ids)?;
    let read_set = |dir: &Path| -> anyhow::Result<Vec<RgbImage>> {
        ids.iter()
            .map(|id| Ok(read_png(&dir.join(format!("{id}.png")))?))
            .collect()
    };
    let decoded_z_images = read_set(&Manifest::decoded_z_dir(recons))?;
    let sample_sets = (1..=manifest.options.samples)
        .map(|k| read_set(&Manifest::sample_dir(recons, k)))
        .collect::<anyhow::Result<Vec<_>>>()?;
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

fn mean_accuracy(parts: &[SceneAccuracy]) -> SceneAccuracy {
    let n = parts.len().max(1) as f64;
    SceneAccuracy {
        colour: parts.iter().map(|a| a.colour).sum::<f64>() / n,
        shape: parts.iter().map(|a| a.shape).sum::<f64>() / n,
        both: parts.iter().map(|a| a.both).sum::<f64>() / n,
    }
}

/// Columns of (stimulus | decoded z | reconstruction) triples, `per_row` triples a row, all
/// at the stimulus size, on a white ground.
fn pairs_image(triples: &[[RgbImage; 3]], per_row: usize) -> RgbImage {
    let size = triples[0][0].height;
    let (gap, wide_gap) = (2, 8);
    let triple_w = 3 * size + 2 * gap;
    let rows = triples.len().div_ceil(per_row);
    let height = rows * (size + wide_gap) + wide_gap;
    let width = per_row * (triple_w + wide_gap) + wide_gap;
    let mut pixels = vec![255u8; height * width * 3];
    for (k, triple) in triples.iter().enumerate() {
        let top = wide_gap + (k / per_row) * (size + wide_gap);
        let left = wide_gap + (k % per_row) * (triple_w + wide_gap);
        for (j, image) in triple.iter().enumerate() {
            let image = image.resize(size, size);
            let x0 = left + j * (size + gap);
            for y in 0..size {
                let at = ((top + y) * width + x0) * 3;
                pixels[at..at + size * 3]
                    .copy_from_slice(&image.pixels[y * size * 3..(y + 1) * size * 3]);
            }
        }
    }
    RgbImage::new(height, width, pixels)
}

/// Runs one step as if typed on the command line.
fn step(number: usize, title: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("\n[{number}/6] {title}\n  brainrecon {}", args.join(" "));
    crate::run_command_line(args)
}

/// Steps 1–2 of the linear and caption routes: a subject simulated in NSD's layout, prepared.
fn nsd_subject(args: &Args, root: &Path, subject_dir: &Path) -> anyhow::Result<()> {
    if root.join("truth").join("truth.json").is_file() {
        eprintln!("\n[1/6] simulated subject found in {}", root.display());
    } else {
        let (images, seed) = (args.images.to_string(), args.seed.to_string());
        step(
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
        )?;
    }
    if subject_dir.join("subject.json").is_file() {
        eprintln!(
            "\n[2/6] prepared subject found in {}",
            subject_dir.display()
        );
        return Ok(());
    }
    step(
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
            path(subject_dir),
        ],
    )
}

/// Runs of the event-related experiment for `images` images (one in six a test image shown
/// three times, the others twice): the fewest runs from 7 whose trials divide evenly.
fn experiment_runs(images: usize) -> anyhow::Result<usize> {
    let test = (images / 6).max(2);
    let trials = 2 * images.saturating_sub(test) + 3 * test;
    (7..=24)
        .find(|&r| trials.is_multiple_of(r))
        .ok_or_else(|| {
            super::usage(format!(
                "--images {images}: its {trials} trials do not split evenly into 7 to 24 runs; choose another count"
            ))
        })
}

/// Steps 1–2 of `--route experiment`: an event-related experiment simulated as a lab records
/// it and fMRIPrep preprocesses it, its single-trial betas (GLMsingle's method) and the
/// prepared subject made from them.
fn experiment_subject(args: &Args, root: &Path, subject_dir: &Path) -> anyhow::Result<()> {
    if root.join("truth").join("events_truth.json").is_file() {
        eprintln!("\n[1/6] simulated experiment found in {}", root.display());
    } else {
        let runs = experiment_runs(args.images)?.to_string();
        let (images, seed) = (args.images.to_string(), args.seed.to_string());
        step(
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
                &runs,
                "--seed",
                &seed,
            ],
        )?;
    }
    if subject_dir.join("subject.json").is_file() {
        eprintln!(
            "\n[2/6] prepared subject found in {}",
            subject_dir.display()
        );
        return Ok(());
    }
    let fmriprep = root.join("derivatives").join("fmriprep");
    let glm = subject_dir.with_file_name("glm");
    step(
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
    )?;
    let captions = root.join("stimuli").join("captions.json");
    step(
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
            path(subject_dir),
        ],
    )
}

/// The scene each reconstructed stimulus id shows.
fn shown_scenes(
    route: Route,
    root: &Path,
    subject_dir: &Path,
    ids: &[usize],
) -> anyhow::Result<Vec<Scene>> {
    if !matches!(route, Route::Experiment | Route::Realtime) {
        let truth: Truth = read_json(&root.join("truth").join("truth.json"))?;
        return Ok(ids.iter().map(|&id| truth.scenes[id]).collect());
    }
    // Stimulus ids are conditions; their files are named scene-<scene id>.png.
    let names_path = subject_dir.join("stimuli").join("names.json");
    let names: std::collections::BTreeMap<String, String> = read_json(&names_path)?;
    ids.iter()
        .map(|id| {
            names
                .get(&id.to_string())
                .and_then(|n| n.strip_prefix("scene-")?.strip_suffix(".png")?.parse().ok())
                .map(Scene::from_id)
                .ok_or_else(|| {
                    anyhow::anyhow!("{}: no scene file for stimulus {id}", names_path.display())
                })
        })
        .collect()
}

pub(super) fn path(p: &Path) -> &str {
    p.to_str().expect("demo paths are UTF-8")
}

/// Sends what the steps print to stdout to stderr while `--json` is on, so stdout holds only
/// the JSON.
struct StdoutToStderr {
    #[cfg(unix)]
    saved: Option<i32>,
}

impl StdoutToStderr {
    fn new(active: bool) -> Self {
        #[cfg(unix)]
        {
            use std::io::Write;
            let _ = std::io::stdout().flush();
            // SAFETY: dup/dup2 on the process's own standard descriptors.
            let saved = active
                .then(|| unsafe {
                    let saved = libc::dup(1);
                    (saved >= 0 && libc::dup2(2, 1) >= 0).then_some(saved)
                })
                .flatten();
            StdoutToStderr { saved }
        }
        #[cfg(not(unix))]
        {
            let _ = active;
            StdoutToStderr {}
        }
    }
}

impl Drop for StdoutToStderr {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(saved) = self.saved {
            use std::io::Write;
            let _ = std::io::stdout().flush();
            // SAFETY: restores the descriptor saved in `new`.
            unsafe {
                libc::dup2(saved, 1);
                libc::close(saved);
            }
        }
    }
}

/// Removes an earlier, stale output folder of the demo.
fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::remove_dir_all(dir).map_err(|e| brainrecon_data::DataError::io(dir, e).into())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let out = &args.out;
    std::fs::create_dir_all(out).map_err(|e| brainrecon_data::DataError::io(out, e))?;
    let (root, subject_dir) = match args.route {
        Route::Experiment | Route::Realtime => (out.join("events"), out.join("sub-01")),
        _ => (out.join("nsd"), out.join("subj01")),
    };
    let [recons_name, summary_name, pairs_name] = args.route.outputs();
    let (decoders, recons) = (out.join("decoders"), out.join(recons_name));
    let (seed, samples, steps) = (
        args.seed.to_string(),
        args.samples.to_string(),
        args.steps.to_string(),
    );
    let device = args.device.as_str();
    {
        let _quiet = StdoutToStderr::new(args.json);
        match args.route {
            Route::Experiment | Route::Realtime => experiment_subject(&args, &root, &subject_dir)?,
            _ => nsd_subject(&args, &root, &subject_dir)?,
        }
        for (kind, model) in args.route.features(&args.model) {
            step(
                3,
                &format!("features of the stimuli: {kind}"),
                &[
                    "features",
                    "--subject",
                    path(&subject_dir),
                    "--model",
                    model,
                    "--kind",
                    kind,
                    "--device",
                    device,
                ],
            )?;
        }
        // Decoders and reconstructions made with other files under the model's name (an
        // earlier version of shapes-ldm or shapes-blip) are made again.
        let fingerprint =
            brainrecon_diffusion::weights::ModelDir::resolve(&args.model)?.fingerprint()?;
        let mut refit = false;
        let targets = match args.route {
            Route::Linear | Route::Experiment | Route::Realtime => ["z", "c"],
            Route::Caption => ["z", "blip"],
        };
        for target in targets {
            let fingerprint = match target {
                "blip" => shapes_blip_fingerprint()?,
                _ => fingerprint.clone(),
            };
            let dir = decoders.join(target);
            let model_json = dir.join("model.json");
            if model_json.is_file() {
                let fit: serde_json::Value = read_json(&model_json)?;
                let fit_on = fit["metadata"]["target_model_fingerprint"].as_str();
                if fit_on == Some(fingerprint.as_str()) {
                    eprintln!("\n[4/6] decoder {target} found in {}", dir.display());
                    continue;
                }
                eprintln!(
                    "\n[4/6] decoder {target} in {} was fit on features of other model files: \
                     fitting it again",
                    dir.display()
                );
                remove_dir(&dir)?;
            }
            refit = true;
            step(
                4,
                &format!("fit the ridge decoder of {target}"),
                &[
                    "fit",
                    "--subject",
                    path(&subject_dir),
                    "--target",
                    target,
                    "--out",
                    path(&dir),
                ],
            )?;
        }
        if recons.join(Manifest::FILE).is_file()
            && (refit || Manifest::load(&recons)?.model_fingerprint != fingerprint)
        {
            eprintln!(
                "\n[5/6] the reconstructions in {} were made with other decoders or model \
                 files: making them again",
                recons.display()
            );
            remove_dir(&recons)?;
        }
        let captions = out.join("captions");
        if args.route == Route::Caption {
            step(
                5,
                "caption the test images from their decoded BLIP tokens (shapes-blip)",
                &[
                    "caption",
                    "--subject",
                    path(&subject_dir),
                    "--decoders",
                    path(&decoders),
                    "--out",
                    path(&captions),
                    "--device",
                    device,
                ],
            )?;
        }
        if args.route == Route::Realtime {
            super::demo_realtime::session(
                &super::demo_realtime::Settings {
                    tr: args.tr,
                    pace: args.pace,
                    images: args.session_images,
                    rest_seconds: args.rest_seconds,
                    seed: args.seed,
                    model: &args.model,
                    device,
                },
                out,
                &root,
                &subject_dir,
                &decoders,
            )?;
        } else {
            let mut reconstruct = vec![
                "reconstruct",
                "--method",
                args.route.method(),
                "--subject",
                path(&subject_dir),
                "--decoders",
                path(&decoders),
                "--model",
                &args.model,
                "--out",
                path(&recons),
                "--samples",
                &samples,
                "--steps",
                &steps,
                "--seed",
                &seed,
                "--device",
                device,
            ];
            if args.route == Route::Caption {
                reconstruct.extend(["--captions", path(&captions)]);
            }
            step(
                5,
                &format!("reconstruct the test images ({} route)", args.route.name()),
                &reconstruct,
            )?;
        }
        step(
            6,
            "evaluate and write the report",
            &[
                "eval",
                "--stimuli",
                path(&subject_dir),
                "--recons",
                path(&recons),
            ],
        )?;
        if args.route == Route::Realtime {
            let offline = out.join("realtime-session/recons-offline");
            step(
                6,
                "evaluate the same volumes analysed after the session",
                &[
                    "eval",
                    "--stimuli",
                    path(&subject_dir),
                    "--recons",
                    path(&offline),
                ],
            )?;
        }
    }

    // Headline figures.
    let scored = score(args.route, &root, &subject_dir, &recons)?;
    let offline = match args.route {
        Route::Realtime => Some(score(
            args.route,
            &root,
            &subject_dir,
            &out.join("realtime-session/recons-offline"),
        )?),
        _ => None,
    };
    let (ids, decoded_z, sample_sets) =
        (&scored.ids, &scored.decoded_z_images, &scored.sample_sets);
    let subject = PreparedSubject::open(&subject_dir)?;
    let stimuli = subject.images()?;
    let triples: Vec<[RgbImage; 3]> = ids
        .iter()
        .zip(decoded_z.iter().zip(&sample_sets[0]))
        .take(12)
        .map(|(&id, (z, sample))| -> anyhow::Result<[RgbImage; 3]> {
            let stimulus = stimuli.get(id).ok_or_else(|| {
                anyhow::anyhow!("{}: test image {id} missing", subject_dir.display())
            })?;
            Ok([stimulus, z.clone(), sample.clone()])
        })
        .collect::<anyhow::Result<_>>()?;
    let pairs = out.join(pairs_name);
    write_png(&pairs, &pairs_image(&triples, 4))?;

    let summary = DemoSummary {
        out: out.clone(),
        route: args.route,
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
        realtime: (args.route == Route::Realtime)
            .then(|| read_json(&out.join("realtime-session").join("session.json")))
            .transpose()?,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_json_atomic(&out.join(summary_name), &summary)?;
    if args.json {
        return super::print_json(&summary);
    }
    let pct = |v: f64| format!("{:.0}%", 100.0 * v);
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    outln!(
        "\ndemo finished in {:.0} s: {} test images",
        summary.seconds,
        summary.n_test
    )?;
    outln!(
        "  reconstructions: colour right {} (chance {}), shape right {} (chance {}), both {}",
        pct(summary.reconstruction.colour),
        pct(summary.chance.colour),
        pct(summary.reconstruction.shape),
        pct(summary.chance.shape),
        pct(summary.reconstruction.both)
    )?;
    outln!(
        "  decoded z alone: colour right {}, shape right {}",
        pct(summary.decoded_z.colour),
        pct(summary.decoded_z.shape)
    )?;
    outln!(
        "  two-way identification: reconstructions (pixels) {}, decoded z {}, decoded c {} (chance 0.5)",
        opt(summary.two_way_pixels),
        opt(summary.two_way_latent_z),
        opt(summary.two_way_latent_c)
    )?;
    if let Some(offline) = &summary.offline {
        outln!(
            "  the same volumes analysed after the session: colour right {}, shape right {}; two-way: pixels {}, decoded z {}, decoded c {}",
            pct(offline.reconstruction.colour),
            pct(offline.reconstruction.shape),
            opt(offline.two_way_pixels),
            opt(offline.two_way_latent_z),
            opt(offline.two_way_latent_c)
        )?;
    }
    if let Some(session) = &summary.realtime {
        let ms = |key: &str| {
            session[key]
                .as_f64()
                .map_or("n/a".to_string(), |v| format!("{v:.0} ms"))
        };
        outln!(
            "  live session: {} volumes at TR {} s, {} drawn, {} decoded but not drawn, {} refused; image latency median {}, p95 {}",
            session["volumes"],
            args.tr,
            session["drawn"],
            session["not_drawn"],
            session["refused"].as_array().map_or(0, Vec::len),
            ms("image_latency_ms_median"),
            ms("image_latency_ms_p95")
        )?;
    }
    outln!("  report: {}", summary.report.display())?;
    outln!(
        "  pairs:  {} (stimulus | decoded z | reconstruction)",
        summary.pairs.display()
    )?;
    Ok(())
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
}
