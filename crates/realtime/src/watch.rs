//! The folder a scanner's real-time export fills, one file per volume or per slice (Siemens'
//! ideacmdtool or a Philips/GE export, as OpenNFT's and rt-cloud's watchers read it).
//!
//! A file is handed over as soon as it has kept its size over one poll. It is *settled* once
//! its size has not changed for `settle`, or a later file has appeared (the scanner moved
//! on). A reader that finds an unsettled file incomplete gives it back with
//! [`FolderWatch::retry`] and gets it again later, so a finished file waits one poll, not the
//! settle time. Only a settled file that does not read is broken; if its size changes later
//! (a copy that stalled, then went on) it is handed over again ([`FolderWatch::refuse`]).
//! Files come out in natural name order (volume numbers need not be zero-padded).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Polls a folder for finished volume files.
#[derive(Debug)]
pub struct FolderWatch {
    dir: PathBuf,
    suffixes: Vec<String>,
    settle: Duration,
    /// Files handed over, with their size then and since when it had held.
    handed_over: BTreeMap<PathBuf, (u64, Instant)>,
    /// Files seen but not handed over: their size at the last poll and since when.
    growing: BTreeMap<PathBuf, (u64, Instant)>,
    /// Handed-over files the reader refused: handed over again if their size changes (a
    /// copy that stalled for longer than the settle time, then went on).
    refused: BTreeSet<PathBuf>,
}

/// A file handed over by [`FolderWatch::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub path: PathBuf,
    /// Its size has held for the settle time, or a later file exists: if it does not read
    /// now, it never will.
    pub settled: bool,
}

impl FolderWatch {
    /// Watches `dir` for files ending in one of `suffixes` (case-insensitive, e.g. ".dcm",
    /// ".ima", ".nii", ".nii.gz"); files already there count as new.
    pub fn new(dir: &Path, suffixes: &[&str], settle: Duration) -> FolderWatch {
        FolderWatch {
            dir: dir.to_path_buf(),
            suffixes: suffixes.iter().map(|s| s.to_ascii_lowercase()).collect(),
            settle,
            handed_over: BTreeMap::new(),
            growing: BTreeMap::new(),
            refused: BTreeSet::new(),
        }
    }

    /// The folder watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Files whose size held since the last poll, in natural name order, each once (unless
    /// given back with [`FolderWatch::retry`]).
    pub fn poll(&mut self) -> std::io::Result<Vec<Ready>> {
        self.poll_at(Instant::now())
    }

    /// Gives back a file [`FolderWatch::poll`] handed over that was not complete yet: it is
    /// handed over again once its size has held over another poll.
    pub fn retry(&mut self, path: &Path) {
        if let Some(state) = self.handed_over.remove(path) {
            self.growing.insert(path.to_path_buf(), state);
        }
    }

    /// Marks a settled file the reader could not read: it is handed over again if its size
    /// ever changes.
    pub fn refuse(&mut self, path: &Path) {
        if self.handed_over.contains_key(path) {
            self.refused.insert(path.to_path_buf());
        }
    }

    fn poll_at(&mut self, now: Instant) -> std::io::Result<Vec<Ready>> {
        let mut listed = self.listing()?;
        listed.sort_by_cached_key(|(path, _)| natural_key(path));
        let mut ready = Vec::new();
        let last = listed.len();
        for (index, (path, size)) in listed.into_iter().enumerate() {
            if let Some(&(handed_size, _)) = self.handed_over.get(&path) {
                if handed_size != size && self.refused.remove(&path) {
                    self.handed_over.remove(&path);
                    self.growing.insert(path, (size, now));
                }
                continue;
            }
            let later_file_exists = index + 1 < last;
            let stable_since = match self.growing.get(&path) {
                Some(&(previous, since)) if previous == size => Some(since),
                _ => None,
            };
            match stable_since {
                Some(since) if size > 0 => {
                    let settled = later_file_exists || now.duration_since(since) >= self.settle;
                    self.growing.remove(&path);
                    self.handed_over.insert(path.clone(), (size, since));
                    ready.push(Ready { path, settled });
                }
                Some(_) => {}
                None => {
                    self.growing.insert(path, (size, now));
                }
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

    fn names(ready: &[Ready]) -> Vec<(String, bool)> {
        ready
            .iter()
            .map(|r| {
                (
                    r.path.file_name().unwrap().to_string_lossy().into_owned(),
                    r.settled,
                )
            })
            .collect()
    }

    #[test]
    fn a_file_is_handed_over_once_its_size_holds_and_given_back_until_it_settles() {
        let dir = tempfile::tempdir().unwrap();
        let mut watch = FolderWatch::new(dir.path(), &[".dcm"], Duration::from_millis(500));
        let t0 = Instant::now();
        write(&dir.path().join("vol10.dcm"), 100);
        write(&dir.path().join("vol9.dcm"), 100);
        write(&dir.path().join("notes.txt"), 5);
        write(&dir.path().join(".vol11.dcm.partial"), 5);
        // First sight: sizes recorded, nothing handed over yet.
        assert!(watch.poll_at(t0).unwrap().is_empty());
        // Both kept their size: handed over in volume order; vol9 is settled (a later file
        // exists), vol10, the newest, is not.
        let ready = watch.poll_at(t0 + Duration::from_millis(20)).unwrap();
        assert_eq!(
            names(&ready),
            [("vol9.dcm".into(), true), ("vol10.dcm".into(), false)]
        );
        // The reader found vol10 incomplete and gave it back; it grows meanwhile.
        watch.retry(&dir.path().join("vol10.dcm"));
        write(&dir.path().join("vol10.dcm"), 200);
        assert!(watch
            .poll_at(t0 + Duration::from_millis(40))
            .unwrap()
            .is_empty());
        let ready = watch.poll_at(t0 + Duration::from_millis(60)).unwrap();
        assert_eq!(names(&ready), [("vol10.dcm".into(), false)]);
        // Given back again (still unreadable), it settles after 500 ms of the same size.
        watch.retry(&dir.path().join("vol10.dcm"));
        let ready = watch.poll_at(t0 + Duration::from_millis(600)).unwrap();
        assert_eq!(names(&ready), [("vol10.dcm".into(), true)]);
        // Never twice unless given back; an empty file waits.
        write(&dir.path().join("vol12.dcm"), 0);
        assert!(watch
            .poll_at(t0 + Duration::from_secs(5))
            .unwrap()
            .is_empty());
        assert!(watch
            .poll_at(t0 + Duration::from_secs(9))
            .unwrap()
            .is_empty());
        // vol10 was refused once settled; a copy that stalled and then went on makes it grow:
        // it is handed over again once its new size holds. A file read fine is not.
        watch.refuse(&dir.path().join("vol10.dcm"));
        write(&dir.path().join("vol10.dcm"), 300);
        write(&dir.path().join("vol9.dcm"), 300);
        assert!(watch
            .poll_at(t0 + Duration::from_secs(10))
            .unwrap()
            .is_empty());
        let ready = watch.poll_at(t0 + Duration::from_secs(11)).unwrap();
        assert_eq!(names(&ready), [("vol10.dcm".into(), true)]);
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
