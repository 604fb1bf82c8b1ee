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
