//! A session followed as the scanner writes it: every file of the export folder is read once
//! complete ([`FolderWatch`], [`SliceAssembler`]), preprocessed ([`SessionPreprocessor`]) and
//! its motion appended to `OUT/motion.tsv`; the caller hears of it as an [`Event`].
//!
//! ```no_run
//! # use brainrecon_realtime::follow::{Event, FollowOptions, Follower};
//! # use brainrecon_realtime::session::{SessionPreprocessor, SubjectSpace};
//! # use std::sync::atomic::AtomicBool;
//! let options = FollowOptions::new("export".into());
//! let preprocessor =
//!     SessionPreprocessor::new(SubjectSpace::motion_only(), options.session_options()).unwrap();
//! let mut follower = Follower::new(options, preprocessor, "session".as_ref()).unwrap();
//! let stop = AtomicBool::new(false);
//! for event in follower.events(&stop) {
//!     if let Event::Volume(arrived) = event.unwrap() {
//!         println!("volume {}: {:?}", arrived.row.volume, arrived.row.motion);
//!     }
//! }
//! let record = follower.record();
//! ```

use crate::assemble::{Assembled, SliceAssembler};
use crate::read::{error_chain, file_name, read_volumes, FileVolume, SUFFIXES};
use crate::realign::RealignOptions;
use crate::rigid::RigidParams;
use crate::session::{Processed, SessionOptions, SessionPreprocessor};
use crate::watch::{FolderWatch, Ready};
use brainrecon_core::stats::quantile_nearest_rank;
use brainrecon_core::{DataError, Result};
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// How the export folder is followed.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct FollowOptions {
    /// The folder the scanner's real-time export writes into.
    #[cfg_attr(
        feature = "cli",
        arg(long, help = "The folder the scanner's real-time export writes into")
    )]
    pub folder: PathBuf,
    /// Stop after this many volumes.
    #[cfg_attr(feature = "cli", arg(long, help = "Stop after this many volumes"))]
    pub volumes: Option<usize>,
    /// Stop when no new file has arrived for this long (seconds) since the last one was read.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 60.0,
            help = "Stop when no new file has arrived for this long (seconds) since the last one was read"
        )
    )]
    pub idle_seconds: f64,
    /// A file that does not read is given this long without a change of size (ms) before it
    /// counts as broken; a file cut short, [`CUT_SHORT_SETTLES`] times this.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 200,
            help = "A file that does not read is given this long without a change of size (ms) before it counts as broken; a file cut short (still being written), 10 times this"
        )
    )]
    pub settle_ms: u64,
    /// How often the folder is listed (ms).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 20,
            help = "How often the folder is listed (ms)"
        )
    )]
    pub poll_ms: u64,
    /// Gaussian smoothing before realignment (mm FWHM).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 5.0,
            help = "Gaussian smoothing before realignment (mm FWHM)"
        )
    )]
    pub smoothing_mm: f64,
    /// Slices per volume of a single-frame export; `None` learns it from the first volume.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Slices per volume of a single-frame export (one DICOM file per slice); without it, the first volume is stacked when a slice of the second arrives"
        )
    )]
    pub slices: Option<usize>,
}

impl FollowOptions {
    /// The defaults for `folder`: 60 s idle, 200 ms settle, 20 ms polls, 5 mm smoothing.
    pub fn new(folder: PathBuf) -> FollowOptions {
        FollowOptions {
            folder,
            volumes: None,
            idle_seconds: 60.0,
            settle_ms: 200,
            poll_ms: 20,
            smoothing_mm: 5.0,
            slices: None,
        }
    }

    /// Refuses a folder that is not one and non-positive times, slice or volume counts.
    pub fn check(&self) -> Result<()> {
        if !self.folder.is_dir() {
            return Err(DataError::Usage(format!(
                "--folder {}: not a folder",
                self.folder.display()
            )));
        }
        if self.idle_seconds.is_nan() || self.idle_seconds <= 0.0 || self.poll_ms == 0 {
            return Err(DataError::Usage(
                "--idle-seconds and --poll-ms must be positive".into(),
            ));
        }
        if self.slices == Some(0) {
            return Err(DataError::Usage("--slices must be positive".into()));
        }
        if self.volumes == Some(0) {
            // A session that may read nothing would end at once having read nothing.
            return Err(DataError::Usage("--volumes must be positive".into()));
        }
        Ok(())
    }

