//! `demo --route eeg`: seen images decoded from EEG, offline. A simulated group in
//! THINGS-EEG2's shipped layout; the images embedded by shapes-blip; per subject a ridge
//! decoder and NICE's contrastive encoder fitted on its own training half, and NICE fitted on
//! the other subjects' (leave one subject out); all scored by zero-shot retrieval of the test
//! concepts, per subject and mean ± s.d.; the first subject's test images reconstructed from
//! NICE's decoded embeddings through shapes-ldm's img2img and scored.
//!
//! Every step is announced with the brainrecon command that does it and run by the library
//! function behind it; steps whose output is already in OUT/eeg are found done (fits resume).

use crate::demo::{path, DemoOptions, DemoSteps, Route};
use brainrecon_core::fs::write_json_atomic;
use brainrecon_core::DataError;
use brainrecon_datasets::things_eeg2::{Split, ThingsEeg2};
use brainrecon_formats::image::write_png;
use brainrecon_formats::video::frames::read_frame;
use brainrecon_routes::eeg::decoder::{
    embed_images, evaluate, fit, EegDecoder, EegEvalRequest, EegFitRequest, EegMethod,
    EmbedRequest, GroupSummary, Training,
};
use brainrecon_routes::eeg::nice_train::NiceTrainOptions;
use brainrecon_routes::eeg::reconstruct::{
    reconstruct, EegReconstructReport, EegReconstructRequest,
};
use brainrecon_routes::eeg::retrieval::{cosine_similarities, ranked};
use brainrecon_routes::eeg::ridge_decoder::RidgeDecoderOptions;
use brainrecon_routes::score::report::comparison_grid;
use brainrecon_routes::{Result, RouteError};
use brainrecon_simulate::eeg::{simulate_eeg, EegOptions};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Epochs of NICE's training in the demo.
pub const EPOCHS: usize = 120;
/// Epochs of NICE's training on the other subjects' pooled trials: with the demo's three
/// subjects a pool holds twice a subject's trials, so half the epochs take as many steps.
pub const LEAVE_OUT_EPOCHS: usize = EPOCHS / 2;
/// Test images pictured with what NICE retrieved for them.
pub const PICTURED: usize = 6;
/// Images retrieved per pictured test image.
const RETRIEVED: usize = 4;

/// The headline figures of `demo --route eeg` (OUT/demo-eeg.json).
#[derive(Debug, Serialize)]
pub struct EegDemoSummary {
    /// The output folder.
    pub out: PathBuf,
    /// Always [`Route::Eeg`].
    pub route: Route,
    /// Subjects simulated.
    pub subjects: usize,
    /// Images of the training set.
    pub training_images: usize,
    /// Images of the test set, unseen in training.
    pub test_images: usize,
    /// EEG channels of a trial.
    pub channels: usize,
    /// NICE's epochs on a subject's own data.
    pub epochs: usize,
    /// NICE's epochs on the other subjects' pooled data.
    pub leave_out_epochs: usize,
    /// Ridge trained on each subject's own data.
    pub ridge: GroupSummary,
    /// NICE trained on each subject's own data.
    pub nice: GroupSummary,
    /// NICE trained on the other subjects, scored on each.
    pub nice_leave_one_out: GroupSummary,
    /// Chance top-1: 1/n over the n test images.
    pub chance_top1: f64,
    /// Chance top-5: 5/n.
    pub chance_top5: f64,
    /// The slowest decoder's decoding time per test trial.
    pub ms_per_trial: f64,
    /// Every decoder's scores (`eeg eval`'s JSON).
    pub scores: PathBuf,
    /// Test images, each followed by the four NICE (sub-01) ranked highest.
    pub retrievals: PathBuf,
    /// sub-01's test images reconstructed from NICE's decoded embeddings.
    pub reconstruction: EegReconstructReport,
    /// Wall-clock seconds of the whole demo.
    pub seconds: f64,
}

