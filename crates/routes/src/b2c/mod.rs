//! Brain-to-Context (B2C; Ishizaki & Kobayashi): a Transformer turns the betas into the
//! diffusion model's cross-attention context, and the U-Net is fine-tuned to use it.
//!
//! [`train`] trains the encoder with the U-Net, [`load`] puts a trained folder into a loaded
//! model for reconstruction (`brainrecon reconstruct --method b2c`), and [`ablation`] runs the
//! paper's 2 × 2 (ROI patches × CLIP loss).

pub mod ablation;
pub mod chart;
pub mod groups;
pub mod metrics;
pub mod reconstruct;
pub mod request;
pub mod tape;
pub mod train;

pub use crate::decode::options::Tune;
use crate::error::{Result, RouteError};
use brainrecon_brain::b2c::BrainToContextEncoder;
use brainrecon_core::fs::read_json;
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::{DType, StableDiffusion, Tensor};
use brainrecon_diffusion::scheduler::PredictionType;
use brainrecon_diffusion::unet::UNet2DConditionModel;
use brainrecon_nn::weights::{Overlay, Weights};
use groups::VoxelLayout;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use train::TrainOptions;

/// The `format` of a B2C folder's [`B2cRecord`].
pub const B2C_FORMAT: &str = "brainrecon-b2c";
/// The record of a finished training, [`B2cRecord`] (written last: its presence means done).
pub const RECORD_FILE: &str = "training.json";
/// Per-step losses ([`train::StepLoss`]), a JSON list.
pub const LOSSES_FILE: &str = "losses.json";
/// The encoder's folder: `config.json` and `model.safetensors`.
pub const ENCODER_DIR: &str = "encoder";
/// The tuned U-Net tensors only, with diffusers' names.
pub const TUNED_UNET_FILE: &str = "unet/tuned.safetensors";

/// What the U-Net learns to predict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// ε-prediction: the noise added (SD 1.x's).
    Eps,
    /// v-prediction (Salimans & Ho 2022).
    V,
    /// The clean latent x₀ itself.
    X0,
}

impl Objective {
    /// Parses `--objective`: `eps`/`epsilon`, `v`/`v-prediction` or `x0`/`sample`.
    ///
    /// # Errors
    /// [`RouteError::Usage`] for anything else.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "eps" | "epsilon" => Ok(Objective::Eps),
            "v" | "v-prediction" => Ok(Objective::V),
            "x0" | "sample" => Ok(Objective::X0),
            other => Err(RouteError::Usage(format!(
                "--objective: expected eps, v or x0, found '{other}'"
            ))),
        }
    }

    /// The scheduler's prediction type for this objective.
    pub fn prediction_type(self) -> PredictionType {
        match self {
            Objective::Eps => PredictionType::Epsilon,
            Objective::V => PredictionType::VPrediction,
            Objective::X0 => PredictionType::Sample,
        }
    }
}

/// `training.json` of a B2C folder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct B2cRecord {
    /// Always [`B2C_FORMAT`].
    pub format: String,
    /// The subject trained on.
    pub subject: String,
    /// Its prepared folder.
    pub subject_dir: PathBuf,
    /// The atlas whose voxels are the input ([`groups::INPUT_ATLAS`]).
    pub input_atlas: String,
    /// The voxel groups and the column order of the input.
    pub layout: VoxelLayout,
    /// The Stable Diffusion model as named at training.
    pub model: String,
    /// [`brainrecon_diffusion::weights::ModelDir::fingerprint`] of its files, checked at load.
    pub model_fingerprint: String,
    /// The training settings.
    pub options: TrainOptions,
    /// Single-trial training rows.
    pub n_train_trials: usize,
    /// Trainable values of the encoder.
    pub encoder_parameters: usize,
    /// Trainable values of the U-Net (0 with `--tune none`).
    pub tuned_unet_parameters: usize,
    /// Mean wall time of a training step in this run (seconds).
    pub seconds_per_step: f64,
    /// The features folder with the images' VAE latents and CLIP text contexts.
    pub features: PathBuf,
    /// (software, version) pairs.
    pub versions: Vec<(String, String)>,
}

impl B2cRecord {
    /// Reads `dir/training.json`.
    ///
    /// # Errors
    /// [`RouteError::Missing`] when absent (not a finished training); a `format` other than
    /// [`B2C_FORMAT`].
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(RECORD_FILE);
        if !path.exists() {
            return Err(RouteError::Missing {
                path,
                what: "a trained B2C folder (made by `brainrecon b2c train`)".into(),
            });
        }
        let record: B2cRecord = read_json(&path)?;
        if record.format != B2C_FORMAT {
            return Err(RouteError::mismatch(
                &path,
                "format",
                B2C_FORMAT,
                &record.format,
            ));
        }
        Ok(record)
    }
}

