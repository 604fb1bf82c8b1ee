//! Files and folders written so that a reader never sees half of one.
//!
//! - [`write_atomic`] and friends write a file into a hidden temporary sibling, flush it to
//!   disk, then rename it over the target; [`PendingFile`] does the same for a file written
//!   piece by piece (a streamed array, a chunked HDF5 file).
//! - [`OutputDir`] is the one protocol for output folders: work happens in `<out>.partial`
//!   beside `out`; [`OutputDir::commit`] renames it to `out` (replacing an earlier output), and
//!   [`OutputDir::abort`] removes it. A resumable job records its settings in the staging
//!   folder and continues an interrupted run only when they match ([`OutputDir::resume_if`]).
//! - [`write_folder_once`] writes a folder that any writer makes alike (a cache entry) through
//!   a staging folder of its own, keeping the first complete copy.

use crate::error::{DataError, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// `.<name>.tmp-<pid>x<host>` beside `path`: hidden, and unique to this process. The temporary files
/// that writers killed mid-write left in that folder are removed first ([`remove_dead_temps`]).
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    remove_dead_temps(path.parent().unwrap_or(Path::new("")));
    path.with_file_name(format!(".{name}.tmp-{}", writer_tag()))
}

/// This process in temporary names: `<pid>x<host>`, the host a hash of the machine's name, so
/// that on a filesystem several nodes share (a Slurm job's tasks) a writer only ever removes
/// the temporary files of its own machine's dead processes.
fn writer_tag() -> String {
    format!("{}x{}", std::process::id(), host_tag())
}

/// 8 hex digits of FNV-1a over the machine's name.
fn host_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let hash = name.trim().bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ b as u32).wrapping_mul(0x0100_0193)
        });
        format!("{hash:08x}")
    })
}

/// The process id and host tag a temporary name of this module carries
/// (`.<name>.tmp-<pid>x<host>`, `.tmp-<pid>x<host>-<name>`), if it is one.
fn temp_owner(name: &str) -> Option<(u32, &str)> {
    if !name.starts_with('.') {
        return None;
    }
    let tag = match name.strip_prefix(".tmp-") {
        Some(rest) => rest.split_once('-')?.0,
        None => name.rsplit_once(".tmp-")?.1,
    };
    let (pid, host) = tag.split_once('x')?;
    Some((pid.parse().ok()?, host))
}

/// Removes, once per folder and process, the temporary files and folders of writers that
/// died (a kill, a power cut) before renaming them: their process no longer runs. A live
/// writer's, this process's included, are left alone. So are output locks
/// ([`OutputLock`]) that a writer killed between its commit and its clean-up left behind and
/// no process holds.
pub fn remove_dead_temps(dir: &Path) {
    static CLEANED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    {
        let mut cleaned = CLEANED.lock().unwrap_or_else(|e| e.into_inner());
        if cleaned.iter().any(|d| d == dir) {
            return;
        }
        cleaned.push(dir.to_path_buf());
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_lock_name(&name) {
            remove_unheld_lock(&entry.path());
            continue;
        }
        let Some((pid, host)) = temp_owner(&name) else {
            continue;
        };
        if host != host_tag() {
            continue; // another machine's writer: alive or not, not ours to judge
        }
        let alive = pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists();
        if !alive {
            let path = entry.path();
            let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir_all(&path));
        }
    }
}

/// Whether `name` is an [`OutputLock`]'s, `.<name>.lock`.
fn is_lock_name(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(".lock"))
        .is_some_and(|stem| !stem.is_empty())
}

/// Removes the lock file at `path` when no process holds it: it is taken, checked to be the
/// file still at `path` (and empty, as locks are), and removed while held, so a writer that
/// opened it meanwhile finds it gone and takes a new one ([`OutputLock::acquire`]).
fn remove_unheld_lock(path: &Path) {
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(path) else {
        return;
    };
    if file.metadata().map_or(true, |m| m.len() != 0) {
        return;
    }
    if file.try_lock().is_ok() && same_file(&file, path) {
        let _ = std::fs::remove_file(path);
    }
}

