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
//! Tensors are read from safetensors files only (memory-mapped; `.fp16.safetensors` variants
//! and sharded `*.safetensors.index.json` included). Pickle checkpoints (`.bin`, `.ckpt`,
//! `.pt`) are refused with an error naming the file. Every tensor is fetched by name with the
//! shape the module expects; a missing tensor or a wrong shape is a typed error naming the file,
//! the tensor and both shapes. The one place where checkpoint names differ from module names
//! (legacy VAE attention names) is [`legacy_aliases`].

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub type Result<T, E = DiffusionError> = std::result::Result<T, E>;

/// Everything that can go wrong in the diffusion engine.
#[derive(Debug, thiserror::Error)]
pub enum DiffusionError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: missing ({what})")]
    MissingFile { path: PathBuf, what: String },
    #[error("{path}: not a valid {what}: {message}")]
    Config {
        path: PathBuf,
        what: String,
        message: String,
    },
    #[error(
        "{path}: pickle checkpoints are never loaded (they can run code); convert it to \
         safetensors (e.g. `diffusers` `save_pretrained(..., safe_serialization=True)`) and \
         put the .safetensors file next to it"
    )]
    Pickle { path: PathBuf },
    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },
    #[error("{path}: tensor '{name}' is missing")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor '{name}' has shape {found:?}, expected {expected:?}")]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: tensor '{name}' is stored as {dtype}, which is not supported")]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    #[error("model '{model}': {message}")]
    ModelNotFound { model: String, message: String },
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Module(#[from] crate::nn::Error),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl DiffusionError {
    /// True for bad input (files, names, shapes, arguments); false for internal failures.
    pub fn is_user_error(&self) -> bool {
        match self {
            DiffusionError::Candle(_) => false,
            DiffusionError::Module(e) => !matches!(e, crate::nn::Error::Candle(_)),
            _ => true,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DiffusionError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Reads a JSON config (`config.json`, `scheduler_config.json`, ...) into `T`.
pub fn read_json<T: DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    if !path.is_file() {
        return Err(DiffusionError::MissingFile {
            path: path.to_path_buf(),
            what: what.to_string(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| DiffusionError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| DiffusionError::Config {
        path: path.to_path_buf(),
        what: what.to_string(),
        message: e.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// Safetensors files
// ---------------------------------------------------------------------------------------------

struct TensorEntry {
    file: usize,
    dtype: DType,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

struct MappedFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
}

/// The tensors of one or more safetensors files, converted on request to `dtype` on `device`.
#[derive(Clone)]
pub struct Weights {
    inner: Arc<WeightsInner>,
    dtype: DType,
    device: Device,
}

struct WeightsInner {
    files: Vec<MappedFile>,
    entries: HashMap<String, TensorEntry>,
}

fn candle_dtype(dtype: safetensors::Dtype) -> Option<DType> {
    use safetensors::Dtype as S;
    Some(match dtype {
        S::F32 => DType::F32,
        S::F16 => DType::F16,
        S::BF16 => DType::BF16,
        S::F64 => DType::F64,
        S::U8 => DType::U8,
        S::U32 => DType::U32,
        S::I64 => DType::I64,
        _ => return None,
    })
}

impl Weights {
    /// Memory-maps safetensors files; later files do not override earlier ones.
    pub fn from_files(paths: &[PathBuf], dtype: DType, device: &Device) -> Result<Self> {
        let mut files = Vec::new();
        let mut entries = HashMap::new();
        for path in paths {
            refuse_pickle(path)?;
            if !path.is_file() {
                return Err(DiffusionError::MissingFile {
                    path: path.clone(),
                    what: "a safetensors weight file".into(),
                });
            }
            let file = std::fs::File::open(path).map_err(|e| DiffusionError::io(path, e))?;
            // SAFETY: the file is only read; the usual memory-map caveat (another process
            // truncating it underneath) applies as for every safetensors reader.
            let mmap =
                unsafe { memmap2::Mmap::map(&file) }.map_err(|e| DiffusionError::io(path, e))?;
            let (header, metadata) =
                safetensors::SafeTensors::read_metadata(&mmap).map_err(|e| {
                    DiffusionError::Safetensors {
                        path: path.clone(),
                        message: e.to_string(),
                    }
                })?;
            let base = 8 + header;
            for (name, info) in metadata.tensors() {
                let Some(dt) = candle_dtype(info.dtype) else {
                    return Err(DiffusionError::Dtype {
                        path: path.clone(),
                        name,
                        dtype: format!("{:?}", info.dtype),
                    });
                };
                entries.entry(name).or_insert(TensorEntry {
                    file: files.len(),
                    dtype: dt,
                    shape: info.shape.clone(),
                    start: base + info.data_offsets.0,
                    end: base + info.data_offsets.1,
                });
            }
            files.push(MappedFile {
                path: path.clone(),
                mmap,
            });
        }
        Ok(Weights {
            inner: Arc::new(WeightsInner { files, entries }),
            dtype,
            device: device.clone(),
        })
    }

    /// The weights of one diffusers component folder (`unet/`, `vae/`, `text_encoder/`).
    pub fn from_component(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let files = component_files(dir, dtype == DType::F16)?;
        Self::from_files(&files, dtype, device)
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The same tensors, converted to another dtype on request.
    pub fn with_dtype(&self, dtype: DType) -> Self {
        Weights {
            inner: self.inner.clone(),
            dtype,
            device: self.device.clone(),
        }
    }

    /// The file holding the first tensor, for messages.
    pub fn path(&self) -> PathBuf {
        self.inner
            .files
            .first()
            .map(|f| f.path.clone())
            .unwrap_or_default()
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.entries.keys().cloned().collect();
        names.sort();
        names
    }

    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    fn find(&self, name: &str) -> Option<(&str, &TensorEntry)> {
        if let Some((key, entry)) = self.inner.entries.get_key_value(name) {
            return Some((key.as_str(), entry));
        }
        legacy_aliases(name).into_iter().find_map(|alias| {
            self.inner
                .entries
                .get_key_value(&alias)
                .map(|(k, e)| (k.as_str(), e))
        })
    }

    /// The stored shape of a tensor, if present.
    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        self.find(name).map(|(_, e)| e.shape.clone())
    }

    /// A tensor by name, checked against `shape`, in this store's dtype and device.
    /// A stored shape that differs only by trailing 1s (1×1 convolution kernels saved for a
    /// linear layer by old checkpoints) is reshaped.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let tensor = self.get_unchecked(name)?;
        if tensor.dims() == shape {
            return Ok(tensor);
        }
        let squeeze = |s: &[usize]| -> Vec<usize> {
            let mut v = s.to_vec();
            while v.len() > 1 && v.last() == Some(&1) {
                v.pop();
            }
            v
        };
        if squeeze(tensor.dims()) == squeeze(shape) {
            return Ok(tensor.reshape(shape)?);
        }
        let (_, entry) = self.find(name).expect("found above");
        Err(DiffusionError::Shape {
            path: self.inner.files[entry.file].path.clone(),
            name: name.to_string(),
            expected: shape.to_vec(),
            found: tensor.dims().to_vec(),
        })
    }

    /// A tensor by name with whatever shape it has.
    pub fn get_unchecked(&self, name: &str) -> Result<Tensor> {
        let (_, entry) = self
            .find(name)
            .ok_or_else(|| DiffusionError::MissingTensor {
                path: self.path(),
                name: name.to_string(),
            })?;
        let bytes = &self.inner.files[entry.file].mmap[entry.start..entry.end];
        let tensor = Tensor::from_raw_buffer(bytes, entry.dtype, &entry.shape, &Device::Cpu)?;
        let tensor = if entry.dtype == self.dtype || !entry.dtype.is_float() {
            tensor
        } else {
            tensor.to_dtype(self.dtype)?
        };
        Ok(tensor.to_device(&self.device)?)
    }

    /// A candle [`VarBuilder`] over these tensors, for the modules of [`crate::nn`]: names
    /// resolve through [`legacy_aliases`], shapes are checked, dtype and device converted.
    pub fn var_builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), self.dtype, self.device.clone())
    }
}

impl SimpleBackend for Weights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _init: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self
            .with_dtype(dtype)
            .get(name, s.dims())
            .map_err(|e| match e {
                DiffusionError::Candle(c) => c,
                DiffusionError::Shape { found, .. } => candle_core::Error::UnexpectedShape {
                    msg: format!("shape mismatch for {name}"),
                    expected: s.clone(),
                    got: found.into(),
                },
                other => candle_core::Error::Msg(other.to_string()),
            })?;
        t.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.with_dtype(dtype)
            .get_unchecked(name)
            .map_err(|e| match e {
                DiffusionError::Candle(c) => c,
                other => candle_core::Error::Msg(other.to_string()),
            })?
            .to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.contains(name)
    }
}

/// Older diffusers checkpoints (e.g. the VAE of `CompVis/stable-diffusion-v1-4`) name the
/// attention projections of the VAE mid-block `query`, `key`, `value` and `proj_attn`; today's
/// modules call them `to_q`, `to_k`, `to_v` and `to_out.0`. The stored name to try when the
/// current one is absent.
pub fn legacy_aliases(name: &str) -> Vec<String> {
    const PAIRS: [(&str, &str); 4] = [
        (".to_q.", ".query."),
        (".to_k.", ".key."),
        (".to_v.", ".value."),
        (".to_out.0.", ".proj_attn."),
    ];
    PAIRS
        .iter()
        .filter(|(new, _)| name.contains(new))
        .map(|(new, old)| name.replacen(new, old, 1))
        .collect()
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

fn refuse_pickle(path: &Path) -> Result<()> {
    let lower = path.to_string_lossy().to_lowercase();
    if [".bin", ".ckpt", ".pt", ".pth", ".pkl"]
        .iter()
        .any(|ext| lower.ends_with(ext))
    {
        return Err(DiffusionError::Pickle {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// The safetensors files of a component folder. With `prefer_fp16`, `*.fp16.safetensors` is
/// taken before the full-precision file; otherwise after it.
pub fn component_files(dir: &Path, prefer_fp16: bool) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(DiffusionError::MissingFile {
            path: dir.to_path_buf(),
            what: "a diffusers component folder".into(),
        });
    }
    let stems = ["diffusion_pytorch_model", "model"];
    let variants: [&str; 2] = if prefer_fp16 {
        [".fp16", ""]
    } else {
        ["", ".fp16"]
    };
    for variant in variants {
        for stem in stems {
            let single = dir.join(format!("{stem}{variant}.safetensors"));
            if single.is_file() {
                return Ok(vec![single]);
            }
            let index = dir.join(format!("{stem}{variant}.safetensors.index.json"));
            if index.is_file() {
                return sharded_files(&index);
            }
        }
    }
    for stem in stems {
        for ext in [".bin", ".fp16.bin", ".ckpt"] {
            let pickle = dir.join(format!("{stem}{ext}"));
            if pickle.is_file() {
                return Err(DiffusionError::Pickle { path: pickle });
            }
        }
    }
    Err(DiffusionError::MissingFile {
        path: dir.join("diffusion_pytorch_model.safetensors"),
        what: format!(
            "no safetensors weights in {} (looked for diffusion_pytorch_model[.fp16].safetensors \
             and model[.fp16].safetensors)",
            dir.display()
        ),
    })
}

fn sharded_files(index: &Path) -> Result<Vec<PathBuf>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: HashMap<String, String>,
    }
    let parsed: Index = read_json(index, "safetensors index")?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<String> = parsed.weight_map.into_values().collect();
    files.sort();
    files.dedup();
    Ok(files.into_iter().map(|f| dir.join(f)).collect())
}

// ---------------------------------------------------------------------------------------------
// Model folders and the Hugging Face cache
// ---------------------------------------------------------------------------------------------

/// A diffusers pipeline folder.
#[derive(Clone, Debug)]
pub struct ModelDir {
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
                None => Err(DiffusionError::ModelNotFound {
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
        Err(DiffusionError::ModelNotFound {
            model: model.to_string(),
            message: "no such folder, and not a model id of the form ORG/NAME".into(),
        })
    }

    /// A folder that must hold a diffusers pipeline.
    pub fn open(path: &Path) -> Result<Self> {
        let index = path.join("model_index.json");
        if !index.is_file() {
            return Err(DiffusionError::MissingFile {
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
            let entries = std::fs::read_dir(&folder).map_err(|e| DiffusionError::io(&folder, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| DiffusionError::io(&folder, e))?;
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
            let mut file = std::fs::File::open(path).map_err(|e| DiffusionError::io(path, e))?;
            let len = file
                .metadata()
                .map_err(|e| DiffusionError::io(path, e))?
                .len();
            record.extend(len.to_le_bytes());
            let mut read_span = |from: u64| -> Result<()> {
                let mut part = Vec::new();
                file.seek(SeekFrom::Start(from))
                    .and_then(|_| (&mut file).take(SPAN).read_to_end(&mut part))
                    .map_err(|e| DiffusionError::io(path, e))?;
                record.extend(part);
                Ok(())
            };
            read_span(0)?;
            if len > SPAN {
                read_span(len.saturating_sub(SPAN).max(SPAN))?;
            }
        }
        Ok(format!("{:016x}", crate::train::fnv1a64(&record)))
    }

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

fn looks_like_model_id(model: &str) -> bool {
    let parts: Vec<&str> = model.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

/// The hub cache folder: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn hub_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(home) = std::env::var_os("HF_HOME") {
        return PathBuf::from(home).join("hub");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache").join("huggingface").join("hub")
}

/// The snapshot of `model` in `hub`: the revision named by `refs/main`, or the only snapshot.
pub fn cached_snapshot(hub: &Path, model: &str) -> Result<Option<PathBuf>> {
    let repo = hub.join(format!("models--{}", model.replace('/', "--")));
    if !repo.is_dir() {
        return Ok(None);
    }
    let refs = repo.join("refs").join("main");
    if refs.is_file() {
        let rev = std::fs::read_to_string(&refs).map_err(|e| DiffusionError::io(&refs, e))?;
        let snapshot = repo.join("snapshots").join(rev.trim());
        if snapshot.is_dir() {
            return Ok(Some(snapshot));
        }
        return Err(DiffusionError::MissingFile {
            path: snapshot,
            what: format!("the snapshot named by {}", refs.display()),
        });
    }
    let snapshots = repo.join("snapshots");
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&snapshots) {
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                found.push(entry.path());
            }
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(DiffusionError::ModelNotFound {
            model: model.to_string(),
            message: format!(
                "{} holds several snapshots and no refs/main; pass the snapshot folder itself",
                snapshots.display()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names() {
        assert_eq!(
            legacy_aliases("encoder.mid_block.attentions.0.to_out.0.weight"),
            vec!["encoder.mid_block.attentions.0.proj_attn.weight".to_string()]
        );
        assert!(legacy_aliases("conv_in.weight").is_empty());
    }

    #[test]
    fn model_ids() {
        assert!(looks_like_model_id("stabilityai/sd-turbo"));
        assert!(looks_like_model_id("CompVis/stable-diffusion-v1-4"));
        assert!(!looks_like_model_id("a/b/c"));
        assert!(!looks_like_model_id("../x"));
    }
}
