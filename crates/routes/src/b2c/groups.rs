//! The B2C encoder's voxel groups, read from the subject's atlases by label name.
//!
//! With ROI patches the nsdgeneral voxels split into four anatomical groups (the paper's):
//! V1 (prf-visualrois V1v, V1d), V2–V4 (V2v, V2d, V3v, V3d, hV4), higher visual (the streams
//! labels ventral, lateral, parietal and their mid- parts) and other (the rest of
//! nsdgeneral). A voxel is matched across atlases by its (x, y, z) in the volume, so the rule
//! works on real NSD (whose atlases cover different voxels) and on the synthetic subject alike.
//! Groups without voxels are dropped. Without patches one group ("all") holds every voxel.

use crate::error::{Result, RouteError};
use brainrecon_brain::b2c::{allocate_tokens, VoxelGroup};
use brainrecon_datasets::prepared::{PreparedSubject, Split};
use brainrecon_formats::npy;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The atlas whose voxels are the encoder's input.
pub const INPUT_ATLAS: &str = "nsdgeneral";
const PRF_ATLAS: &str = "prf-visualrois";
const STREAMS_ATLAS: &str = "streams";
const V1_LABELS: [&str; 2] = ["V1v", "V1d"];
const V2_V4_LABELS: [&str; 5] = ["V2v", "V2d", "V3v", "V3d", "hV4"];
const HIGHER_LABELS: [&str; 6] = [
    "ventral",
    "lateral",
    "parietal",
    "midventral",
    "midlateral",
    "midparietal",
];
/// Group names in input order.
pub const ROI_GROUPS: [&str; 4] = ["V1", "V2-V4", "higher visual", "other"];

/// Whether the encoder's input is split into anatomical patches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Patch {
    /// One projection per anatomical group (V1, V2–V4, higher visual, other).
    Roi,
    /// One projection of all voxels.
    None,
}

impl Patch {
    /// Parses `--patch`: `roi` or `none`.
    ///
    /// # Errors
    /// [`RouteError::Usage`] for anything else.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "roi" => Ok(Patch::Roi),
            "none" => Ok(Patch::None),
            other => Err(RouteError::Usage(format!(
                "--patch: expected roi or none, found '{other}'"
            ))),
        }
    }

    /// The name [`Patch::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Patch::Roi => "roi",
            Patch::None => "none",
        }
    }
}

/// The encoder's input layout: groups in order, and for each input column the nsdgeneral
/// column it reads (`columns[i]` of the group-ordered betas is column `columns[i]` of
/// `betas/nsdgeneral/*.npy`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoxelLayout {
    /// Whether the voxels are split into anatomical groups.
    pub patch: Patch,
    /// The groups in input order, each with its voxel count and tokens.
    pub groups: Vec<VoxelGroup>,
    /// For each input column, the nsdgeneral column it reads.
    pub columns: Vec<usize>,
}

/// Voxel (x, y, z) → label value of `atlas`, from `rois/<atlas>.npy` and `_labels.npy`.
fn atlas_labels(subject: &PreparedSubject, atlas: &str) -> Result<HashMap<[i64; 3], i64>> {
    let coords_path = subject.path(&format!("rois/{atlas}.npy"));
    let labels_path = subject.path(&format!("rois/{atlas}_labels.npy"));
    if !subject.meta.atlases.iter().any(|a| a.name == atlas) || !coords_path.exists() {
        return Err(RouteError::Missing {
            path: coords_path,
            what: format!(
                "the '{atlas}' atlas, which B2C's ROI patches are read from (prepare the subject \
                 with it: `brainrecon nsd prepare --rois nsdgeneral,streams,prf-visualrois`, or \
                 train with --patch none)"
            ),
        });
    }
    let coords = npy::read_i64(&coords_path)?;
    let labels = npy::read_i64(&labels_path)?;
    if coords.shape.len() != 2 || coords.shape[1] != 3 || coords.shape[0] != labels.data.len() {
        return Err(RouteError::mismatch(
            &coords_path,
            "shape",
            format!(
                "({}, 3), one row per voxel of {}",
                labels.data.len(),
                labels_path.display()
            ),
            format!("{:?}", coords.shape),
        ));
    }
    Ok(coords
        .data
        .chunks(3)
        .zip(&labels.data)
        .map(|(c, &l)| ([c[0], c[1], c[2]], l))
        .collect())
}

