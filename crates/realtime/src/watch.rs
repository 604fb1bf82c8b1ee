//! The folder a scanner's real-time export fills, one file per volume (Siemens' ideacmdtool
//! or a Philips/GE export, as OpenNFT's and rt-cloud's watchers read it). A file is handed
//! over only once it is complete: its size has not changed for `settle`, or it has kept its
//! size over one poll while a later file has appeared (the scanner moved on). Files come out
//! in natural name order (volume numbers need not be zero-padded) and each only once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Polls a folder for finished volume files.
#[derive(Debug)]
pub struct FolderWatch {
    dir: PathBuf,
    suffixes: Vec<String>,
    settle: Duration,
    handed_over: BTreeSet<PathBuf>,
    /// Files seen but not handed over: their size at the last poll and since when.
    growing: BTreeMap<PathBuf, (u64, Instant)>,
}

impl FolderWatch {
    /// Watches `dir` for files ending in one of `suffixes` (case-insensitive, e.g. ".dcm",
    /// ".ima", ".nii", ".nii.gz"); files already there count as new.
    pub fn new(dir: &Path, suffixes: &[&str], settle: Duration) -> FolderWatch {
        FolderWatch {
            dir: dir.to_path_buf(),
            suffixes: suffixes.iter().map(|s| s.to_ascii_lowercase()).collect(),
            settle,
            handed_over: BTreeSet::new(),
            growing: BTreeMap::new(),
        }
    }

    /// The folder watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Files that became complete since the last poll, in natural name order.
    pub fn poll(&mut self) -> std::io::Result<Vec<PathBuf>> {
        self.poll_at(Instant::now())
    }

    fn poll_at(&mut self, now: Instant) -> std::io::Result<Vec<PathBuf>> {
        let mut listed = self.listing()?;
        listed.sort_by_cached_key(|(path, _)| natural_key(path));
        let mut ready = Vec::new();
        let last = listed.len();
        for (index, (path, size)) in listed.into_iter().enumerate() {
            if self.handed_over.contains(&path) {
                continue;
            }
            let later_file_exists = index + 1 < last;
            let stable_since = match self.growing.get(&path) {
                Some(&(previous, since)) if previous == size => Some(since),
                _ => None,
            };
            let complete = size > 0
                && stable_since.is_some_and(|since| {
                    later_file_exists || now.duration_since(since) >= self.settle
                });
            if complete {
                self.growing.remove(&path);
                self.handed_over.insert(path.clone());
                ready.push(path);
            } else if stable_since.is_none() {
                self.growing.insert(path, (size, now));
            }
        }
        Ok(ready)
    }

    fn listing(&self) -> std::io::Result<Vec<(PathBuf, u64)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
            if name.starts_with('.') || !self.suffixes.iter().any(|s| name.ends_with(s.as_str())) {
                continue;
            }
            // A file removed between the listing and here is skipped, not an error.
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() {
                out.push((entry.path(), meta.len()));
            }
        }
        Ok(out)
    }
}

/// Sort key that orders digit runs by value: "vol2" before "vol10".
pub fn natural_key(path: &Path) -> Vec<(u8, u128, String)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut key = Vec::new();
    let mut chars = name.chars().peekable();
    while let Some(&c) = chars.peek() {
        let digits = c.is_ascii_digit();
        let mut run = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() != digits {
                break;
            }
            run.push(d);
            chars.next();
        }
        if digits {
            let value = run
                .trim_start_matches('0')
                .parse::<u128>()
                .unwrap_or(u128::MAX);
            key.push((0, value, run));
        } else {
            key.push((1, 0, run));
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: usize) {
        std::fs::write(path, vec![1u8; bytes]).unwrap();
    }

    #[test]
    fn a_file_is_handed_over_once_complete_and_in_volume_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut watch = FolderWatch::new(dir.path(), &[".dcm"], Duration::from_millis(500));
        let t0 = Instant::now();
        write(&dir.path().join("vol10.dcm"), 100);
        write(&dir.path().join("vol9.dcm"), 100);
        write(&dir.path().join("notes.txt"), 5);
        // First sight: sizes recorded, nothing handed over yet.
        assert!(watch.poll_at(t0).unwrap().is_empty());
        // vol9 kept its size and a later file exists: complete. vol10 is the newest and must
        // wait for the settle time.
        let ready = watch.poll_at(t0 + Duration::from_millis(100)).unwrap();
        assert_eq!(ready, [dir.path().join("vol9.dcm")]);
        // Still being written: it grows, so it is not handed over.
        write(&dir.path().join("vol10.dcm"), 200);
        assert!(watch
            .poll_at(t0 + Duration::from_millis(700))
            .unwrap()
            .is_empty());
        assert!(watch
            .poll_at(t0 + Duration::from_millis(900))
            .unwrap()
            .is_empty());
        let ready = watch.poll_at(t0 + Duration::from_millis(1300)).unwrap();
        assert_eq!(ready, [dir.path().join("vol10.dcm")]);
        // Never twice; an empty file waits.
        write(&dir.path().join("vol11.dcm"), 0);
        assert!(watch
            .poll_at(t0 + Duration::from_secs(5))
            .unwrap()
            .is_empty());
        assert!(watch
            .poll_at(t0 + Duration::from_secs(9))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn natural_order_reads_digit_runs_as_numbers() {
        let mut names = [
            "001_000007_000010.dcm",
            "001_000007_000002.dcm",
            "img10.nii",
            "img2.nii",
            "img1.nii",
        ]
        .map(PathBuf::from)
        .to_vec();
        names.sort_by_key(|p| natural_key(p));
        let sorted: Vec<_> = names
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            sorted,
            [
                "001_000007_000002.dcm",
                "001_000007_000010.dcm",
                "img1.nii",
                "img2.nii",
                "img10.nii"
            ]
        );
    }
}