    /// The session's preprocessing options.
    pub fn session_options(&self) -> SessionOptions {
        SessionOptions {
            realign: RealignOptions {
                smoothing_fwhm_mm: self.smoothing_mm,
                ..RealignOptions::default()
            },
            ..SessionOptions::default()
        }
    }
}

/// One volume's row of motion.tsv.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 0-based volume number in the session: the scanner's (header) number less one, so a
    /// refused volume leaves a gap; unnumbered exports (NIfTI) count arrivals.
    pub volume: usize,
    /// The file that completed the volume.
    pub file: String,
    /// Translations (mm) then rotations (degrees) relative to the first volume.
    pub motion: [f64; 6],
    /// Framewise displacement from the previous volume (Power et al. 2012), mm.
    pub framewise_displacement_mm: f64,
    /// Gauss-Newton iterations of the realignment.
    pub iterations: usize,
    /// From the file's last write to the start of the volume's preprocessing, its reading
    /// included (ms).
    pub wait_ms: f64,
    /// The session's preprocessing of the volume (ms).
    pub processing_ms: f64,
    /// From the file's last write to the end of its preprocessing (ms): `wait_ms` +
    /// `processing_ms`.
    pub latency_ms: f64,
}

/// A volume preprocessed: its row of motion.tsv, what the session made of it, and when its
/// file was last written.
#[derive(Debug, Clone)]
pub struct Arrived {
    /// Its row of motion.tsv.
    pub row: Row,
    /// What the session made of it: motion, samples, z-scores.
    pub processed: Processed,
    /// When its file was last written.
    pub written: SystemTime,
    /// The newest volume of the files one poll found: a consumer that can only keep up with
    /// some volumes handles this one.
    pub last_of_poll: bool,
}

/// A file (or a volume of files) the session could not use; the session goes on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Refused {
    /// The file's name (no folder).
    pub file: String,
    /// Why it was refused.
    pub error: String,
    /// The file itself.
    #[serde(skip)]
    pub path: PathBuf,
    /// Single-frame files of a volume the session ended before completing.
    #[serde(skip)]
    pub unfinished: bool,
}

impl Refused {
    /// The line a log tells of it.
    pub fn log_line(&self) -> String {
        if self.unfinished {
            format!("{}: not processed: {}", self.file, self.error)
        } else {
            format!(
                "{}: refused: {} (the session goes on)",
                self.path.display(),
                self.error
            )
        }
    }
}

/// What following the folder brings.
#[derive(Debug, Clone)]
pub enum Event {
    /// A volume read, preprocessed and written to motion.tsv.
    Volume(Box<Arrived>),
    /// A file that does not read, or a volume that cannot be realigned.
    Refused(Refused),
    /// A poll found no new file; the time since the last one.
    Waiting(Duration),
}

/// How long, in settle times (`--settle-ms`), a file that reads as cut short may hold its size
/// before it counts as broken: 10 (2 s at the default 200 ms). A file that does not read at all
/// is broken once settled, but one that is cut short is known to be unfinished, and export
/// tools write a file in chunks with pauses between them that can outlast one settle time.
pub const CUT_SHORT_SETTLES: u32 = 10;

/// Whether a reader's message says the file ends before what its header declares (the words
/// the DICOM and NIfTI readers end such a message with, or a compressed stream's end).
fn ends_early(message: &str) -> bool {
    message.contains("ends early") || message.contains("end of file")
}

const HEADER: &str = "volume\tfile\ttrans_x_mm\ttrans_y_mm\ttrans_z_mm\trot_x_deg\trot_y_deg\trot_z_deg\tframewise_displacement_mm\trealign_iterations\twait_ms\tprocessing_ms\tlatency_ms\n";

