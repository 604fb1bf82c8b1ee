//! A group of subjects and a space shared by them: the way to bring in a new subject from one
//! or two hours of data (issue 60).
//!
//! ```text
//! GROUP/group.json                         GroupMeta: subjects, shared/align/test image ids
//! GROUP/spaces/NAME/space.json             SpaceMeta: method, k, target blocks, per-subject alphas
//! GROUP/spaces/NAME/maps/<i>.npy           float32 (v_i, k)  subject i's map into the space
//! GROUP/spaces/NAME/maps/<i>_mean.npy      float32 (v_i,)    the voxel means it subtracts first
//! GROUP/spaces/NAME/basis.npy              float32 (d, k)    shared space: target basis P
//! GROUP/spaces/NAME/target_mean.npy        float32 (d,)      mean of the stacked features
//! GROUP/spaces/NAME/template.npy           float32 (n_align, k) the group's response to the align images
//! GROUP/spaces/NAME/encoder/               ridge: scaled features → space (for --via features)
//! GROUP/spaces/NAME/pooled/                a prepared subject: every group subject in the space
//! GROUP/spaces/NAME/decoders/{z,c}         decoders fitted on the pooled subject
//! ```
//! Every method gives subject i a linear map M_i (v_i × k); an adapted subject is an ordinary
//! prepared subject whose one atlas `shared` holds the k coordinates, so `fit`, `reconstruct`,
//! `eval` and the report run on it unchanged.

pub mod adapt;
pub mod curve;
pub mod data;
pub mod fit;
pub mod prepare;

use crate::error::{Result, RouteError};
use brainrecon_core::fs::read_json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `group.json`'s format name.
pub const GROUP_FORMAT: &str = "brainrecon-group";
/// `space.json`'s format name.
pub const SPACE_FORMAT: &str = "brainrecon-group-space";
/// The atlas an adapted or pooled subject holds its k coordinates in.
pub use brainrecon_datasets::prepared::SHARED_ATLAS;

/// One subject of a group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupSubject {
    /// The subject's name (subject.json).
    pub name: String,
    /// Its prepared folder, absolute.
    pub path: PathBuf,
    /// Voxels of the group's ROI.
    pub n_voxels: usize,
    /// Its single-trial training rows.
    pub n_train_rows: usize,
    /// Its sessions prepared (1-based).
    pub sessions: Vec<usize>,
}

/// `group.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupMeta {
    /// Always [`GROUP_FORMAT`].
    pub format: String,
    /// 1.
    pub format_version: u32,
    /// The ROI every map starts from (default nsdgeneral).
    pub roi: String,
    /// Feature kinds the shared models target (`vae`, `clip-text`).
    pub kinds: Vec<String>,
    /// The model every subject's features came from, and its fingerprint per kind.
    pub feature_model: String,
    /// Per kind, the fingerprint of that model's files (`None` when the features recorded none).
    pub feature_fingerprints: BTreeMap<String, Option<String>>,
    /// The subjects, in the order given; maps and alphas follow it.
    pub subjects: Vec<GroupSubject>,
    /// Images every subject saw (sorted ids).
    pub shared_ids: Vec<usize>,
    /// The shared images used to align subjects; never scored.
    pub align_ids: Vec<usize>,
    /// The shared images kept for testing; never used to align.
    pub test_ids: Vec<usize>,
    /// Seed of the shuffle that splits the shared images into align and test.
    pub seed: u64,
}

impl GroupMeta {
    /// Reads `GROUP/group.json`.
    pub fn read(group: &Path) -> Result<Self> {
        let path = group.join("group.json");
        if !path.exists() {
            return Err(RouteError::Missing {
                path,
                what: "a group folder (made by `brainrecon group prepare`)".into(),
            });
        }
        let meta: GroupMeta = read_json(&path)?;
        if meta.format != GROUP_FORMAT || meta.format_version != 1 {
            return Err(RouteError::mismatch(
                &path,
                "format",
                format!("{GROUP_FORMAT} version 1"),
                format!("{} version {}", meta.format, meta.format_version),
            ));
        }
        Ok(meta)
    }
}