/// Writes a file atomically: readers see either the old file or the complete new one. The
/// parent folder is created when missing; on failure the temporary file is removed.
pub fn write_atomic<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
{
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
        }
    }
    let tmp = temp_sibling(path);
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        fill(&mut writer)?;
        writer.flush()?;
        writer.get_ref().sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::io(path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
}

/// A file written piece by piece into its hidden temporary sibling ([`temp_sibling`]) and
/// renamed over its path by [`PendingFile::commit`]: readers never see it half-written.
/// Dropped uncommitted (an error, a panic), the temporary file is removed.
pub struct PendingFile {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl PendingFile {
    /// Starts the temporary file of `path` (its parent folder created when missing).
    pub fn create(path: &Path) -> Result<PendingFile> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
            }
        }
        let tmp = temp_sibling(path);
        let file = File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        Ok(PendingFile {
            path: path.to_path_buf(),
            tmp,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// Where the file will be once committed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file being written (for error messages about a failed write).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    fn out(&mut self) -> &mut BufWriter<File> {
        self.out
            .as_mut()
            .expect("an uncommitted file has its writer")
    }

    /// Flushes the file to disk and renames it over its path.
    pub fn commit(mut self) -> Result<()> {
        let mut out = self.out.take().expect("an uncommitted file has its writer");
        let flushed = out.flush().and_then(|_| out.get_ref().sync_all());
        drop(out);
        if let Err(e) = flushed {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(DataError::io(&self.path, e));
        }
        if let Err(e) = std::fs::rename(&self.tmp, &self.path) {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(DataError::io(&self.path, e));
        }
        if let Some(parent) = self.path.parent() {
            sync_dir(if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            });
        }
        Ok(())
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.out().write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out().flush()
    }
}

impl Seek for PendingFile {
    fn seek(&mut self, position: SeekFrom) -> std::io::Result<u64> {
        self.out().seek(position)
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes a file atomically through a writer that only takes a path (a library that opens the
/// file itself, and may pick its encoding from the name's ending, as NIfTI's `.nii.gz` does).
/// `write` gets `.tmp-<pid>x<host>-<name>` beside `path`: hidden, with the name's ending kept. The
/// result is flushed to disk and renamed over `path`; on failure the temporary file is removed
/// and the writer's error becomes a [`DataError::Format`] naming `path` and `format`.
pub fn write_atomic_via_path<E: std::fmt::Display>(
    path: &Path,
    format: &str,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    remove_dead_temps(dir);
    let tmp = dir.join(format!(".tmp-{}-{name}", writer_tag()));
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::format(path, format, e));
    }
    if let Err(e) = File::open(&tmp).and_then(|f| f.sync_all()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::io(path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// Writes `value` as pretty JSON to `path` atomically.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| DataError::format(path, "JSON", e))?;
    write_bytes_atomic(path, &text)
}

/// Reads JSON from `path`, naming the file in any error; a leading UTF-8 byte-order mark (BIDS
/// sidecars saved by Windows tools) is dropped, as MNE-BIDS's `utf-8-sig` reading drops it.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = crate::text::read_bounded(path)?;
    serde_json::from_slice(crate::text::bytes_without_bom(&bytes))
        .map_err(|e| DataError::format(path, "JSON", e))
}

/// Removes the folder `path` so that no reader ever finds part of it: it is first renamed to
/// its temporary sibling ([`temp_sibling`]), then removed. A process killed while removing
/// leaves only that hidden sibling, which [`remove_dead_temps`] clears later; `path` itself is
/// either whole or gone. A missing `path` is not an error.
pub fn remove_dir_atomic(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let doomed = temp_sibling(path);
    if doomed.exists() {
        std::fs::remove_dir_all(&doomed).map_err(|e| DataError::io(&doomed, e))?;
    }
    std::fs::rename(path, &doomed).map_err(|e| DataError::io(path, e))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent);
    }
    std::fs::remove_dir_all(&doomed).map_err(|e| DataError::io(&doomed, e))
}

