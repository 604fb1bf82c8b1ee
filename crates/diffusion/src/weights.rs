//! Finding and reading Stable Diffusion weights.
//!
//! Three sources, one result (a diffusers folder on disk):
//! - a diffusers folder (`model_index.json`, `unet/`, `vae/`, `text_encoder/`, `tokenizer/`,
//!   `scheduler/scheduler_config.json`);
//! - a Hugging Face cache snapshot (`$HF_HUB_CACHE`, `$HF_HOME/hub` or
//!   `~/.cache/huggingface/hub`, `models--ORG--NAME/snapshots/REV/`, REV read from `refs/main`);
//! - a model id such as `stabilityai/sd-turbo`, resolved from that cache. Nothing is downloaded:
//!   when the model is not in the cache the error says how to put it there.
//!
//! Tensors are read by [`brainrecon_nn::weights`] (safetensors only; pickle refused; typed
//! errors naming the file, the tensor and both shapes).

use candle_core::{DType, Device};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

use brainrecon_nn::weights::{
    cached_snapshot, hub_cache_dir, looks_like_model_id, read_json, Weights,
};
use brainrecon_nn::{ModelError, Result};

// ---------------------------------------------------------------------------------------------
// Model folders and the Hugging Face cache
// ---------------------------------------------------------------------------------------------

/// A diffusers pipeline folder.
#[derive(Clone, Debug)]
pub struct ModelDir {
    /// The folder holding `model_index.json`.
    pub root: PathBuf,
}

impl ModelDir {
    /// Resolves `model`: a diffusers folder, a cache snapshot folder, or a model id in the
    /// Hugging Face cache.
    pub fn resolve(model: &str) -> Result<Self> {
        let path = Path::new(model);
        if path.is_dir() {
            return Self::open(path);
        }
        if model == crate::embedded::SHAPES_LDM {
            return Self::open(&crate::embedded::shapes_ldm_dir()?);
        }
        if looks_like_model_id(model) {
            let hub = hub_cache_dir();
            return match cached_snapshot(&hub, model)? {
                Some(dir) => Self::open(&dir),
                None => Err(ModelError::ModelNotFound {
                    model: model.to_string(),
                    message: format!(
                        "not a folder, and not in the Hugging Face cache ({}; set HF_HOME or \
                         HF_HUB_CACHE to use another). brainrecon does not download: run \
                         `huggingface-cli download {model} --exclude '*.bin' '*.ckpt'` on a \
                         machine with network (then copy the cache), or pass a diffusers folder \
                         (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)",
                        hub.join(format!("models--{}", model.replace('/', "--")))
                            .display()
                    ),
                }),
            };
        }
        Err(ModelError::ModelNotFound {
            model: model.to_string(),
            message: "no such folder, and not a model id of the form ORG/NAME".into(),
        })
    }

    /// A folder that must hold a diffusers pipeline.
    pub fn open(path: &Path) -> Result<Self> {
        let index = path.join("model_index.json");
        if !index.is_file() {
            return Err(ModelError::MissingFile {
                path: index,
                what: "a diffusers pipeline folder has model_index.json next to unet/, vae/, \
                       text_encoder/, tokenizer/ and scheduler/"
                    .into(),
            });
        }
        Ok(ModelDir {
            root: path.to_path_buf(),
        })
    }

    /// The folder of a component (`unet`, `vae`, `text_encoder`, ...).
    pub fn component(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// What the pipeline's files hold, as 16 hex digits, wherever the folder is: a hash of every
    /// config, tokenizer and weights file's path inside the folder, its length, and its first
    /// and last 64 KiB (a safetensors file's header and the ends of its data, which any
    /// retraining changes). Outputs record it, so that a run never resumes on results of other
    /// weights under the same name (`shapes-ldm` after an update, a folder trained again).
    pub fn fingerprint(&self) -> Result<String> {
        const SPAN: u64 = 64 * 1024;
        let mut files = Vec::new();
        let mut folders = vec![self.root.clone()];
        while let Some(folder) = folders.pop() {
            let entries = std::fs::read_dir(&folder).map_err(|e| ModelError::io(&folder, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| ModelError::io(&folder, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                if name.starts_with('.') {
                    continue; // training checkpoints, partial files
                }
                if path.is_dir() {
                    folders.push(path);
                } else if [".json", ".txt", ".safetensors"]
                    .iter()
                    .any(|ext| name.ends_with(ext))
                {
                    files.push(path);
                }
            }
        }
        files.sort();
        let mut record = Vec::new();
        for path in &files {
            use std::io::{Read, Seek, SeekFrom};
            let relative = path.strip_prefix(&self.root).unwrap_or(path);
            record.extend(relative.to_string_lossy().as_bytes());
            let mut file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
            let len = file.metadata().map_err(|e| ModelError::io(path, e))?.len();
            record.extend(len.to_le_bytes());
            let mut read_span = |from: u64| -> Result<()> {
                let mut part = Vec::new();
                file.seek(SeekFrom::Start(from))
                    .and_then(|_| (&mut file).take(SPAN).read_to_end(&mut part))
                    .map_err(|e| ModelError::io(path, e))?;
                record.extend(part);
                Ok(())
            };
            read_span(0)?;
            if len > SPAN {
                read_span(len.saturating_sub(SPAN).max(SPAN))?;
            }
        }
        Ok(format!("{:016x}", brainrecon_nn::rng::fnv1a64(&record)))
    }

    /// The safetensors weights of `component`'s folder ([`Weights::from_component`]) in `dtype`
    /// on `device`.
    pub fn weights(&self, component: &str, dtype: DType, device: &Device) -> Result<Weights> {
        Weights::from_component(&self.component(component), dtype, device)
    }

    /// `component/config.json` (or `scheduler/scheduler_config.json` for the scheduler).
    pub fn config<T: DeserializeOwned>(&self, component: &str) -> Result<T> {
        let file = if component == "scheduler" {
            "scheduler_config.json"
        } else {
            "config.json"
        };
        read_json(
            &self.component(component).join(file),
            &format!("{component} config"),
        )
    }
}

/// Hub CLIP checkpoints (SD1/SD2 `text_encoder/model.safetensors`) name tensors
/// `text_model.embeddings…`; transformers 5 saves `CLIPTextModel` without the `text_model.`
/// prefix. The prefix these weights use.
pub fn clip_text_prefix(weights: &Weights) -> &'static str {
    if weights.contains("text_model.final_layer_norm.weight")
        || weights.contains("text_model.embeddings.token_embedding.weight")
    {
        "text_model"
    } else {
        ""
    }
}
