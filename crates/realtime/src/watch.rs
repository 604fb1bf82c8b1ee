//! The folder a scanner's real-time export fills, one file per volume or per slice (Siemens'
//! ideacmdtool or a Philips/GE export, as OpenNFT's and rt-cloud's watchers read it).
//!
//! Change notification (Linux inotify) says which files were created, written or closed, so
//! the cost of a poll is that of the files that changed, not of the whole folder: a one-hour
//! single-frame session writes tens of thousands of files. A full listing still runs every
//! [`RESCAN_EVERY`] (and whenever notification is unavailable or its queue overflowed), and
//! it only looks at files it has not handed over.
//!
//! A file is handed over once its size has held over one poll, or as soon as its writer
//! closed it. It is *settled* once its size has not changed for `settle`: an export tool may
//! write a file in several chunks, closing it between them, and names its files by random UIDs
//! (a later name says nothing of an earlier file). A reader that finds an unsettled file
//! incomplete gives it back with [`FolderWatch::retry`] and gets it again when it changes or
//! settles. Only a settled file that does not read is broken; if its size changes later (a
//! copy that stalled, then went on) it is handed over again ([`FolderWatch::refuse`]). The
//! files of one poll come out in natural name order (the reader orders volumes by their
//! headers).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the whole folder is listed while change notification works: a bound on how long
/// a file whose event was lost can wait.
pub const RESCAN_EVERY: Duration = Duration::from_secs(2);

/// Polls a folder for finished volume files.
#[derive(Debug)]
pub struct FolderWatch {
    dir: PathBuf,
    suffixes: Vec<String>,
    settle: Duration,
    /// Files handed over, with their size then and since when it had held.
    handed_over: BTreeMap<PathBuf, (u64, Instant)>,
    /// Files seen but not handed over (or given back): their size at the last look and since
    /// when it held.
    growing: BTreeMap<PathBuf, (u64, Instant)>,
    /// Handed-over files the reader refused: handed over again if their size changes (a
    /// copy that stalled for longer than the settle time, then went on).
    refused: BTreeSet<PathBuf>,
    /// Change notification on the folder, where the system gives it.
    notify: Option<inotify::Inotify>,
    /// Files closed by their writer since they were last looked at.
    closed: BTreeSet<PathBuf>,
    /// When the folder was last listed whole (None: never).
    listed_at: Option<Instant>,
}