/// Flushes a folder's entries (a rename inside it) to disk; a no-op where folders cannot be
/// opened (Windows).
pub fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// `<out>.partial`: the staging folder of `out`, beside it so that the final rename stays on
/// one file system.
pub fn staging_path(out: &Path) -> PathBuf {
    sibling(out, "partial")
}

fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let name = out
        .file_name()
        .map_or("out".into(), |n| n.to_string_lossy().into_owned());
    out.with_file_name(format!("{name}.{suffix}"))
}

/// True when `path` holds something: a non-empty folder, or anything that is not a folder.
fn holds_something(path: &Path) -> bool {
    path.exists()
        && std::fs::read_dir(path)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
}

/// The texts with which a job refuses an `--out`; they name what the job writes (a subject, a
/// run set), so each is a pair (what was expected, what was found).
#[derive(Debug, Clone, Copy)]
pub struct Refusals<'a> {
    /// `--out` holds a finished output written with other settings.
    pub other_settings: [&'a str; 2],
    /// `--out` holds something that is no finished output (a non-empty folder, or a file).
    pub not_empty: [&'a str; 2],
}

impl Refusals<'_> {
    /// The error for an `out` finished with other settings.
    pub fn other_settings_error(&self, out: &Path) -> DataError {
        let [expected, found] = self.other_settings;
        DataError::invalid(out, "--out", expected, found)
    }

    /// The error for an `out` that holds something else.
    pub fn not_empty_error(&self, out: &Path) -> DataError {
        let [expected, found] = self.not_empty;
        DataError::invalid(out, "--out", expected, found)
    }
}

/// An output folder being written: everything goes into [`OutputDir::path`] (the staging
/// folder) until [`OutputDir::commit`] moves it into place.
///
/// Dropping it without a commit leaves the staging folder where it is, so that a killed or
/// failed resumable job can continue; [`OutputDir::abort`] (or [`OutputDir::run`]'s error path)
/// removes it.
#[derive(Debug)]
pub struct OutputDir {
    out: PathBuf,
    staging: PathBuf,
    /// Held while the folder is being written: a second process given the same `--out` (a
    /// user's rerun beside a Slurm requeue) is refused instead of writing into it too.
    _lock: OutputLock,
}

/// An exclusive lock on writing one output folder: `.<name>.lock` beside it, locked with the
/// system's advisory file lock (released by the kernel when the process dies, so a killed run
/// never blocks the next), removed when the writer is done.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    file: Option<File>,
}

impl OutputLock {
    /// Takes the lock on writing `out`, or refuses when another process holds it.
    pub fn acquire(out: &Path) -> Result<OutputLock> {
        let name = out
            .file_name()
            .map_or("out".into(), |n| n.to_string_lossy().into_owned());
        let path = out.with_file_name(format!(".{name}.lock"));
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
        }
        loop {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| DataError::io(&path, e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(DataError::invalid(
                        out,
                        "--out",
                        "a folder no other brainrecon process is writing",
                        format!(
                            "one being written by another process (it holds {}): wait for it to end, or choose another --out",
                            path.display()
                        ),
                    ))
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(DataError::io(&path, e)),
            }
            // The holder before us removes the file before it unlocks: a lock taken on a file
            // no longer at `path` is no lock, so take it again on the one there now.
            if same_file(&file, &path) {
                return Ok(OutputLock {
                    path,
                    file: Some(file),
                });
            }
        }
    }
}

/// Whether the open `file` is the file at `path` (same device and inode).
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Removed while still locked, then unlocked by closing.
        let _ = std::fs::remove_file(&self.path);
        self.file.take();
    }
}

/// What [`OutputDir::resume_if`] found.
#[derive(Debug)]
pub enum Resume {
    /// `out` is already a finished output of the same settings: nothing to do.
    Finished(PathBuf),
    /// An interrupted run with the same settings: its staging folder, to continue.
    Resumed(OutputDir),
    /// Nothing before: a new staging folder holding the settings file.
    Fresh(OutputDir),
}