impl EegDemoSummary {
    /// The summary `demo --route eeg` prints at the end: the group's scores against chance and
    /// where the figures are.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let pct = |v: f64| format!("{:.1}%", 100.0 * v);
        let mut text = String::new();
        let _ = writeln!(
            text,
            "\ndemo finished in {:.0} s: {} subjects, {} training and {} unseen test images, {} channels",
            self.seconds, self.subjects, self.training_images, self.test_images, self.channels
        );
        for (label, s) in [
            ("ridge, own data:       ", &self.ridge),
            ("NICE, own data:        ", &self.nice),
            ("NICE, other subjects:  ", &self.nice_leave_one_out),
        ] {
            let two = s
                .ways
                .iter()
                .find(|(k, _)| *k == 2)
                .map_or(String::new(), |(_, m)| {
                    format!(", 2-way {} ± {}", pct(m.mean), pct(m.sd))
                });
            let _ = writeln!(
                text,
                "  {label} top-1 {} ± {}, top-5 {} ± {}{two}",
                pct(s.top1.mean),
                pct(s.top1.sd),
                pct(s.top5.mean),
                pct(s.top5.sd)
            );
        }
        let _ = writeln!(
            text,
            "  chance: top-1 {}, top-5 {}, 2-way 50%; decoding {:.3} ms per trial",
            pct(self.chance_top1),
            pct(self.chance_top5),
            self.ms_per_trial
        );
        let _ = writeln!(text, "  scores:     {}", self.scores.display());
        let _ = writeln!(
            text,
            "  retrievals: {} (test image | NICE's four nearest)",
            self.retrievals.display()
        );
        let r = &self.reconstruction;
        for set in &r.sets {
            let _ = writeln!(text, "  reconstructed, {}", set.line());
        }
        let _ = writeln!(
            text,
            "  reconstructions: {} (stimulus | decoded z | samples | own embedding)",
            r.comparison.display()
        );
        text
    }
}