/// A file handed over by [`FolderWatch::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The file, inside the watched folder.
    pub path: PathBuf,
    /// Its size has held for the settle time: if it does not read now, it never will.
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
            notify: notifier(dir),
            closed: BTreeSet::new(),
            listed_at: None,
        }
    }

    /// The folder watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether change notification is in use (else every poll lists the folder).
    pub fn notified(&self) -> bool {
        self.notify.is_some()
    }

    /// Files whose size held since the last poll, or that their writer closed, in natural
    /// name order, each once (unless given back with [`FolderWatch::retry`]).
    pub fn poll(&mut self) -> std::io::Result<Vec<Ready>> {
        self.poll_at(Instant::now())
    }

    /// Gives back a file [`FolderWatch::poll`] handed over that was not complete yet: it is
    /// handed over again once it changes and its size holds, or once it settles.
    pub fn retry(&mut self, path: &Path) {
        if let Some(state) = self.handed_over.remove(path) {
            self.growing.insert(path.to_path_buf(), state);
        }
    }

    /// How long a handed-over file's size has held (None for a file not handed over).
    pub fn stable_for(&self, path: &Path) -> Option<Duration> {
        self.handed_over.get(path).map(|(_, since)| since.elapsed())
    }

    /// Marks a settled file the reader could not read: it is handed over again if its size
    /// ever changes.
    pub fn refuse(&mut self, path: &Path) {
        if self.handed_over.contains_key(path) {
            self.refused.insert(path.to_path_buf());
        }
    }

    fn wanted(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        !name.starts_with('.') && self.suffixes.iter().any(|s| name.ends_with(s.as_str()))
    }

    /// The files to look at now: those named by change events (or, on a rescan, every file not
    /// handed over), plus those still growing or refused.
    fn candidates(&mut self, now: Instant) -> std::io::Result<BTreeSet<PathBuf>> {
        let mut names = BTreeSet::new();
        let mut rescan = self
            .listed_at
            .is_none_or(|at| now.duration_since(at) >= RESCAN_EVERY);
        match self.notify.as_mut() {
            Some(notify) => {
                let mut buffer = [0u8; 16384];
                loop {
                    match notify.read_events(&mut buffer) {
                        Ok(events) => {
                            let mut any = false;
                            for event in events {
                                any = true;
                                if event.mask.contains(inotify::EventMask::Q_OVERFLOW) {
                                    rescan = true;
                                }
                                let Some(name) = event.name.and_then(|n| n.to_str()) else {
                                    continue;
                                };
                                let path = self.dir.join(name);
                                if event.mask.intersects(
                                    inotify::EventMask::CLOSE_WRITE | inotify::EventMask::MOVED_TO,
                                ) {
                                    self.closed.insert(path.clone());
                                }
                                names.insert(path);
                            }
                            if !any {
                                break;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            // Notification failed: list every poll from now on.
                            self.notify = None;
                            rescan = true;
                            break;
                        }
                    }
                }
            }
            None => rescan = true,
        }
        if rescan {
            self.listed_at = Some(now);
            for entry in std::fs::read_dir(&self.dir)? {
                let path = entry?.path();
                if !self.handed_over.contains_key(&path) {
                    names.insert(path);
                }
            }
        }
        names.extend(self.growing.keys().cloned());
        names.extend(self.refused.iter().cloned());
        names.retain(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| self.wanted(n))
        });
        Ok(names)
    }

    fn poll_at(&mut self, now: Instant) -> std::io::Result<Vec<Ready>> {
        let first_listing = self.listed_at.is_none();
        let candidates = self.candidates(now)?;
        if first_listing && self.notify.is_some() {
            // Files there before the watch began have no close event to come: handed over now
            // with those that do, so the volumes of one poll stay in order (a file still being
            // written is given back by the reader, as any other).
            self.closed.extend(candidates.iter().cloned());
        }
        Ok(self.look_at(candidates, now))
    }

    /// Sizes `candidates` and hands over those whose size held or that were closed.
    fn look_at(&mut self, candidates: BTreeSet<PathBuf>, now: Instant) -> Vec<Ready> {
        let mut ready = Vec::new();
        for path in candidates {
            // A file removed meanwhile, or not a file, is skipped.
            let size = match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => meta.len(),
                _ => {
                    self.growing.remove(&path);
                    self.closed.remove(&path);
                    continue;
                }
            };
            let closed = self.closed.remove(&path);
            if let Some(&(handed_size, _)) = self.handed_over.get(&path) {
                if handed_size != size && self.refused.remove(&path) {
                    self.handed_over.remove(&path);
                    self.growing.insert(path, (size, now));
                }
                continue;
            }
            let stable_since = match self.growing.get(&path) {
                Some(&(previous, since)) if previous == size => Some(since),
                _ => None,
            };
            let since = stable_since.unwrap_or(now);
            let settled = now.duration_since(since) >= self.settle;
            if size > 0 && (stable_since.is_some() || closed) {
                self.growing.remove(&path);
                self.handed_over.insert(path.clone(), (size, since));
                ready.push(Ready { path, settled });
            } else if stable_since.is_none() {
                self.growing.insert(path, (size, now));
            }
        }
        ready.sort_by_cached_key(|r| natural_key(&r.path));
        ready
    }
}

