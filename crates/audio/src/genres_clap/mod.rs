//! genres-clap: the project's own small contrastive audio–text model, a [`ClapModel`] (HTSAT
//! audio tower, 2-layer RoBERTa text tower). It is written as a transformers `ClapModel` folder
//! (`config.json`, `model.safetensors`, `preprocessor_config.json`, `tokenizer.json`,
//! `tokenizer_config.json`) and loads with the same code as `laion/clap-htsat-unfused`; the
//! copy compiled into the binary is [`embedded`]. Its name (`--model genres-clap`), config,
//! training data, training and quality checks live in the model zoo (`brainrecon_zoo`).

pub mod embedded;

use brainrecon_language::roberta::RobertaTokenizer;
use brainrecon_nn::Result;
use candle_core::Device;
use std::path::Path;

use crate::clap::{ClapFeatureExtractor, ClapModel};

/// The name `--model` accepts for the embedded model.
pub const GENRES_CLAP: &str = "genres-clap";

/// A CLAP checkpoint with its front end and tokenizer.
#[derive(Clone, Debug)]
pub struct LoadedClap {
    /// The contrastive model (`config.json`, `model.safetensors`).
    pub model: ClapModel,
    /// The mel front end (`preprocessor_config.json`).
    pub feature_extractor: ClapFeatureExtractor,
    /// The text tokenizer (`tokenizer.json`).
    pub tokenizer: RobertaTokenizer,
}

/// Loads a CLAP (model, `preprocessor_config.json`, tokenizer): a folder or a hub id in the
/// Hugging Face cache (`brainrecon_zoo::genres_clap::load_clap` also takes `genres-clap`).
pub fn load_clap(model: &str, device: &Device) -> Result<LoadedClap> {
    load_clap_dir(&crate::clap::model::resolve_model(model)?, device)
}

/// Loads the CLAP folder `dir`.
pub fn load_clap_dir(dir: &Path, device: &Device) -> Result<LoadedClap> {
    Ok(LoadedClap {
        model: ClapModel::load_dir(dir, device)?,
        feature_extractor: ClapFeatureExtractor::from_dir(dir)?,
        tokenizer: RobertaTokenizer::from_dir(dir)?,
    })
}