/// Follows the export folder until `volumes` volumes, `idle_seconds` without a file, or the
/// stop flag; see the module's example.
#[derive(Debug)]
pub struct Follower {
    options: FollowOptions,
    preprocessor: SessionPreprocessor,
    watch: FolderWatch,
    assembler: SliceAssembler,
    tsv: File,
    tsv_path: PathBuf,
    last_arrival: Instant,
    rows: Vec<Row>,
    refused: Vec<Refused>,
    queue: VecDeque<Event>,
    ended_by: Option<String>,
    /// The last poll found nothing: wait a poll interval before the next.
    idle: bool,
    /// The number an unnumbered volume takes: one past the highest so far.
    next_volume: usize,
    /// Files given back to the watch because they did not read yet, with why: refused if the
    /// session ends before they do.
    pending: std::collections::BTreeMap<PathBuf, String>,
    /// How long a file cut short may hold its size: [`CUT_SHORT_SETTLES`] settle times.
    cut_short_grace: Duration,
}

impl Follower {
    /// Starts a session in `out` (created; motion.tsv begun). Files already in the folder
    /// count as new.
    pub fn new(
        options: FollowOptions,
        preprocessor: SessionPreprocessor,
        out: &Path,
    ) -> Result<Follower> {
        std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
        let tsv_path = out.join("motion.tsv");
        let mut tsv = File::create(&tsv_path).map_err(|e| DataError::io(&tsv_path, e))?;
        tsv.write_all(HEADER.as_bytes())
            .map_err(|e| DataError::io(&tsv_path, e))?;
        let settle = Duration::from_millis(options.settle_ms);
        let watch = FolderWatch::new(&options.folder, &SUFFIXES, settle);
        Ok(Follower {
            assembler: SliceAssembler::new(options.slices),
            options,
            preprocessor,
            watch,
            tsv,
            tsv_path,
            last_arrival: Instant::now(),
            rows: Vec::new(),
            refused: Vec::new(),
            queue: VecDeque::new(),
            ended_by: None,
            idle: false,
            next_volume: 0,
            pending: std::collections::BTreeMap::new(),
            cut_short_grace: settle.saturating_mul(CUT_SHORT_SETTLES),
        })
    }

