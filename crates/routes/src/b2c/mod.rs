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
pub mod train;

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

pub const B2C_FORMAT: &str = "brainrecon-b2c";
pub const RECORD_FILE: &str = "training.json";
pub const LOSSES_FILE: &str = "losses.json";
pub const ENCODER_DIR: &str = "encoder";
pub const TUNED_UNET_FILE: &str = "unet/tuned.safetensors";

/// What the U-Net learns to predict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    Eps,
    V,
    X0,
}

impl Objective {
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

    pub fn prediction_type(self) -> PredictionType {
        match self {
            Objective::Eps => PredictionType::Epsilon,
            Objective::V => PredictionType::VPrediction,
            Objective::X0 => PredictionType::Sample,
        }
    }
}

/// Which U-Net tensors are trained with the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tune {
    /// Every U-Net weight (the paper).
    Unet,
    /// Only the cross-attention keys and values (`attn2.to_k`, `attn2.to_v`).
    AttnKv,
    /// The U-Net stays as it is.
    None,
}

impl Tune {
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "unet" => Ok(Tune::Unet),
            "attn-kv" => Ok(Tune::AttnKv),
            "none" => Ok(Tune::None),
            other => Err(RouteError::Usage(format!(
                "--tune: expected unet, attn-kv or none, found '{other}'"
            ))),
        }
    }

    /// The flag value [`Tune::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Tune::Unet => "unet",
            Tune::AttnKv => "attn-kv",
            Tune::None => "none",
        }
    }

    /// Whether the U-Net tensor `name` (diffusers naming) is trained.
    pub fn selects(self, name: &str) -> bool {
        match self {
            Tune::Unet => true,
            Tune::AttnKv => name.contains("attn2.to_k.") || name.contains("attn2.to_v."),
            Tune::None => false,
        }
    }
}

/// `training.json` of a B2C folder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct B2cRecord {
    pub format: String,
    pub subject: String,
    pub subject_dir: PathBuf,
    pub input_atlas: String,
    pub layout: VoxelLayout,
    pub model: String,
    pub model_fingerprint: String,
    pub options: TrainOptions,
    pub n_train_trials: usize,
    pub encoder_parameters: usize,
    pub tuned_unet_parameters: usize,
    pub seconds_per_step: f64,
    pub features: PathBuf,
    pub versions: Vec<(String, String)>,
}

impl B2cRecord {
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
    pub dir: PathBuf,
    pub record: B2cRecord,
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