/// Label values of `names` in `atlas` (names the atlas lacks are skipped).
fn label_values(subject: &PreparedSubject, atlas: &str, names: &[&str]) -> Vec<i64> {
    subject
        .meta
        .atlases
        .iter()
        .filter(|a| a.name == atlas)
        .flat_map(|a| &a.labels)
        .filter(|l| names.contains(&l.name.as_str()))
        .map(|l| l.value as i64)
        .collect()
}

/// Group index (into [`ROI_GROUPS`]) of every nsdgeneral voxel.
fn roi_group_of_voxels(subject: &PreparedSubject) -> Result<Vec<usize>> {
    let prf = atlas_labels(subject, PRF_ATLAS)?;
    let streams = atlas_labels(subject, STREAMS_ATLAS)?;
    let v1 = label_values(subject, PRF_ATLAS, &V1_LABELS);
    let v2_v4 = label_values(subject, PRF_ATLAS, &V2_V4_LABELS);
    let higher = label_values(subject, STREAMS_ATLAS, &HIGHER_LABELS);
    // The input atlas' voxel order is the betas' column order.
    let input = subject.atlas_name(INPUT_ATLAS);
    let coords = npy::read_i64(&subject.path(&format!("rois/{input}.npy")))?;
    Ok(coords
        .data
        .chunks(3)
        .map(|c| {
            let key = [c[0], c[1], c[2]];
            let prf_label = prf.get(&key).copied().unwrap_or(0);
            let stream_label = streams.get(&key).copied().unwrap_or(0);
            if v1.contains(&prf_label) {
                0
            } else if v2_v4.contains(&prf_label) {
                1
            } else if higher.contains(&stream_label) {
                2
            } else {
                3
            }
        })
        .collect())
}

/// The layout for `patch` with `tokens` output tokens (proportional to voxel counts).
pub fn voxel_layout(subject: &PreparedSubject, patch: Patch, tokens: usize) -> Result<VoxelLayout> {
    let input = subject.atlas_name(INPUT_ATLAS);
    let n_voxels = subject
        .meta
        .atlases
        .iter()
        .find(|a| a.name == input)
        .map(|a| a.n_voxels)
        .ok_or_else(|| RouteError::Missing {
            path: subject.path("subject.json"),
            what: format!("the '{INPUT_ATLAS}' atlas, whose voxels are B2C's input"),
        })?;
    let (names, group_of): (Vec<&str>, Vec<usize>) = match patch {
        Patch::None => (vec!["all"], vec![0; n_voxels]),
        Patch::Roi => (ROI_GROUPS.to_vec(), roi_group_of_voxels(subject)?),
    };
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (column, &g) in group_of.iter().enumerate() {
        members[g].push(column);
    }
    let kept: Vec<(&str, Vec<usize>)> = names
        .into_iter()
        .zip(members)
        .filter(|(_, m)| !m.is_empty())
        .collect();
    if tokens < kept.len() {
        return Err(RouteError::Usage(format!(
            "the model's context has {tokens} tokens, fewer than the {} voxel groups",
            kept.len()
        )));
    }
    let counts: Vec<usize> = kept.iter().map(|(_, m)| m.len()).collect();
    let shares = allocate_tokens(&counts, tokens);
    Ok(VoxelLayout {
        patch,
        groups: kept
            .iter()
            .zip(shares)
            .map(|((name, m), t)| VoxelGroup {
                name: name.to_string(),
                voxels: m.len(),
                tokens: t,
            })
            .collect(),
        columns: kept.into_iter().flat_map(|(_, m)| m).collect(),
    })
}

/// Betas of `split` in the layout's column order, (rows, V) row-major; NaN or infinite
/// values are an error naming the file.
pub fn layout_betas(
    subject: &PreparedSubject,
    layout: &VoxelLayout,
    split: Split,
) -> Result<(usize, Vec<f32>)> {
    let roi = subject.roi(INPUT_ATLAS)?;
    let betas = subject.betas(&roi, split)?;
    let path = subject.betas_path(&roi.atlas, split);
    if betas.voxels != layout.columns.len() {
        return Err(RouteError::mismatch(
            &path,
            "columns",
            format!(
                "{} voxels, as the B2C encoder was made for",
                layout.columns.len()
            ),
            betas.voxels,
        ));
    }
    let mut out = Vec::with_capacity(betas.values.len());
    for (r, row) in betas.values.chunks(betas.voxels).enumerate() {
        for &c in &layout.columns {
            let v = row[c];
            if !v.is_finite() {
                return Err(RouteError::mismatch(
                    &path,
                    format!("row {r}, voxel {c}"),
                    "finite betas",
                    v,
                ));
            }
            out.push(v);
        }
    }
    Ok((betas.rows, out))
}
