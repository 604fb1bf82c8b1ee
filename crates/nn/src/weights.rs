//! Reading model weights: safetensors files (memory-mapped; `.fp16.safetensors` variants and
//! sharded `*.safetensors.index.json` included) and the Hugging Face cache.
//!
//! Pickle checkpoints (`.bin`, `.ckpt`, `.pt`, `.pth`) are refused with an error naming the
//! file. Every tensor is fetched by name with the shape the module expects; a missing tensor or a
//! wrong shape is a typed error naming the file, the tensor and both shapes. The one place where
//! checkpoint names differ from module names (legacy VAE attention names) is [`legacy_aliases`].

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::error::{ModelError, Result};

/// Reads a JSON config (`config.json`, `scheduler_config.json`, ...) into `T`.
pub fn read_json<T: DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    if !path.is_file() {
        return Err(ModelError::MissingFile {
            path: path.to_path_buf(),
            what: what.to_string(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    parse_json_named(brainrecon_core::text::without_bom(&text)).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// `serde_json::from_str` whose errors start with the path of the offending field
/// (`"text_config.vocab_size: invalid type: ..."`), so a hostile config names its field.
pub fn parse_json_named<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match path.as_str() {
            "." => inner,
            _ => serde::de::Error::custom(format!("{path}: {inner}")),
        }
    })?;
    de.end()?;
    Ok(value)
}

/// `serde_json::from_value` whose errors start with the path of the offending field.
pub fn from_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| e.to_string())
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
                return Err(ModelError::MissingFile {
                    path: path.clone(),
                    what: "a safetensors weight file".into(),
                });
            }
            let file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
            // SAFETY: the file is only read; the usual memory-map caveat (another process
            // truncating it underneath) applies as for every safetensors reader.
            let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
            let (header, metadata) =
                safetensors::SafeTensors::read_metadata(&mmap).map_err(|e| {
                    ModelError::Safetensors {
                        path: path.clone(),
                        message: e.to_string(),
                    }
                })?;
            let base = 8 + header;
            // In name order (the header's map is unordered), so an error names the same tensor
            // on every run.
            let mut tensors: Vec<_> = metadata.tensors().into_iter().collect();
            tensors.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, info) in tensors {
                let Some(dt) = candle_dtype(info.dtype) else {
                    return Err(ModelError::Dtype {
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

    /// The dtype tensors are returned in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device tensors are loaded to.
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

    /// Every tensor name.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.entries.keys().cloned().collect();
        names.sort();
        names
    }

    /// Whether a tensor named `name` exists.
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
        Err(ModelError::Shape {
            path: self.inner.files[entry.file].path.clone(),
            name: name.to_string(),
            expected: shape.to_vec(),
            found: tensor.dims().to_vec(),
        })
    }

    /// A tensor by name with whatever shape it has.
    pub fn get_unchecked(&self, name: &str) -> Result<Tensor> {
        let (_, entry) = self.find(name).ok_or_else(|| ModelError::MissingTensor {
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

    /// A candle [`VarBuilder`] over these tensors, for the modules of [`crate::layers`]: names
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
                ModelError::Candle(c) => c,
                ModelError::Shape { found, .. } => candle_core::Error::UnexpectedShape {
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
                ModelError::Candle(c) => c,
                other => candle_core::Error::Msg(other.to_string()),
            })?
            .to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.contains(name)
    }
}

/// A model's stored weights with some tensors replaced: the tuned tensors of a fine-tuned
/// model over the pretrained files (which stay memory-mapped), or trainable [`Var`]s over them
/// ([`Overlay::trainable`]). Names and shapes resolve as in [`Weights`].
#[derive(Clone)]
pub struct Overlay {
    base: Weights,
    replaced: HashMap<String, Tensor>,
}

impl Overlay {
    /// `base` with `replaced` taking precedence. A replaced tensor whose name `base` lacks or
    /// whose shape differs from the stored one is an error naming both shapes.
    pub fn new(base: &Weights, replaced: HashMap<String, Tensor>) -> Result<Self> {
        let mut names: Vec<&String> = replaced.keys().collect();
        names.sort();
        for name in names {
            let tensor = &replaced[name];
            match base.shape_of(name) {
                None => {
                    return Err(ModelError::MissingTensor {
                        path: base.path(),
                        name: name.clone(),
                    })
                }
                Some(shape) if shape != tensor.dims() => {
                    return Err(ModelError::Shape {
                        path: base.path(),
                        name: name.clone(),
                        expected: shape,
                        found: tensor.dims().to_vec(),
                    })
                }
                Some(_) => {}
            }
        }
        Ok(Overlay {
            base: base.clone(),
            replaced,
        })
    }

    /// `base` with every tensor whose name satisfies `trainable` turned into a [`Var`] of
    /// `dtype` (starting from the stored values): modules built from [`Overlay::var_builder`]
    /// compute with the variables, so gradients reach them and optimiser steps change the
    /// module. Returns the overlay and the variables by name (sorted).
    pub fn trainable(
        base: &Weights,
        trainable: impl Fn(&str) -> bool,
        dtype: DType,
    ) -> Result<(Self, Vec<(String, Var)>)> {
        let base = base.with_dtype(dtype);
        let mut replaced = HashMap::new();
        let mut vars = Vec::new();
        for name in base.names().into_iter().filter(|n| trainable(n)) {
            let value = base.get_unchecked(&name)?;
            let var = Var::from_tensor(&value)?;
            replaced.insert(name.clone(), var.as_tensor().clone());
            vars.push((name, var));
        }
        Ok((Overlay { base, replaced }, vars))
    }

    /// A [`VarBuilder`] over the overlay, in the base's dtype and device.
    pub fn var_builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(
            Box::new(self.clone()),
            self.base.dtype,
            self.base.device.clone(),
        )
    }
}

impl SimpleBackend for Overlay {
    fn get(
        &self,
        s: Shape,
        name: &str,
        init: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        match self.replaced.get(name) {
            Some(t) if t.dims() == s.dims() => t.to_dtype(dtype)?.to_device(dev),
            Some(t) => Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: t.shape().clone(),
            }),
            None => SimpleBackend::get(&self.base, s, name, init, dtype, dev),
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.replaced.get(name) {
            Some(t) => t.to_dtype(dtype)?.to_device(dev),
            None => SimpleBackend::get_unchecked(&self.base, name, dtype, dev),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.replaced.contains_key(name) || self.base.contains(name)
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

/// Refuses pickle checkpoints (they can run code when loaded).
pub fn refuse_pickle(path: &Path) -> Result<()> {
    let lower = path.to_string_lossy().to_lowercase();
    if [".bin", ".ckpt", ".pt", ".pth", ".pkl"]
        .iter()
        .any(|ext| lower.ends_with(ext))
    {
        return Err(ModelError::Pickle {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// The safetensors files of a component folder. With `prefer_fp16`, `*.fp16.safetensors` is
/// taken before the full-precision file; otherwise after it.
pub fn component_files(dir: &Path, prefer_fp16: bool) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(ModelError::MissingFile {
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
                return Err(ModelError::Pickle { path: pickle });
            }
        }
    }
    Err(ModelError::MissingFile {
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
// The Hugging Face cache
// ---------------------------------------------------------------------------------------------

/// Whether `model` reads as a hub id `ORG/NAME`.
pub fn looks_like_model_id(model: &str) -> bool {
    let parts: Vec<&str> = model.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

/// The folder of a checkpoint in transformers' layout: a folder holding `config.json`, or a
/// model id (`ORG/NAME`) in the Hugging Face cache (the snapshot `refs/main` names). Nothing is
/// downloaded: the error names the cache folder and the `files` (space-separated) to fetch.
/// `family` says what the folder is in messages (e.g. "a CLIPModel folder").
pub fn resolve_model_folder(name_or_dir: &str, family: &str, files: &str) -> Result<PathBuf> {
    let path = Path::new(name_or_dir);
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else if looks_like_model_id(name_or_dir) {
        let hub = hub_cache_dir();
        cached_snapshot(&hub, name_or_dir)?.ok_or_else(|| ModelError::ModelNotFound {
            model: name_or_dir.to_string(),
            message: format!(
                "not a folder, and not in the Hugging Face cache ({}; set HF_HOME or \
                 HF_HUB_CACHE to use another). brainrecon does not download: run \
                 `huggingface-cli download {name_or_dir} {files}` (sharded weights: \
                 model.safetensors.index.json and its shards) on a machine with network (then \
                 copy the cache), or pass a folder holding those files",
                hub.join(format!("models--{}", name_or_dir.replace('/', "--")))
                    .display()
            ),
        })?
    } else {
        return Err(ModelError::ModelNotFound {
            model: name_or_dir.to_string(),
            message: "no such folder, and not a model id of the form ORG/NAME".into(),
        });
    };
    let config = dir.join("config.json");
    if !config.is_file() {
        return Err(ModelError::MissingFile {
            path: config,
            what: format!("{family} has {files}"),
        });
    }
    Ok(dir)
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
        let rev = std::fs::read_to_string(&refs).map_err(|e| ModelError::io(&refs, e))?;
        let snapshot = repo.join("snapshots").join(rev.trim());
        if snapshot.is_dir() {
            return Ok(Some(snapshot));
        }
        return Err(ModelError::MissingFile {
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
        _ => Err(ModelError::ModelNotFound {
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
    fn overlays_replace_and_train_chosen_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.safetensors");
        let dev = Device::Cpu;
        let a = Tensor::new(&[1f32, 2.0], &dev).unwrap();
        let b = Tensor::new(&[[3f32, 4.0]], &dev).unwrap();
        brainrecon_testkit::tensor::save_safetensors(
            &HashMap::from([("a".to_string(), a.clone()), ("b".to_string(), b.clone())]),
            &file,
        );
        let base = Weights::from_files(&[file], DType::F32, &dev).unwrap();
        // replaced values win; the rest comes from the file
        let new_a = Tensor::new(&[5f32, 6.0], &dev).unwrap();
        let overlay = Overlay::new(&base, HashMap::from([("a".to_string(), new_a)])).unwrap();
        let vb = overlay.var_builder();
        assert_eq!(
            vb.get(2, "a").unwrap().to_vec1::<f32>().unwrap(),
            [5.0, 6.0]
        );
        assert_eq!(
            vb.get((1, 2), "b").unwrap().to_vec2::<f32>().unwrap(),
            [[3.0, 4.0]]
        );
        // a wrong shape or an unknown name is refused
        let wrong = Tensor::new(&[1f32], &dev).unwrap();
        assert!(Overlay::new(&base, HashMap::from([("a".to_string(), wrong.clone())])).is_err());
        assert!(Overlay::new(&base, HashMap::from([("c".to_string(), wrong.clone())])).is_err());
        // Several wrong: the first by name is named, whatever the map's order (a new hash
        // seed each time).
        for _ in 0..8 {
            let replaced =
                HashMap::from(["d", "b", "f", "c", "e"].map(|n| (n.to_string(), wrong.clone())));
            let error = Overlay::new(&base, replaced).err().unwrap().to_string();
            assert!(error.contains("tensor 'b' has shape"), "{error}");
        }
        // trainable tensors are variables: gradients reach them
        let (overlay, vars) = Overlay::trainable(&base, |n| n == "b", DType::F32).unwrap();
        assert_eq!(vars.len(), 1);
        let vb = overlay.var_builder();
        let y = vb
            .get((1, 2), "b")
            .unwrap()
            .broadcast_mul(&vb.get(2, "a").unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = y.backward().unwrap();
        let g = grads.get(vars[0].1.as_tensor()).unwrap();
        assert_eq!(g.to_vec2::<f32>().unwrap(), [[1.0, 2.0]]);
    }

    #[test]
    fn model_ids() {
        assert!(looks_like_model_id("stabilityai/sd-turbo"));
        assert!(looks_like_model_id("CompVis/stable-diffusion-v1-4"));
        assert!(!looks_like_model_id("a/b/c"));
        assert!(!looks_like_model_id("../x"));
    }
}
