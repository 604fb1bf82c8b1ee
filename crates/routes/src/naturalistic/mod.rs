//! Naturalistic encoding (Nakagi et al. 2024): continuous runs (a prepared run set), text
//! features of per-second annotations (Word2Vec or a language model's hidden states) aligned
//! to the TRs and delayed, voxelwise banded ridge with one penalty per band, variance
//! partitioning, block-permutation statistics, NIfTI maps and an HTML report.

pub mod annotations;
pub mod corpus;
pub mod design;
pub mod embedded;
pub mod encode;
pub mod report;
pub mod text;

pub use design::{Align, Band, BandSource, Delays};
pub use encode::{check_search, encode_run_set, encode_runs, EncodeRunsOptions, EncodeRunsSummary};
pub use text::{load_featurizer, LayerChoice, TextFeaturizer};

use crate::error::{Result, RouteError};
use std::path::PathBuf;

/// `brainrecon features text` as the command line asks for it: text features of annotation
/// files, one row per line.
#[derive(Debug, Clone)]
pub struct TextFeaturesRequest {
    /// word2vec-movie, a word2vec file, or a language model folder / model id.
    pub model: String,
    /// An annotation file, or a folder of them (*.txt).
    pub annotations: PathBuf,
    /// Hidden state: a number (0 = embeddings), `last` or `all`.
    pub layer: String,
    /// Pooling over a line's tokens (only `mean`).
    pub pool: String,
    /// auto, ds005531 or plain.
    pub markup: String,
    /// The output folder.
    pub out: PathBuf,
    /// Where the model runs.
    pub device: brainrecon_core::Device,
}

/// Checks `r` and writes the features of every annotation file into `r.out`; returns how many
/// files there were.
pub fn text_features_request(r: &TextFeaturesRequest) -> Result<usize> {
    use crate::naturalistic::annotations::{
        annotation_files, parse_markup, write_annotation_features,
    };
    use crate::naturalistic::{load_featurizer, LayerChoice};
    if r.pool != "mean" {
        return Err(RouteError::Usage(format!(
            "--pool: only mean exists, found {}",
            r.pool
        )));
    }
    let markup = parse_markup(&r.markup)?;
    let files = annotation_files(&r.annotations)?;
    let device = crate::decode::options::open_device(r.device)?;
    let featurizer = load_featurizer(&r.model, &LayerChoice::parse(&r.layer)?, &device)?;
    write_annotation_features(&featurizer, markup, &files, &r.out)?;
    Ok(files.len())
}