/// How a space was fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpaceMethod {
    /// One space for the group by multi-subject reduced-rank ridge onto the stimulus features
    /// (MindEye2's shared space, linear). Needs no shared images.
    Shared,
    /// BrainIAK's probabilistic shared response model on the align images.
    Srm,
    /// BrainIAK's deterministic SRM on the align images.
    Detsrm,
}

impl SpaceMethod {
    /// Parses `shared`, `srm` or `detsrm`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "shared" => Ok(SpaceMethod::Shared),
            "srm" => Ok(SpaceMethod::Srm),
            "detsrm" => Ok(SpaceMethod::Detsrm),
            other => Err(RouteError::Usage(format!(
                "--method: expected shared, srm or detsrm, found '{other}'"
            ))),
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SpaceMethod::Shared => "shared",
            SpaceMethod::Srm => "srm",
            SpaceMethod::Detsrm => "detsrm",
        }
    }

    /// Whether fitting needs images every subject saw.
    pub fn needs_shared_images(self) -> bool {
        !matches!(self, SpaceMethod::Shared)
    }
}

/// One feature kind's block of the stacked targets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TargetBlock {
    /// The feature kind (`vae`, `clip-text`).
    pub kind: String,
    /// Its columns in the stacked targets.
    pub width: usize,
    /// 1/√(the block's total variance over the group's rows): z and c weigh the same.
    pub scale: f64,
}

/// `space.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpaceMeta {
    /// Always [`SPACE_FORMAT`].
    pub format: String,
    /// 1.
    pub format_version: u32,
    /// The space's name, its folder under `GROUP/spaces/`.
    pub name: String,
    /// How it was fitted.
    pub method: SpaceMethod,
    /// Dimensions of the space.
    pub k: usize,
    /// The ROI every map starts from.
    pub roi: String,
    /// The stacked targets' blocks, in column order.
    pub blocks: Vec<TargetBlock>,
    /// Per group subject (in group.json's order): the ridge alpha of its map, where one was
    /// chosen.
    pub alphas: Vec<Option<f64>>,
    /// The align images in template.npy's row order.
    pub align_ids: Vec<usize>,
    /// Seed of the fit (SRM's initial maps, the shared space's randomized-SVD probes).
    pub seed: u64,
    /// Wall time of the space's fit, in seconds.
    pub seconds: f64,
}

impl SpaceMeta {
    /// Reads `GROUP/spaces/NAME/space.json`.
    pub fn read(group: &Path, name: &str) -> Result<Self> {
        let path = space_dir(group, name).join("space.json");
        if !path.exists() {
            let known: Vec<String> = std::fs::read_dir(group.join("spaces"))
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok())
                        .filter(|e| e.path().join("space.json").exists())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            return Err(RouteError::Missing {
                path,
                what: format!(
                    "space '{name}' of this group (fit it with `brainrecon group fit --group {} \
                     --name {name}`; fitted: {})",
                    group.display(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        }
        let meta: SpaceMeta = read_json(&path)?;
        if meta.format != SPACE_FORMAT || meta.format_version != 1 {
            return Err(RouteError::mismatch(
                &path,
                "format",
                format!("{SPACE_FORMAT} version 1"),
                format!("{} version {}", meta.format, meta.format_version),
            ));
        }
        Ok(meta)
    }

    /// d: the stacked target width.
    pub fn target_width(&self) -> usize {
        self.blocks.iter().map(|b| b.width).sum()
    }
}

/// `GROUP/spaces/NAME`.
pub fn space_dir(group: &Path, name: &str) -> PathBuf {
    group.join("spaces").join(name)
}

/// The decoders a space fitted on its pooled subject, one folder per target.
pub fn decoders_dir(group: &Path, name: &str) -> PathBuf {
    space_dir(group, name).join("decoders")
}