impl OutputDir {
    /// Starts `out` afresh: a new, empty staging folder (an earlier one is removed). On commit
    /// the folder replaces whatever `out` held.
    pub fn create(out: &Path) -> Result<OutputDir> {
        let lock = OutputLock::acquire(out)?;
        let staging = staging_path(out);
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
        }
        std::fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
        Ok(OutputDir {
            out: out.to_path_buf(),
            staging,
            _lock: lock,
        })
    }

    /// Opens `out` for a resumable job with `settings`, kept as `settings_file` inside the
    /// folder; `finished` names the file whose presence marks a finished output.
    ///
    /// - `out` finished with the same settings: [`Resume::Finished`];
    /// - `out` finished with other settings, or a non-empty folder that is no finished output:
    ///   refused (`--out` names the folder);
    /// - a staging folder with the same settings: [`Resume::Resumed`]; with others: refused;
    /// - else a new staging folder with the settings written: [`Resume::Fresh`].
    pub fn resume_if<S>(
        out: &Path,
        settings_file: &str,
        finished: &str,
        settings: &S,
    ) -> Result<Resume>
    where
        S: Serialize + DeserializeOwned + PartialEq,
    {
        let not_output = format!("a non-empty directory without {finished}");
        let refusals = Refusals {
            other_settings: [
                "a new directory, or one written with the same settings",
                "an output written with other settings: choose another --out or remove it",
            ],
            not_empty: ["a new or empty directory", &not_output],
        };
        Self::resume_with(out, settings_file, finished, settings, &refusals)
    }

    /// [`OutputDir::resume_if`] with the job's own texts for refusing `out`.
    pub fn resume_with<S>(
        out: &Path,
        settings_file: &str,
        finished: &str,
        settings: &S,
        refusals: &Refusals<'_>,
    ) -> Result<Resume>
    where
        S: Serialize + DeserializeOwned + PartialEq,
    {
        let lock = OutputLock::acquire(out)?;
        if out.join(finished).exists() {
            let previous: Option<S> = read_json(&out.join(settings_file)).ok();
            if previous.as_ref() == Some(settings) {
                return Ok(Resume::Finished(out.to_path_buf()));
            }
            return Err(refusals.other_settings_error(out));
        }
        if holds_something(out) {
            return Err(refusals.not_empty_error(out));
        }
        let staging = staging_path(out);
        let dir = OutputDir {
            out: out.to_path_buf(),
            staging: staging.clone(),
            _lock: lock,
        };
        // A staging folder without its settings file is a run killed as it began (between
        // making the folder and writing the file, which is atomic): nothing to keep.
        if staging.exists() && !staging.join(settings_file).is_file() {
            std::fs::remove_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
        }
        if staging.exists() {
            let previous: Option<S> = read_json(&staging.join(settings_file)).ok();
            if previous.as_ref() != Some(settings) {
                return Err(DataError::invalid(
                    &staging,
                    "resume",
                    "the settings of the interrupted run",
                    "different settings: remove this directory to start again",
                ));
            }
            return Ok(Resume::Resumed(dir));
        }
        std::fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
        write_json_atomic(&staging.join(settings_file), settings)?;
        Ok(Resume::Fresh(dir))
    }

    /// Starts `out` afresh ([`OutputDir::create`]) where it is new or an empty folder; anything
    /// else is refused with `not_empty` (what was expected, what was found), so no earlier
    /// output or user file is replaced.
    pub fn create_empty(out: &Path, not_empty: [&str; 2]) -> Result<OutputDir> {
        if holds_something(out) {
            let [expected, found] = not_empty;
            return Err(DataError::invalid(out, "--out", expected, found));
        }
        Self::create(out)
    }

    /// The staging folder, where everything is written before the commit.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The final folder.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Moves the staging folder to `out`. An earlier `out` is first renamed to `<out>.old` and
    /// removed once the new one is in place, so `out` is never half-written.
    pub fn commit(self) -> Result<PathBuf> {
        let OutputDir {
            out,
            staging,
            _lock,
        } = self;
        let old = sibling(&out, "old");
        if out.exists() {
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(&out, &old).map_err(|e| DataError::io(&out, e))?;
        }
        std::fs::rename(&staging, &out).map_err(|e| DataError::io(&out, e))?;
        // Also the `<out>.old` of a writer killed between its two renames (out was absent
        // then, so no branch above saw it).
        let _ = std::fs::remove_dir_all(&old);
        if let Some(parent) = out.parent() {
            sync_dir(if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            });
        }
        Ok(out)
    }

    /// Removes the staging folder; `out` stays as it was.
    pub fn abort(self) {
        let _ = std::fs::remove_dir_all(&self.staging);
    }

    /// Runs `write` on the staging folder, then commits; on an error the staging folder is
    /// removed and `out` left as it was.
    pub fn run<T, E>(
        self,
        write: impl FnOnce(&Path) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<DataError>,
    {
        match write(&self.staging) {
            Ok(value) => {
                self.commit()?;
                Ok(value)
            }
            Err(e) => {
                self.abort();
                Err(e)
            }
        }
    }
}