    /// The next event; `None` once the session has ended (see [`Follower::ended_by`]). Blocks
    /// while the folder holds nothing new for at most one poll interval.
    pub fn next_event(&mut self, stop: &AtomicBool) -> Result<Option<Event>> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Ok(Some(event));
            }
            if self.ended_by.is_some() {
                return Ok(None);
            }
            if std::mem::take(&mut self.idle) {
                std::thread::sleep(Duration::from_millis(self.options.poll_ms));
            }
            if stop.load(Ordering::SeqCst) {
                self.end("signal".to_string());
                continue;
            }
            if self.options.volumes.is_some_and(|n| self.rows.len() >= n) {
                self.end("volumes".to_string());
                continue;
            }
            // The folder is looked at before the idle time is judged, and that time counts from
            // the end of the last reading: a reading slower than --idle-seconds (a loaded
            // machine) never ends a session whose next files are already there.
            let ready = self
                .watch
                .poll()
                .map_err(|e| DataError::io(&self.options.folder, e))?;
            if ready.is_empty() {
                if self.last_arrival.elapsed().as_secs_f64() > self.options.idle_seconds {
                    self.end(format!("no new file for {} s", self.options.idle_seconds));
                    continue;
                }
                self.idle = true;
                return Ok(Some(Event::Waiting(self.last_arrival.elapsed())));
            }
            self.read_poll(ready)?;
            self.last_arrival = Instant::now();
        }
    }

    /// The events until the session ends.
    pub fn events<'a>(
        &'a mut self,
        stop: &'a AtomicBool,
    ) -> impl Iterator<Item = Result<Event>> + 'a {
        std::iter::from_fn(move || self.next_event(stop).transpose())
    }

    /// The session's number (0-based) of a volume the scanner numbered `number` (1-based): the
    /// header decides, so a refused or missing volume leaves a gap and never shifts the later
    /// ones. Unnumbered volumes (NIfTI exports) follow the last one.
    fn volume_number(&mut self, number: Option<i64>) -> usize {
        let volume = match number {
            Some(n) if n >= 1 => (n - 1) as usize,
            Some(_) => 0,
            None => self.next_volume,
        };
        self.next_volume = self.next_volume.max(volume + 1);
        volume
    }

    /// Reads and preprocesses the files of one poll, queueing their events in order: the
    /// poll's volumes in the order of their numbers (files named by random UIDs come in any).
    fn read_poll(&mut self, ready: Vec<Ready>) -> Result<()> {
        let first = self.queue.len();
        let mut volumes = Vec::new();
        for Ready { path, settled } in ready {
            match read_volumes(&path, &mut self.assembler) {
                Ok(read) => {
                    // Read whole at last (a file refused while its writer paused between
                    // chunks, then grown): the record lists only files never used.
                    self.pending.remove(&path);
                    self.refused.retain(|r| r.unfinished || r.path != path);
                    volumes.extend(read)
                }
                Err(error) => {
                    let message = error_chain(&error);
                    // Not settled: perhaps still being written. Cut short (a DICOM element or
                    // header running past the end of the file, a NIfTI that ends early): still
                    // being written, however long its writer pauses between chunks, until it
                    // has held its size for CUT_SHORT_SETTLES settle times.
                    let unfinished = !settled
                        || (ends_early(&message)
                            && self
                                .watch
                                .stable_for(&path)
                                .is_some_and(|held| held < self.cut_short_grace));
                    if unfinished {
                        self.watch.retry(&path);
                        self.pending.insert(path, message);
                    } else {
                        self.pending.remove(&path);
                        self.watch.refuse(&path);
                        volumes.push(FileVolume {
                            path,
                            number: None,
                            image: Err(message),
                        });
                    }
                }
            }
        }
        volumes.sort_by_key(|v| v.number.unwrap_or(i64::MAX));
        for FileVolume {
            path,
            number,
            image,
        } in volumes
        {
            if image.is_err() && number.is_none() {
                // A file that does not read has no number to take: no gap is made.
                self.refuse(path, image.err().unwrap_or_default());
                continue;
            }
            let volume = self.volume_number(number);
            let arrived = image.and_then(|image| self.process(&path, image, volume));
            match arrived {
                Ok(arrived) => {
                    let row = format_row(&arrived.row);
                    self.tsv
                        .write_all(row.as_bytes())
                        .and_then(|()| self.tsv.flush())
                        .map_err(|e| DataError::io(&self.tsv_path, e))?;
                    self.rows.push(arrived.row.clone());
                    self.queue.push_back(Event::Volume(Box::new(arrived)));
                }
                Err(error) => {
                    self.refuse(path, error);
                }
            }
        }
        if let Some(Event::Volume(newest)) = self
            .queue
            .iter_mut()
            .skip(first)
            .rev()
            .find(|e| matches!(e, Event::Volume(_)))
        {
            newest.last_of_poll = true;
        }
        Ok(())
    }

    /// Records `path` as refused for `error` and tells the caller; the session goes on.
    fn refuse(&mut self, path: PathBuf, error: String) {
        let refused = Refused {
            file: file_name(&path),
            error,
            path,
            unfinished: false,
        };
        self.refused.push(refused.clone());
        self.queue.push_back(Event::Refused(refused));
    }

    /// Preprocesses and times one volume; `path` is the file that completed it.
    fn process(
        &mut self,
        path: &Path,
        image: crate::grid::Image,
        volume: usize,
    ) -> std::result::Result<Arrived, String> {
        let started = SystemTime::now();
        let processed = self
            .preprocessor
            .push(&image)
            .map_err(|e| error_chain(&e))?;
        let written = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or(started);
        let ms = |from: SystemTime, to: SystemTime| {
            to.duration_since(from).unwrap_or_default().as_secs_f64() * 1000.0
        };
        let done = SystemTime::now();
        let m = processed.motion;
        let row = Row {
            volume,
            file: file_name(path),
            motion: [
                m.translation_mm[0],
                m.translation_mm[1],
                m.translation_mm[2],
                m.rotation_deg[0],
                m.rotation_deg[1],
                m.rotation_deg[2],
            ],
            framewise_displacement_mm: processed.framewise_displacement_mm,
            iterations: processed.realign_iterations,
            wait_ms: ms(written, started),
            processing_ms: ms(started, done),
            latency_ms: ms(written, done),
        };
        Ok(Arrived {
            row,
            processed,
            written,
            last_of_poll: false,
        })
    }

    /// Ends the session: files that never read whole and the slices of volumes it did not
    /// complete are refused.
    fn end(&mut self, why: String) {
        self.ended_by = Some(why);
        for (path, error) in std::mem::take(&mut self.pending) {
            let refused = Refused {
                file: file_name(&path),
                error: format!("{error} (still so when the session ended)"),
                path,
                unfinished: true,
            };
            self.refused.push(refused.clone());
            self.queue.push_back(Event::Refused(refused));
        }
        for unfinished in self.assembler.finish() {
            let files = match unfinished {
                Assembled::Volume { files, .. } | Assembled::Refused { files, .. } => files,
            };
            let refused = Refused {
                file: files.last().map(|f| file_name(f)).unwrap_or_default(),
                error: format!(
                    "{} single-frame files of a volume the session ended before completing",
                    files.len()
                ),
                path: files.last().cloned().unwrap_or_default(),
                unfinished: true,
            };
            self.refused.push(refused.clone());
            self.queue.push_back(Event::Refused(refused));
        }
    }

    /// Why the session ended (`volumes`, `signal`, `no new file for … s`); `None` before.
    pub fn ended_by(&self) -> Option<&str> {
        self.ended_by.as_deref()
    }

    /// The rows of motion.tsv so far.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The files refused so far.
    pub fn refused(&self) -> &[Refused] {
        &self.refused
    }

    /// The session's preprocessing state (its registration to the subject).
    pub fn preprocessor(&self) -> &SessionPreprocessor {
        &self.preprocessor
    }

    /// The options it follows with.
    pub fn options(&self) -> &FollowOptions {
        &self.options
    }

    /// The session's summary (`realtime watch`'s session.json).
    pub fn record(&self) -> WatchRecord {
        let latencies: Vec<f64> = self.rows.iter().map(|r| r.latency_ms).collect();
        let latency = |q| (!latencies.is_empty()).then(|| quantile_nearest_rank(&latencies, q));
        WatchRecord {
            folder: self.options.folder.clone(),
            volumes: self.rows.len(),
            refused: self.refused.clone(),
            latency_ms_median: latency(0.5),
            latency_ms_p95: latency(0.95),
            max_framewise_displacement_mm: max_framewise_displacement(&self.rows),
            registration_to_subject: self.preprocessor.registration(),
            ended_by: self.ended_by.clone().unwrap_or_default(),
        }
    }
}

