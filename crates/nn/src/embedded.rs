//! Model folders compiled into the binary (the project's own small models), so that they run
//! on any machine, offline. On first use a folder is written to the cache
//! (`$BRAINRECON_CACHE`, else `$XDG_CACHE_HOME/brainrecon`, else `~/.cache/brainrecon`) under
//! a name that includes a hash of its bytes, so a new build never reads an old copy. The
//! folder is written beside its final name and renamed into place
//! ([`write_folder_once`]).

use std::path::{Path, PathBuf};

use brainrecon_core::fs::write_folder_once;

use crate::error::{ModelError, Result};
use crate::rng::fnv1a64;

/// A model folder held in the binary: its name and every file (path in the folder, bytes).
#[derive(Clone, Copy)]
pub struct EmbeddedModel {
    /// The folder name.
    pub name: &'static str,
    /// Each file: its path in the folder and its bytes.
    pub files: &'static [(&'static str, &'static [u8])],
    /// A file whose presence marks a complete copy (e.g. `model_index.json`).
    pub marker: &'static str,
}

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

impl EmbeddedModel {
    /// A hash of every file's name and bytes.
    pub fn content_hash(&self) -> u64 {
        let mut bytes = Vec::new();
        for (name, data) in self.files {
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(&(data.len() as u64).to_le_bytes());
            bytes.extend_from_slice(&fnv1a64(data).to_le_bytes());
        }
        fnv1a64(&bytes)
    }

    /// The model's folder under `cache`, written there if it is not there yet.
    pub fn dir_in(&self, cache: &Path) -> Result<PathBuf> {
        let dir = cache
            .join("models")
            .join(format!("{}-{:016x}", self.name, self.content_hash()));
        // Two first uses at once each write their own copy; the first complete one stays.
        write_folder_once(&dir, self.marker, |staging| {
            for (name, data) in self.files {
                let path = staging.join(name);
                let folder = path.parent().expect("a file in a folder");
                std::fs::create_dir_all(folder).map_err(|e| ModelError::io(folder, e))?;
                std::fs::write(&path, data).map_err(|e| ModelError::io(&path, e))?;
            }
            Ok::<(), ModelError>(())
        })?;
        Ok(dir)
    }

    /// The model's folder in [`cache_dir`].
    pub fn dir(&self) -> Result<PathBuf> {
        self.dir_in(&cache_dir())
    }

    /// Checks (in tests) that the embedded files are those of `repo` (the model's folder in
    /// the repository) and that no file there (other than `skip`) is left out.
    pub fn assert_matches_folder(&self, repo: &Path, skip: &[&str]) {
        let mut found = Vec::new();
        let mut folders = vec![repo.to_path_buf()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                let name = path
                    .strip_prefix(repo)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if name.starts_with('.') || skip.contains(&name.as_str()) {
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
        let mut embedded: Vec<String> = self.files.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(found, embedded, "files of {}", repo.display());
        for (name, data) in self.files {
            assert_eq!(std::fs::read(repo.join(name)).unwrap(), *data, "{name}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: EmbeddedModel = EmbeddedModel {
        name: "tiny",
        files: &[("config.json", b"{}"), ("weights/a.bin", &[1, 2, 3])],
        marker: "config.json",
    };

    #[test]
    fn the_folder_is_written_once_with_every_file() {
        let cache = tempfile::tempdir().unwrap();
        let dir = MODEL.dir_in(cache.path()).unwrap();
        for (name, data) in MODEL.files {
            assert_eq!(std::fs::read(dir.join(name)).unwrap(), *data, "{name}");
        }
        let modified = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        let before = modified(&dir.join("config.json"));
        assert_eq!(MODEL.dir_in(cache.path()).unwrap(), dir);
        assert_eq!(before, modified(&dir.join("config.json")));
        let leftovers = std::fs::read_dir(dir.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .count();
        assert_eq!(leftovers, 0);
        MODEL.assert_matches_folder(&dir, &[]);
    }

    #[test]
    fn other_bytes_give_another_folder() {
        let other = EmbeddedModel {
            files: &[("config.json", b"{ }"), ("weights/a.bin", &[1, 2, 3])],
            ..MODEL
        };
        assert_ne!(MODEL.content_hash(), other.content_hash());
    }
}
