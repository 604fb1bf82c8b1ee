//! shapes-ldm, the project's own small model, compiled into the binary so that `--model
//! shapes-ldm` works on any machine, offline. On first use its diffusers folder is written to
//! the cache (`$BRAINRECON_CACHE`, else `$XDG_CACHE_HOME/brainrecon`, else
//! `~/.cache/brainrecon`) under a name that includes a hash of its bytes, so a new build never
//! reads an old copy. The folder is written beside its final name and renamed into place.

use std::path::{Path, PathBuf};

use crate::train::fnv1a64;
use crate::weights::{DiffusionError, Result};

/// The name `--model` accepts for the embedded model.
pub const SHAPES_LDM: &str = "shapes-ldm";

macro_rules! model_file {
    ($path:literal) => {
        (
            $path,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../models/shapes-ldm/",
                $path
            )) as &[u8],
        )
    };
}

/// (path in the diffusers folder, bytes) of every file of shapes-ldm.
pub const SHAPES_LDM_FILES: [(&str, &[u8]); 11] = [
    model_file!("model_index.json"),
    model_file!("scheduler/scheduler_config.json"),
    model_file!("tokenizer/vocab.json"),
    model_file!("tokenizer/merges.txt"),
    model_file!("tokenizer/tokenizer_config.json"),
    model_file!("text_encoder/config.json"),
    model_file!("text_encoder/model.safetensors"),
    model_file!("unet/config.json"),
    model_file!("unet/diffusion_pytorch_model.safetensors"),
    model_file!("vae/config.json"),
    model_file!("vae/diffusion_pytorch_model.safetensors"),
];

/// The cache folder of brainrecon.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BRAINRECON_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("brainrecon");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("brainrecon"),
        None => std::env::temp_dir().join("brainrecon-cache"),
    }
}

/// A hash of every embedded file's name and bytes.
fn content_hash() -> u64 {
    let mut bytes = Vec::new();
    for (name, data) in SHAPES_LDM_FILES {
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(&(data.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&fnv1a64(data).to_le_bytes());
    }
    fnv1a64(&bytes)
}

/// The diffusers folder of shapes-ldm, written to `cache` if it is not there yet.
pub fn shapes_ldm_dir_in(cache: &Path) -> Result<PathBuf> {
    let dir = cache
        .join("models")
        .join(format!("{SHAPES_LDM}-{:016x}", content_hash()));
    if dir.join("model_index.json").is_file() {
        return Ok(dir);
    }
    let parent = dir.parent().expect("a folder in the cache");
    std::fs::create_dir_all(parent).map_err(|e| DiffusionError::io(parent, e))?;
    // One staging folder per process: two first uses at once do not write into each other.
    let staging = parent.join(format!(
        ".{}.partial-{}",
        dir.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| DiffusionError::io(&staging, e))?;
    }
    for (name, data) in SHAPES_LDM_FILES {
        let path = staging.join(name);
        let folder = path.parent().expect("a file in a folder");
        std::fs::create_dir_all(folder).map_err(|e| DiffusionError::io(folder, e))?;
        std::fs::write(&path, data).map_err(|e| DiffusionError::io(&path, e))?;
    }
    match std::fs::rename(&staging, &dir) {
        Ok(()) => Ok(dir),
        // Another process finished first: use its copy.
        Err(_) if dir.join("model_index.json").is_file() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(dir)
        }
        Err(e) => Err(DiffusionError::io(&dir, e)),
    }
}

/// The diffusers folder of shapes-ldm in [`cache_dir`].
pub fn shapes_ldm_dir() -> Result<PathBuf> {
    shapes_ldm_dir_in(&cache_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_model_is_written_once_and_matches_the_repository() {
        let cache = tempfile::tempdir().unwrap();
        let dir = shapes_ldm_dir_in(cache.path()).unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/shapes-ldm");
        for (name, data) in SHAPES_LDM_FILES {
            let written = std::fs::read(dir.join(name)).unwrap();
            assert_eq!(written, data, "{name}");
            assert_eq!(written, std::fs::read(repo.join(name)).unwrap(), "{name}");
        }
        // A second use finds it and writes nothing.
        let modified = std::fs::metadata(dir.join("model_index.json"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(shapes_ldm_dir_in(cache.path()).unwrap(), dir);
        let again = std::fs::metadata(dir.join("model_index.json"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(modified, again);
        // No staging folder is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("partial"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn every_file_of_the_model_folder_is_embedded() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/shapes-ldm");
        let mut found = Vec::new();
        let mut folders = vec![repo.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                let name = path
                    .strip_prefix(&repo)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if name.starts_with('.') || name == crate::prior::TRAINING_RECORD {
                    continue;
                }
                if path.is_dir() {
                    folders.push(path);
                } else {
                    found.push(name);
                }
            }
        }
        found.sort();
        let mut embedded: Vec<String> = SHAPES_LDM_FILES
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        embedded.sort();
        assert_eq!(found, embedded);
    }
}