/// A followed session's summary: what session.json records.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WatchRecord {
    /// The export folder followed.
    pub folder: PathBuf,
    /// Volumes preprocessed.
    pub volumes: usize,
    /// Files refused, in order.
    pub refused: Vec<Refused>,
    /// Median of [`Row::latency_ms`] (nearest rank); None without volumes.
    pub latency_ms_median: Option<f64>,
    /// 95th percentile of [`Row::latency_ms`] (nearest rank); None without volumes.
    pub latency_ms_p95: Option<f64>,
    /// Largest framewise displacement of the session, mm.
    pub max_framewise_displacement_mm: f64,
    /// Subject world → session world, as motion parameters about the subject's grid centre.
    pub registration_to_subject: Option<RigidParams>,
    /// Why the session ended (`volumes`, `signal`, `no new file for … s`).
    pub ended_by: String,
}

/// A session that read no volume is no success (`realtime watch` and `run` exit 2 on it): the
/// error naming the folder, why the session ended, and the files refused with their reasons
/// (the first five; the session's record has them all). `Ok` when `volumes` > 0.
pub fn require_volumes(
    folder: &Path,
    volumes: usize,
    refused: &[Refused],
    ended_by: &str,
) -> Result<()> {
    /// Refused files a message names at most.
    const LISTED: usize = 5;
    if volumes > 0 {
        return Ok(());
    }
    let found = if refused.is_empty() {
        format!(
            "none: no file ending in {} arrived (the session ended: {ended_by})",
            SUFFIXES.join(", ")
        )
    } else {
        let listed: Vec<String> = refused
            .iter()
            .take(LISTED)
            .map(|r| {
                // Readers' messages name their file already.
                if r.error.contains(&r.file) {
                    r.error.clone()
                } else {
                    format!("{}: {}", r.file, r.error)
                }
            })
            .collect();
        let more = refused.len().saturating_sub(LISTED);
        format!(
            "none: every file was refused (the session ended: {ended_by}); {} refused: {}{}",
            refused.len(),
            listed.join("; "),
            if more > 0 {
                format!("; and {more} more (see session.json)")
            } else {
                String::new()
            }
        )
    };
    Err(DataError::invalid(
        folder,
        "volumes read",
        "at least one volume",
        found,
    ))
}