/// Runs `write` on a fresh `<out>.partial`, then moves it to `out`, replacing what was there.
/// On failure the partial folder is removed: `out` is left as it was, never half-written.
pub fn write_folder_atomic<T, E>(
    out: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<T, E>,
) -> std::result::Result<T, E>
where
    E: From<DataError>,
{
    OutputDir::create(out)?.run(write)
}

/// Writes the folder `target` once, for content that every writer makes alike (a cache entry
/// named by a hash of its bytes). When `target` already holds `marker` (the file whose presence
/// marks a complete folder) nothing is written. Else `write` fills a hidden sibling unique to
/// this process ([`temp_sibling`]), so writers running at once never share one; its entries
/// are flushed and it is renamed to `target`. When another writer's complete copy landed
/// first, that copy is kept and this one removed. On failure the sibling is removed and
/// `target` is left as it was.
pub fn write_folder_once<E>(
    target: &Path,
    marker: &str,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E>
where
    E: From<DataError>,
{
    if target.join(marker).is_file() {
        return Ok(());
    }
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    let staging = temp_sibling(target);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    }
    std::fs::create_dir(&staging).map_err(|e| DataError::io(&staging, e))?;
    if let Err(e) = write(&staging) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    sync_dir(&staging);
    match std::fs::rename(&staging, target) {
        Ok(()) => {
            sync_dir(parent);
            Ok(())
        }
        // A folder cannot be renamed over a non-empty one: another writer finished first.
        Err(_) if target.join(marker).is_file() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(DataError::io(target, e).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Settings {
        seed: u64,
    }

    #[test]
    fn the_temporary_files_of_dead_writers_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // A pid no process has (above the kernel's largest) on this machine, this process,
        // and a dead pid of another machine (a node sharing the folder).
        let dead = format!("4194305x{}", host_tag());
        let ours = writer_tag();
        let elsewhere = "4194305xdeadbeef";
        for name in [
            format!(".model.json.tmp-{dead}"),
            format!(".tmp-{dead}-bold.nii.gz"),
            format!(".weights.safetensors.tmp-{ours}"),
            format!(".betas.npy.tmp-{elsewhere}"),
            ".hidden-but-not-ours".to_string(),
            format!("visible.tmp-{dead}"),
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join(format!(".cache.tmp-{dead}"))).unwrap();
        write_bytes_atomic(&dir.path().join("model.json"), b"{}").unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = vec![
            format!(".weights.safetensors.tmp-{ours}"),
            format!(".betas.npy.tmp-{elsewhere}"),
            ".hidden-but-not-ours".to_string(),
            "model.json".to_string(),
            format!("visible.tmp-{dead}"),
        ];
        want.sort();
        assert_eq!(left, want);
        assert_eq!(temp_owner(".a.tmp-12xab12cd34"), Some((12, "ab12cd34")));
        assert_eq!(
            temp_owner(".tmp-12xab12cd34-a.nii.gz"),
            Some((12, "ab12cd34"))
        );
        assert_eq!(temp_owner(".a.tmp-x"), None);
    }

    #[test]
    fn a_folder_removed_atomically_is_whole_or_gone_and_a_killed_removal_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let shards = dir.path().join("shards");
        std::fs::create_dir_all(shards.join("a")).unwrap();
        std::fs::write(shards.join("a/0-of-2.json"), b"{}").unwrap();
        remove_dir_atomic(&shards).unwrap();
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
        remove_dir_atomic(&shards).unwrap();
        // What a removal killed half-way leaves: the renamed folder of a process that is gone
        // (pid 0 never names a user process), part-emptied. The next look at the folder
        // clears it.
        // (Another folder: each is cleared once a process.)
        let train = dir.path().join("train");
        let doomed = train.join(format!(".step-1.tmp-0x{}", host_tag()));
        std::fs::create_dir_all(&doomed).unwrap();
        std::fs::write(doomed.join("params.safetensors"), b"x").unwrap();
        remove_dead_temps(&train);
        assert!(!doomed.exists());
    }

    #[test]
    fn a_commit_clears_the_old_output_a_killed_commit_left() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("recons");
        // Killed between renaming the earlier output aside and moving the new one in.
        std::fs::create_dir_all(dir.path().join("recons.old")).unwrap();
        std::fs::write(dir.path().join("recons.old/manifest.json"), b"{}").unwrap();
        let rerun = OutputDir::create(&out).unwrap();
        std::fs::write(rerun.path().join("manifest.json"), b"{\"complete\": true}").unwrap();
        rerun.commit().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["recons"]);
    }

    #[test]
    fn a_lock_left_by_a_killed_writer_is_removed_and_a_held_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        // A writer killed after its commit leaves its lock file, held by no one.
        std::fs::write(dir.path().join(".step-1.lock"), b"").unwrap();
        // A live writer's lock, and files that only look like locks.
        let live = OutputDir::create(&dir.path().join("recons")).unwrap();
        std::fs::write(dir.path().join(".notes.lock"), b"a user's file").unwrap();
        std::fs::write(dir.path().join("yarn.lock"), b"").unwrap();
        remove_dead_temps(dir.path());
        assert!(!dir.path().join(".step-1.lock").exists());
        assert!(dir.path().join(".recons.lock").is_file());
        assert!(dir.path().join(".notes.lock").is_file());
        assert!(dir.path().join("yarn.lock").is_file());
        live.commit().unwrap();
        assert!(!dir.path().join(".recons.lock").exists());
        assert!(is_lock_name(".a.lock") && !is_lock_name(".lock") && !is_lock_name("a.lock"));
    }

    #[test]
    fn a_second_writer_of_one_output_is_refused_until_the_first_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("recons");
        let first = OutputDir::create(&out).unwrap();
        assert!(dir.path().join(".recons.lock").is_file());
        // A second writer (another process, or another open of the lock) is refused, naming
        // the folder and the lock, and touches nothing.
        for second in [
            OutputDir::create(&out).map(drop),
            OutputDir::resume_if(&out, "settings.json", "done", &Settings { seed: 1 }).map(drop),
        ] {
            let text = second.unwrap_err().to_string();
            assert!(
                text.contains("recons") && text.contains("another process"),
                "{text}"
            );
        }
        assert!(first.path().is_dir(), "the first writer's staging survived");
        first.commit().unwrap();
        assert!(!dir.path().join(".recons.lock").exists());
        OutputDir::create(&out).unwrap().abort();
        assert!(!dir.path().join(".recons.lock").exists());
    }

    #[test]
    fn a_failed_write_leaves_the_old_folder_and_no_staging() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        write_folder_atomic(&out, |p| write_bytes_atomic(&p.join("a"), b"1")).unwrap();
        let failed: Result<()> = write_folder_atomic(&out, |p| {
            write_bytes_atomic(&p.join("a"), b"2")?;
            Err(DataError::Usage("stop".into()))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(out.join("a")).unwrap(), b"1");
        assert!(!staging_path(&out).exists());
        write_folder_atomic(&out, |p| write_bytes_atomic(&p.join("b"), b"3")).unwrap();
        assert!(
            !out.join("a").exists(),
            "a commit replaces the whole folder"
        );
        assert!(!sibling(&out, "old").exists());
    }

    #[test]
    fn a_resumable_job_continues_only_with_its_own_settings() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("subject");
        let first = Settings { seed: 1 };
        let Resume::Fresh(staged) =
            OutputDir::resume_if(&out, ".settings.json", "done.json", &first).unwrap()
        else {
            panic!("expected a fresh folder")
        };
        write_bytes_atomic(&staged.path().join("part"), b"x").unwrap();
        drop(staged); // killed: the staging folder stays
        assert!(
            OutputDir::resume_if(&out, ".settings.json", "done.json", &Settings { seed: 2 })
                .unwrap_err()
                .to_string()
                .contains("different settings")
        );
        let Resume::Resumed(staged) =
            OutputDir::resume_if(&out, ".settings.json", "done.json", &first).unwrap()
        else {
            panic!("expected to resume")
        };
        assert!(staged.path().join("part").exists());
        write_bytes_atomic(&staged.path().join("done.json"), b"{}").unwrap();
        staged.commit().unwrap();
        assert!(matches!(
            OutputDir::resume_if(&out, ".settings.json", "done.json", &first).unwrap(),
            Resume::Finished(_)
        ));
        assert!(
            OutputDir::resume_if(&out, ".settings.json", "done.json", &Settings { seed: 3 })
                .is_err()
        );
    }

    #[test]
    fn a_path_writer_keeps_the_ending_and_leaves_nothing_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.nii.gz");
        write_atomic_via_path(&path, "NIfTI", |tmp| {
            assert!(tmp.to_string_lossy().ends_with(".nii.gz"));
            std::fs::write(tmp, b"x")
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
        let err = write_atomic_via_path(&path, "NIfTI", |tmp| {
            std::fs::write(tmp, b"y")?;
            Err(std::io::Error::other("broken"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("NIfTI"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_folder_written_once_keeps_the_first_complete_copy() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("cache").join("model-1");
        let fill = |byte: u8| {
            move |p: &Path| -> Result<()> {
                write_bytes_atomic(&p.join("data"), &[byte])?;
                write_bytes_atomic(&p.join("done"), b"")
            }
        };
        let failed: Result<()> = write_folder_once(&target, "done", |p| {
            write_bytes_atomic(&p.join("data"), b"x")?;
            Err(DataError::Usage("stop".into()))
        });
        assert!(failed.is_err());
        assert!(!target.exists());
        write_folder_once(&target, "done", fill(1)).unwrap();
        assert_eq!(std::fs::read(target.join("data")).unwrap(), [1]);
        // Complete already: nothing is written.
        write_folder_once(&target, "done", |_| -> Result<()> {
            panic!("written twice")
        })
        .unwrap();
        // A writer that finishes second finds the first copy in place and drops its own.
        std::fs::remove_file(target.join("done")).unwrap();
        let mut raced = false;
        write_folder_once(&target, "done", |p| {
            fill(2)(p)?;
            write_bytes_atomic(&target.join("done"), b"")?;
            raced = true;
            Ok::<(), DataError>(())
        })
        .unwrap();
        assert!(raced);
        assert_eq!(std::fs::read(target.join("data")).unwrap(), [1]);
        let names: Vec<_> = std::fs::read_dir(target.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["model-1"], "no staging folder is left");
    }

    #[test]
    fn a_non_empty_folder_that_is_no_output_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        let err = OutputDir::resume_if(
            dir.path(),
            ".settings.json",
            "done.json",
            &Settings { seed: 1 },
        )
        .unwrap_err();
        assert!(err.to_string().contains("non-empty"), "{err}");
    }

    #[test]
    fn a_pending_file_appears_only_when_committed() {
        let dir = std::env::temp_dir().join(format!("brainrecon-pending-{}", std::process::id()));
        let path = dir.join("sub/out.bin");
        let mut file = PendingFile::create(&path).unwrap();
        file.write_all(b"abcdef").unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.write_all(b"X").unwrap();
        assert!(!path.exists() && file.temp_path().exists());
        file.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"Xbcdef");
        let mut dropped = PendingFile::create(&dir.join("sub/dropped.bin")).unwrap();
        dropped.write_all(b"half").unwrap();
        let tmp = dropped.temp_path().to_path_buf();
        drop(dropped);
        assert!(!tmp.exists() && !dir.join("sub/dropped.bin").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