/// Change notification on `dir` (created, written, closed after writing, moved in), or None
/// where the system does not give it.
fn notifier(dir: &Path) -> Option<inotify::Inotify> {
    let notify = inotify::Inotify::init().ok()?;
    notify
        .watches()
        .add(
            dir,
            inotify::WatchMask::CREATE
                | inotify::WatchMask::MODIFY
                | inotify::WatchMask::CLOSE_WRITE
                | inotify::WatchMask::MOVED_TO,
        )
        .ok()?;
    Some(notify)
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

    /// A watch that lists the folder every poll (as where notification is unavailable).
    fn listing_watch(dir: &Path, settle_ms: u64) -> FolderWatch {
        let mut watch = FolderWatch::new(dir, &[".dcm"], Duration::from_millis(settle_ms));
        watch.notify = None;
        watch
    }

    #[test]
    fn a_file_is_handed_over_once_its_size_holds_and_settles_only_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut watch = listing_watch(dir.path(), 500);
        let t0 = Instant::now();
        write(&dir.path().join("vol10.dcm"), 100);
        write(&dir.path().join("vol9.dcm"), 100);
        write(&dir.path().join("notes.txt"), 5);
        write(&dir.path().join(".vol11.dcm.partial"), 5);
        // First sight: sizes recorded, nothing handed over yet.
        assert!(watch.poll_at(t0).unwrap().is_empty());
        // Both kept their size: handed over in natural order, neither settled (a later name
        // says nothing: export tools name files by random UIDs).
        let ready = watch.poll_at(t0 + Duration::from_millis(20)).unwrap();
        assert_eq!(
            names(&ready),
            [("vol9.dcm".into(), false), ("vol10.dcm".into(), false)]
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
    fn a_closed_file_is_handed_over_at_once_and_a_full_folder_is_not_looked_at_again() {
        let dir = tempfile::tempdir().unwrap();
        // A folder already full (a one-hour single-frame session): listed once, at the first
        // poll, and every RESCAN_EVERY after, not at every poll.
        const FULL: usize = 20_000;
        for k in 0..FULL {
            write(&dir.path().join(format!("old-{k}.dcm")), 10);
        }
        let mut watch = FolderWatch::new(dir.path(), &[".dcm"], Duration::from_millis(500));
        if !watch.notified() {
            // The listing path is tested above; this one needs the kernel's notifications.
            return brainrecon_testkit::cannot_run(
                "the change-notified watch of a full folder",
                "inotify is not available here",
            );
        }
        let t0 = Instant::now();
        // Files already there are handed over at the first poll (they have no event to come).
        assert_eq!(watch.poll_at(t0).unwrap().len(), FULL);
        // A file written and closed is handed over at the next poll, without waiting for its
        // size to hold; the files handed over are not looked at again.
        write(&dir.path().join("new.dcm"), 50);
        let started = Instant::now();
        let now = t0 + Duration::from_millis(40);
        let candidates = watch.candidates(now).unwrap();
        assert_eq!(candidates.len(), 1, "only the new file is looked at");
        let ready = watch.look_at(candidates, now);
        let poll = started.elapsed();
        eprintln!(
            "a poll among {FULL} files handed over: {:.2} ms",
            poll.as_secs_f64() * 1000.0
        );
        // Looking only at the new file takes well under a millisecond; listing the folder
        // again would take tens (a generous bound: the tests share two cores).
        assert!(poll < Duration::from_millis(50), "{poll:?}");
        assert_eq!(names(&ready), [("new.dcm".into(), false)]);
        assert!(watch.growing.is_empty());
        // The bounded rescan lists the folder and looks at nothing it handed over.
        let started = Instant::now();
        let rescan = watch.candidates(t0 + RESCAN_EVERY * 2).unwrap();
        let listed = started.elapsed();
        eprintln!(
            "a rescan of {FULL} files handed over: {:.2} ms",
            listed.as_secs_f64() * 1000.0
        );
        assert!(listed < Duration::from_secs(2), "{listed:?}");
        assert!(rescan.is_empty(), "{rescan:?}");
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