/// Runs the route under OUT/eeg; writes OUT/demo-eeg.json and OUT/retrievals-eeg.png.
pub fn run<S: DemoSteps>(options: &DemoOptions, steps: &mut S) -> Result<EegDemoSummary, S::Error> {
    let started = std::time::Instant::now();
    let work = options.out.join("eeg");
    std::fs::create_dir_all(&work).map_err(|e| RouteError::from(DataError::io(&work, e)))?;
    let data = work.join("things-eeg2");
    let embeddings = work.join("embeddings");
    let decoders = work.join("decoders");

    if data.join("truth").join("eeg.json").is_file() {
        steps.note(1, &format!("simulated EEG found in {}", data.display()));
    } else {
        let seed = options.seed.to_string();
        steps.announce(
            1,
            "simulate a group's EEG in THINGS-EEG2's layout",
            &[
                "simulate",
                "--kind",
                "eeg",
                "--seed",
                &seed,
                "--out",
                path(&data),
            ],
        );
        let mut sim = EegOptions::new(&data);
        sim.seed = options.seed;
        sim.progress = options.progress;
        simulate_eeg(&sim).map_err(RouteError::from)?;
    }
    if embeddings.join("embeddings.json").is_file() {
        steps.note(
            2,
            &format!("image embeddings found in {}", embeddings.display()),
        );
    } else {
        steps.announce(
            2,
            "embed the images with shapes-blip",
            &[
                "eeg",
                "embed",
                "--data",
                path(&data),
                "--out",
                path(&embeddings),
            ],
        );
        embed_images(&EmbedRequest {
            data: data.clone(),
            model: "shapes-blip".into(),
            out: embeddings.clone(),
            batch: 64,
            progress: options.progress,
        })?;
    }

    let subjects = ThingsEeg2::open(&data)
        .and_then(|set| set.subjects())
        .map_err(RouteError::from)?;
    let (epochs, leave_out_epochs) = (EPOCHS.to_string(), LEAVE_OUT_EPOCHS.to_string());
    let mut fitted = Vec::new();
    for (number, method, leave_out, title) in [
        (3, EegMethod::Ridge, false, "fit ridge on each subject"),
        (
            4,
            EegMethod::Nice,
            false,
            "train NICE's encoder on each subject",
        ),
        (
            5,
            EegMethod::Nice,
            true,
            "train NICE on the other subjects (leave one subject out)",
        ),
    ] {
        for subject in &subjects {
            let name = match leave_out {
                true => format!("nice-loso-{subject}"),
                false => format!("{}-{subject}", method.name()),
            };
            let out = decoders.join(name);
            let who = if leave_out {
                "--leave-out"
            } else {
                "--subject"
            };
            let mut args = vec![
                "eeg",
                "fit",
                "--data",
                path(&data),
                "--embeddings",
                path(&embeddings),
                who,
                subject,
                "--method",
                method.name(),
            ];
            if method == EegMethod::Nice {
                args.extend([
                    "--epochs",
                    if leave_out {
                        &leave_out_epochs
                    } else {
                        &epochs
                    },
                ]);
            }
            args.extend(["--out", path(&out)]);
            steps.announce(number, title, &args);
            let report = fit(
                &EegFitRequest {
                    data: data.clone(),
                    training: match leave_out {
                        true => Training::LeaveOut(subject.clone()),
                        false => Training::Subject(subject.clone()),
                    },
                    method,
                    embeddings: embeddings.clone(),
                    out: out.clone(),
                    nice: NiceTrainOptions {
                        epochs: if leave_out { LEAVE_OUT_EPOCHS } else { EPOCHS },
                        seed: options.seed,
                        ..NiceTrainOptions::default()
                    },
                    ridge: RidgeDecoderOptions::default(),
                    allow_seen_concepts: false,
                    progress: options.progress,
                },
                |_, _| {},
            )?;
            steps.print(&format!("{}\n", report.text()))?;
            fitted.push(out);
        }
    }

    let scores = work.join("scores.json");
    let mut args = vec!["eeg", "eval", "--data", path(&data)];
    for d in &fitted {
        args.extend(["--decoder", path(d)]);
    }
    args.extend(["--out", path(&scores)]);
    steps.announce(6, "score every decoder by zero-shot retrieval", &args);
    let report = evaluate(&EegEvalRequest {
        data: data.clone(),
        decoders: fitted.clone(),
        ways: None,
        draws: 100,
        seed: 0,
        out: Some(scores.clone()),
        allow_seen_concepts: false,
    })?;
    steps.print(&format!("{}\n", report.text()))?;

    let group = |method, setting: &str| {
        report.summary(method, setting).cloned().ok_or_else(|| {
            RouteError::Usage(format!("no {} {setting} decoder was scored", method.name()))
        })
    };
    let nice_first = decoders.join(format!("nice-{}", subjects[0]));
    let retrievals = options.out.join(Route::Eeg.outputs()[2]);
    picture(&data, &nice_first, &subjects[0], &retrievals)?;

    let recons = work.join(format!("recons-{}", subjects[0]));
    let (samples, sampler_steps) = (options.samples.to_string(), options.steps.to_string());
    steps.announce(
        7,
        "reconstruct the first subject's test images from NICE's decoded embeddings",
        &[
            "eeg",
            "reconstruct",
            "--data",
            path(&data),
            "--decoder",
            path(&nice_first),
            "--embeddings",
            path(&embeddings),
            "--model",
            &options.model,
            "--samples",
            &samples,
            "--steps",
            &sampler_steps,
            "--seed",
            &options.seed.to_string(),
            "--ceiling",
            "--out",
            path(&recons),
        ],
    );
    let reconstruction = reconstruct(&EegReconstructRequest {
        model: options.model.clone(),
        samples: options.samples,
        steps: options.steps,
        seed: options.seed,
        ceiling: true,
        progress: options.progress,
        ..EegReconstructRequest::new(&data, &nice_first, &embeddings, &recons)
    })?;
    steps.print(&format!("{}\n", reconstruction.text()))?;
    let set = ThingsEeg2::open(&data).map_err(RouteError::from)?;
    let metadata = set.image_metadata().map_err(RouteError::from)?;
    let first = set
        .read_preprocessed(&subjects[0], Split::Test)
        .map_err(RouteError::from)?;
    let summary = EegDemoSummary {
        out: options.out.clone(),
        route: Route::Eeg,
        subjects: subjects.len(),
        training_images: metadata.training.len(),
        test_images: metadata.test.len(),
        channels: first.channels(),
        epochs: EPOCHS,
        leave_out_epochs: LEAVE_OUT_EPOCHS,
        ridge: group(EegMethod::Ridge, "within")?,
        nice: group(EegMethod::Nice, "within")?,
        nice_leave_one_out: group(EegMethod::Nice, "leave-one-out")?,
        chance_top1: report.chance_top1,
        chance_top5: report.chance_top5,
        ms_per_trial: report
            .rows
            .iter()
            .map(|r| r.ms_per_trial)
            .fold(0.0, f64::max),
        scores,
        retrievals,
        reconstruction,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_json_atomic(&options.out.join(Route::Eeg.outputs()[1]), &summary)
        .map_err(RouteError::from)?;
    Ok(summary)
}

/// The first [`PICTURED`] test images, each followed by the [`RETRIEVED`] test images that
/// `decoder` ranks highest for the subject's EEG of it.
fn picture(data: &Path, decoder: &Path, subject: &str, out: &Path) -> Result<()> {
    let set = ThingsEeg2::open(data)?;
    let metadata = set.image_metadata()?;
    let paths = set.image_paths(&metadata, Split::Test)?;
    let decoder = EegDecoder::open(decoder)?;
    let test = set.read_preprocessed(subject, Split::Test)?;
    let d = decoder.meta.embeddings.width;
    let predicted = decoder.decode(&test)?;
    let n = paths.len();
    let similarities = cosine_similarities(&predicted, &decoder.candidates, d);
    let mut rows = Vec::new();
    for i in 0..PICTURED.min(n) {
        let row = &similarities[i * n..(i + 1) * n];
        let order = ranked(row, RETRIEVED);
        let mut images = vec![read_frame(&paths[i])?];
        for &j in &order {
            images.push(read_frame(&paths[j])?);
        }
        rows.push(images);
    }
    write_png(out, &comparison_grid(&rows, 64))?;
    Ok(())
}