/// A trained B2C folder ready to reconstruct: its record and encoder.
pub struct B2c {
    /// The B2C folder.
    pub dir: PathBuf,
    /// Its `training.json`.
    pub record: B2cRecord,
    /// The trained encoder: betas `[n, n_voxels]` → context `[n, T, D]`.
    pub encoder: BrainToContextEncoder,
}

/// Reads the B2C folder `dir`, checks it against `subject` and `sd`, and puts its tuned U-Net
/// tensors and prediction type into `sd`.
pub fn load(dir: &Path, subject: &PreparedSubject, sd: &mut StableDiffusion) -> Result<B2c> {
    let record = B2cRecord::load(dir)?;
    let record_path = dir.join(RECORD_FILE);
    let n_voxels = subject
        .meta
        .atlases
        .iter()
        .find(|a| a.name == record.input_atlas)
        .map(|a| a.n_voxels);
    if record.subject != subject.meta.subject || n_voxels != Some(record.layout.columns.len()) {
        return Err(RouteError::mismatch(
            &record_path,
            "subject",
            format!(
                "a B2C training of {} ({} voxels of {})",
                subject.meta.subject,
                n_voxels.map_or("no".to_string(), |n| n.to_string()),
                record.input_atlas
            ),
            format!(
                "{} with {} voxels",
                record.subject,
                record.layout.columns.len()
            ),
        ));
    }
    let fingerprint = sd.root.fingerprint()?;
    if record.model_fingerprint != fingerprint {
        return Err(RouteError::mismatch(
            &record_path,
            "model_fingerprint",
            format!("{fingerprint} (the files of {})", sd.root.root.display()),
            format!(
                "{} (trained with '{}')",
                record.model_fingerprint, record.model
            ),
        ));
    }
    let encoder = BrainToContextEncoder::from_dir(&dir.join(ENCODER_DIR), &sd.device)?;
    let expected = (
        sd.text_encoder.config.max_position_embeddings,
        sd.unet.config.cross_attention_dim,
    );
    if (encoder.config.num_tokens(), encoder.config.hidden_size) != expected {
        return Err(RouteError::mismatch(
            &dir.join(ENCODER_DIR)
                .join(brainrecon_brain::b2c::CONFIG_FILE),
            "groups/hidden_size",
            format!(
                "{} tokens of width {}, the context of {}",
                expected.0,
                expected.1,
                sd.root.root.display()
            ),
            format!(
                "{} tokens of width {}",
                encoder.config.num_tokens(),
                encoder.config.hidden_size
            ),
        ));
    }
    if record.options.tune != Tune::None {
        let tuned = Weights::from_files(&[dir.join(TUNED_UNET_FILE)], DType::F32, &sd.device)?;
        let base = sd.root.weights("unet", sd.dtype, &sd.device)?;
        let replaced = tuned
            .names()
            .into_iter()
            .map(|n| Ok((n.clone(), tuned.get_unchecked(&n)?.to_dtype(sd.dtype)?)))
            .collect::<Result<_>>()?;
        let overlay = Overlay::new(&base, replaced)?;
        sd.unet = UNet2DConditionModel::new(overlay.var_builder(), &sd.unet.config)?;
    }
    sd.scheduler_config.prediction_type = Some(record.options.objective.prediction_type());
    Ok(B2c {
        dir: dir.to_path_buf(),
        record,
        encoder,
    })
}

impl B2c {
    /// A fingerprint of the trained files (encoder weights and tuned U-Net tensors), so a
    /// resumed reconstruction refuses a retrained folder.
    pub fn fingerprint(&self) -> Result<String> {
        let mut hash = 0u64;
        for file in [
            self.dir
                .join(ENCODER_DIR)
                .join(brainrecon_brain::b2c::WEIGHTS_FILE),
            self.dir.join(TUNED_UNET_FILE),
        ] {
            if let Ok(bytes) = std::fs::read(&file) {
                hash ^= brainrecon_nn::rng::fnv1a64(&bytes).rotate_left(17);
            }
        }
        Ok(format!("{hash:016x}"))
    }

    /// The encoder's contexts for `betas` (rows, V in the layout's order): [rows, T, D].
    pub fn contexts(
        &self,
        betas: &[f32],
        rows: usize,
        device: &brainrecon_diffusion::pipeline::Device,
    ) -> Result<Tensor> {
        let v = self.record.layout.columns.len();
        let x = Tensor::from_vec(betas.to_vec(), (rows, v), device)?;
        Ok(self.encoder.forward(&x, None)?)
    }
}