/// The largest framewise displacement of `rows` (0 when empty).
pub fn max_framewise_displacement(rows: &[Row]) -> f64 {
    rows.iter()
        .map(|r| r.framewise_displacement_mm)
        .fold(0.0, f64::max)
}

fn format_row(row: &Row) -> String {
    let m = row.motion;
    format!(
        "{}\t{}\t{:.4}\t{:.4}\t{:.4}\t{:.4}\t{:.4}\t{:.4}\t{:.4}\t{}\t{:.1}\t{:.1}\t{:.1}\n",
        row.volume,
        row.file,
        m[0],
        m[1],
        m[2],
        m[3],
        m[4],
        m[5],
        row.framewise_displacement_mm,
        row.iterations,
        row.wait_ms,
        row.processing_ms,
        row.latency_ms
    )
}

/// Why [`watch`] stopped before the session began: a file it could not read, or a subject
/// reference it could not prepare.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A file could not be read or written.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The subject reference could not be prepared.
    #[error(transparent)]
    Volume(#[from] crate::session::VolumeError),
}

/// Follows `options.folder` for motion only (`realtime watch`): each volume realigned to the
/// session's first, which is registered to `subject_reference` (a NIfTI volume on the
/// subject's grid) when given. Writes OUT/motion.tsv as volumes arrive and OUT/session.json at
/// the end; refused files go to `log`. Ends when `options` says or `stop` is set.
pub fn watch(
    options: FollowOptions,
    subject_reference: Option<&Path>,
    out: &Path,
    stop: &AtomicBool,
    log: &dyn Fn(&str),
) -> std::result::Result<WatchRecord, WatchError> {
    use crate::session::SubjectSpace;
    options.check()?;
    // The subject's reference is read and prepared now, before the scanner's first volume.
    let space = match subject_reference {
        Some(path) => {
            let reference = crate::read::read_image(path)?;
            SubjectSpace {
                grid: reference.grid.clone(),
                voxels: Vec::new(),
                reference: Some(reference),
            }
        }
        None => SubjectSpace::motion_only(),
    };
    let preprocessor = SessionPreprocessor::new(space, options.session_options())?;
    let mut follower = Follower::new(options, preprocessor, out)?;
    for event in follower.events(stop) {
        if let Event::Refused(refused) = event? {
            log(&refused.log_line());
        }
    }
    let record = follower.record();
    brainrecon_core::fs::write_json_atomic(&out.join("session.json"), &record)?;
    Ok(record)
}

impl WatchRecord {
    /// `Err` (naming the refused files) when the session read no volume: see
    /// [`require_volumes`].
    pub fn require_volumes(&self) -> Result<()> {
        require_volumes(&self.folder, self.volumes, &self.refused, &self.ended_by)
    }

    /// The summary as `realtime watch` prints it; `out` is the session's folder.
    pub fn text(&self, out: &Path) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
        format!(
            "{} volumes ({} refused), latency median {} p95 {}, largest framewise displacement {:.2} mm; ended by {}\nmotion trace: {}\n",
            self.volumes,
            self.refused.len(),
            ms(self.latency_ms_median),
            ms(self.latency_ms_p95),
            self.max_framewise_displacement_mm,
            self.ended_by,
            out.join("motion.tsv").display()
        )
    }
}
