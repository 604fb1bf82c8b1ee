//! `brainrecon b2c train` and `b2c ablation` as the command line asks for them: the settings
//! as text, checked here, and the lines the commands print.

use super::ablation::{ablation, Ablation, AblationOptions, COLUMNS};
use super::groups::Patch;
use super::train::{train, TrainOptions, TrainSummary};
use super::{Objective, Tune};
use crate::linear::{Method, ReconstructOptions};
use crate::score::suite::{Networks, Protocol};
use crate::{Result, RouteError};
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::{DType, StableDiffusion};
use std::path::{Path, PathBuf};

/// Settings shared by the training and the ablation.
#[derive(Debug, Clone)]
pub struct TrainingRequest {
    /// The prepared subject.
    pub subject: PathBuf,
    /// The diffusion model (folder, cached id or shapes-ldm).
    pub model: String,
    /// The training settings; `patch`, `objective` and `tune` are set from the fields below.
    pub options: TrainOptions,
    /// eps, v or x0.
    pub objective: String,
    /// unet, attn-kv or none.
    pub tune: String,
    /// Where the images' latents and contexts are computed once (default
    /// SUBJECT/features/full-size).
    pub features: Option<PathBuf>,
    /// Where the models run.
    pub device: brainrecon_core::Device,
    /// Draw progress bars.
    pub progress: bool,
}

impl TrainingRequest {
    fn options(&self, patch: Patch) -> Result<TrainOptions> {
        let options = TrainOptions {
            patch,
            objective: Objective::parse(&self.objective)?,
            tune: Tune::parse(&self.tune)?,
            ..self.options.clone()
        };
        options.check()?;
        Ok(options)
    }

    fn features(&self) -> PathBuf {
        self.features
            .clone()
            .unwrap_or_else(|| self.subject.join("features").join("full-size"))
    }
}

/// Trains B2C with ROI patches `patch` (roi or none) into `out`.
pub fn train_request(t: &TrainingRequest, patch: &str, out: &Path) -> Result<TrainSummary> {
    let options = t.options(Patch::parse(patch)?)?;
    let subject = PreparedSubject::open(&t.subject)?;
    let device = crate::decode::options::open_device(t.device)?;
    let sd = StableDiffusion::load(&t.model, DType::F32, &device)?;
    let bar = crate::progress::bar(options.steps as u64, "b2c train", t.progress);
    let summary = train(
        &subject,
        &sd,
        &t.model,
        &t.features(),
        out,
        &options,
        t.progress,
        &mut |step, _, loss| {
            bar.set_position(step as u64);
            bar.set_message(format!(
                "loss {:.4} (diff {:.4})",
                loss.total, loss.diffusion
            ));
        },
    )?;
    bar.finish_and_clear();
    Ok(summary)
}

impl TrainSummary {
    /// The line `b2c train` prints.
    pub fn text(&self) -> String {
        format!(
            "B2C trained: {} steps ({:.2} s/step), final loss {:.4} (diffusion {:.4}, CLIP {:.4}), {} encoder and {} tuned U-Net parameters → {}",
            self.steps,
            self.seconds_per_step,
            self.final_loss.total,
            self.final_loss.diffusion,
            self.final_loss.clip,
            self.encoder_parameters,
            self.tuned_unet_parameters,
            self.out.display()
        )
    }
}

/// The ablation's own settings.
#[derive(Debug, Clone)]
pub struct AblationRequest {
    /// Reconstructions per test image.
    pub samples: usize,
    /// DDIM steps.
    pub sample_steps: usize,
    /// Classifier-free guidance.
    pub guidance: f64,
    /// Only the first N test images.
    pub limit: Option<usize>,
    /// Rows of the figure.
    pub figure_rows: usize,
}

/// Runs the 2 × 2 ablation into `out`.
pub fn ablation_request(t: &TrainingRequest, a: &AblationRequest, out: &Path) -> Result<Ablation> {
    let train_options = t.options(Patch::Roi)?;
    crate::decode::options::check_sampling(a.sample_steps, a.guidance)?;
    if a.samples == 0 {
        return Err(RouteError::Usage("--samples must be at least 1".into()));
    }
    let subject = PreparedSubject::open(&t.subject)?;
    let device = crate::decode::options::open_device(t.device)?;
    let networks = Networks::load(None, None, Protocol::MindEye, &device)?;
    let options = AblationOptions {
        train: train_options,
        recon: ReconstructOptions {
            method: Method::B2c,
            samples: a.samples,
            steps: a.sample_steps,
            guidance: a.guidance,
            seed: t.options.seed,
            limit: a.limit,
            ..ReconstructOptions::default()
        },
        features: t.features(),
        networks: &networks,
        dtype: DType::F32,
        device,
        figure_rows: a.figure_rows,
    };
    ablation(&subject, &t.model, out, &options, t.progress)
}

impl Ablation {
    /// The table `b2c ablation` prints, then where the table and figure are.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut text = format!("{:<12}", "cell");
        for c in COLUMNS {
            let _ = write!(text, "{c:>15}");
        }
        text.push('\n');
        for cell in &self.cells {
            let _ = write!(text, "{:<12}", cell.name);
            for v in cell.values {
                let _ = match v {
                    Some(v) => write!(text, "{v:>15.4}"),
                    None => write!(text, "{:>15}", "—"),
                };
            }
            text.push('\n');
        }
        let _ = writeln!(
            text,
            "table: {}, figure: {}",
            self.markdown.display(),
            self.figure.display()
        );
        text
    }
}
