//! `brainrecon realtime …`: real-time fMRI. `watch` follows a scanner's export folder volume by
//! volume: each file is read once complete, realigned and registered, and its motion written
//! as it arrives. `run` (realtime_run.rs) adds the decoders and the diffusion model: an image
//! per volume on a live page. `simulate` and `replay` (realtime_simulate.rs) write a simulated
//! subject's session, or a recorded run, as a scanner's export.

use super::usage;
use brainrecon_data::atomic::write_json_atomic;
use brainrecon_data::{dicom, nifti_io};
use brainrecon_realtime::assemble::{Assembled, SliceAssembler};
use brainrecon_realtime::grid::{Grid, Image};
use brainrecon_realtime::realign::RealignOptions;
use brainrecon_realtime::session::{Processed, SessionOptions, SessionPreprocessor, SubjectSpace};
use brainrecon_realtime::watch::{FolderWatch, Ready};
use brainrecon_stream::live::quantile;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Real-time fMRI: reconstruct what a subject sees while the scanner runs
#[derive(clap::Subcommand)]
pub enum RealtimeCommand {
    Run(Box<super::realtime_run::RunArgs>),
    Watch(WatchArgs),
    Simulate(super::realtime_simulate::SimulateArgs),
    Replay(super::realtime_simulate::ReplayArgs),
}

pub fn run(command: RealtimeCommand) -> anyhow::Result<()> {
    match command {
        RealtimeCommand::Run(args) => super::realtime_run::run(*args),
        RealtimeCommand::Watch(args) => watch(args),
        RealtimeCommand::Simulate(args) => super::realtime_simulate::run(args),
        RealtimeCommand::Replay(args) => super::realtime_simulate::replay(args),
    }
}

/// Watch a scanner's real-time export folder: realign each volume as it arrives.
///
/// Reads the DICOM layouts scanners export (.dcm, .ima): Siemens EPI mosaics and enhanced
/// multi-frame files (a volume per file), single-frame series (a slice per file, stacked into
/// volumes: see --slices); or 3-D NIfTI volumes (.nii, .nii.gz). A file is read as soon as its size holds over one poll;
/// one that does not read yet is read again until its size has held for --settle-ms (or a
/// later file has appeared), and only then reported as broken. The first volume is the session's reference;
/// with --subject-reference (a NIfTI volume of the subject on another day, e.g. a mean EPI) it
/// is registered to that volume too. OUT/motion.tsv gets one row per volume as it is done
/// (6 motion parameters, framewise displacement, latency from the file's last write);
/// OUT/session.json the summary when the session ends (--volumes reached, --idle-seconds
/// without a new file, or Ctrl-C / SIGTERM). A file that cannot be read or realigned is
/// reported and the session goes on.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  \
    brainrecon realtime watch --folder /mnt/scanner/export --out rt-session --volumes 300\n  \
    brainrecon realtime watch --folder export --subject-reference subj01/mean_epi.nii.gz --out rt --json")]
pub struct WatchArgs {
    #[command(flatten)]
    pub(super) folder: FolderArgs,
    /// Where motion.tsv and session.json go
    #[arg(long, default_value = "realtime-session")]
    out: PathBuf,
    /// A NIfTI volume on the subject's grid to register the session to
    #[arg(long)]
    subject_reference: Option<PathBuf>,
    /// Print the session summary as JSON
    #[arg(long)]
    json: bool,
}

/// How the export folder is followed (shared by `watch` and `run`).
#[derive(clap::Args)]
pub struct FolderArgs {
    /// The folder the scanner's real-time export writes into
    #[arg(long)]
    pub folder: PathBuf,
    /// Stop after this many volumes
    #[arg(long)]
    pub volumes: Option<usize>,
    /// Stop when no new file has arrived for this long
    #[arg(long, default_value_t = 60.0)]
    pub idle_seconds: f64,
    /// A file that does not read is given this long without a change of size (ms) before it
    /// counts as broken
    #[arg(long, default_value_t = 200)]
    pub settle_ms: u64,
    /// How often the folder is listed (ms)
    #[arg(long, default_value_t = 20)]
    pub poll_ms: u64,
    /// Gaussian smoothing before realignment (mm FWHM)
    #[arg(long, default_value_t = 5.0)]
    pub smoothing_mm: f64,
    /// Slices per volume of a single-frame export (one DICOM file per slice); without it,
    /// the first volume is stacked when a slice of the second arrives
    #[arg(long)]
    pub slices: Option<usize>,
}

impl FolderArgs {
    fn check(&self) -> anyhow::Result<()> {
        if !self.folder.is_dir() {
            return Err(usage(format!(
                "--folder {}: not a folder",
                self.folder.display()
            )));
        }
        if self.idle_seconds.is_nan() || self.idle_seconds <= 0.0 || self.poll_ms == 0 {
            return Err(usage("--idle-seconds and --poll-ms must be positive"));
        }
        if self.slices == Some(0) {
            return Err(usage("--slices must be positive"));
        }
        Ok(())
    }

    /// The session's preprocessing options.
    pub(super) fn session_options(&self) -> SessionOptions {
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
#[derive(Clone)]
pub(super) struct Row {
    pub volume: usize,
    pub file: String,
    pub motion: [f64; 6],
    pub framewise_displacement_mm: f64,
    pub iterations: usize,
    /// From the file's last write to its reading, and the reading and preprocessing.
    pub wait_ms: f64,
    pub processing_ms: f64,
    pub latency_ms: f64,
}

/// A volume preprocessed: its row of motion.tsv, what the session made of it, and when its
/// file was last written.
pub(super) struct Arrived {
    pub row: Row,
    pub processed: Processed,
    pub written: SystemTime,
}

/// How a followed session went.
pub(super) struct Followed {
    pub rows: Vec<Row>,
    pub refused: Vec<Refused>,
    pub ended_by: String,
}

const HEADER: &str = "volume\tfile\ttrans_x_mm\ttrans_y_mm\ttrans_z_mm\trot_x_deg\trot_y_deg\trot_z_deg\tframewise_displacement_mm\trealign_iterations\twait_ms\tprocessing_ms\tlatency_ms\n";

/// What session.json records.
#[derive(serde::Serialize)]
struct SessionRecord {
    folder: PathBuf,
    volumes: usize,
    refused: Vec<Refused>,
    latency_ms_median: Option<f64>,
    latency_ms_p95: Option<f64>,
    max_framewise_displacement_mm: f64,
    /// Subject world → session world, as motion parameters about the subject's grid centre.
    registration_to_subject: Option<brainrecon_realtime::rigid::RigidParams>,
    ended_by: String,
}

#[derive(serde::Serialize)]
pub(super) struct Refused {
    pub file: String,
    pub error: String,
}

fn watch(args: WatchArgs) -> anyhow::Result<()> {
    args.folder.check()?;
    // The subject's reference is read and prepared now, before the scanner's first volume.
    let space = match &args.subject_reference {
        Some(path) => {
            let reference = read_image(path)?;
            SubjectSpace {
                grid: reference.grid.clone(),
                voxels: Vec::new(),
                reference: Some(reference),
            }
        }
        None => SubjectSpace::motion_only(),
    };
    let subject_centre = space.reference.as_ref().map(|r| r.grid.centre());
    let mut preprocessor = SessionPreprocessor::new(space, args.folder.session_options())?;
    let followed = follow(
        &args.folder,
        &mut preprocessor,
        &args.out,
        |_| Ok(()),
        |_| {},
        |_| {},
    )?;
    let record = summarise(&args.folder.folder, followed, &preprocessor, subject_centre);
    write_json_atomic(&args.out.join("session.json"), &record)?;
    print_summary(&record, &args.out, args.json)
}

static STOP: AtomicBool = AtomicBool::new(false);

/// Follows the export folder until --volumes, --idle-seconds or a signal: every volume is read
/// once complete, preprocessed and appended to OUT/motion.tsv, and the volumes of each poll
/// are handed to `arrived` together (oldest first); a file that cannot be read once settled,
/// or cannot be realigned, goes to `refused` and the session goes on; `waiting` hears how
/// long it has been since the last file whenever a poll finds none.
pub(super) fn follow(
    args: &FolderArgs,
    preprocessor: &mut SessionPreprocessor,
    out: &Path,
    mut arrived: impl FnMut(Vec<Arrived>) -> anyhow::Result<()>,
    mut refused: impl FnMut(&Refused),
    mut waiting: impl FnMut(Duration),
) -> anyhow::Result<Followed> {
    std::fs::create_dir_all(out).map_err(|e| brainrecon_data::DataError::io(out, e))?;
    let tsv_path = out.join("motion.tsv");
    let mut tsv = std::fs::File::create(&tsv_path)
        .map_err(|e| brainrecon_data::DataError::io(&tsv_path, e))?;
    tsv.write_all(HEADER.as_bytes())?;
    let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst));
    let mut watch = FolderWatch::new(
        &args.folder,
        &[".dcm", ".ima", ".nii", ".nii.gz"],
        Duration::from_millis(args.settle_ms),
    );
    let mut followed = Followed {
        rows: Vec::new(),
        refused: Vec::new(),
        ended_by: String::new(),
    };
    let mut assembler = SliceAssembler::new(args.slices);
    let mut last_arrival = Instant::now();
    followed.ended_by = loop {
        if STOP.load(Ordering::SeqCst) {
            break "signal".to_string();
        }
        if args.volumes.is_some_and(|n| followed.rows.len() >= n) {
            break "volumes".to_string();
        }
        if last_arrival.elapsed().as_secs_f64() > args.idle_seconds {
            break format!("no new file for {} s", args.idle_seconds);
        }
        let ready = watch
            .poll()
            .map_err(|e| brainrecon_data::DataError::io(&args.folder, e))?;
        if ready.is_empty() {
            waiting(last_arrival.elapsed());
            std::thread::sleep(Duration::from_millis(args.poll_ms));
            continue;
        }
        last_arrival = Instant::now();
        let mut batch = Vec::new();
        for Ready { path, settled } in ready {
            let volumes = match read_volumes(&path, &mut assembler) {
                Ok(volumes) => volumes,
                // Perhaps still being written: read it again once it has settled.
                Err(_) if !settled => {
                    watch.retry(&path);
                    continue;
                }
                Err(error) => {
                    watch.refuse(&path);
                    vec![(path, Err(error))]
                }
            };
            for (path, image) in volumes {
                let volume = followed.rows.len() + batch.len();
                match image.and_then(|image| process(&path, image, preprocessor, volume)) {
                    Ok(volume) => {
                        tsv.write_all(format_row(&volume.row).as_bytes())?;
                        tsv.flush()?;
                        batch.push(volume);
                    }
                    Err(error) => {
                        eprintln!(
                            "{}: refused: {error:#} (the session goes on)",
                            path.display()
                        );
                        let entry = Refused {
                            file: file_name(&path),
                            error: format!("{error:#}"),
                        };
                        refused(&entry);
                        followed.refused.push(entry);
                    }
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let rows: Vec<Row> = batch.iter().map(|v| v.row.clone()).collect();
        arrived(batch)?;
        followed.rows.extend(rows);
    };
    for unfinished in assembler.finish() {
        let files = match unfinished {
            Assembled::Volume { files, .. } | Assembled::Refused { files, .. } => files,
        };
        let entry = Refused {
            file: files.last().map(|f| file_name(f)).unwrap_or_default(),
            error: format!(
                "{} single-frame files of a volume the session ended before completing",
                files.len()
            ),
        };
        eprintln!("{}: not processed: {}", entry.file, entry.error);
        refused(&entry);
        followed.refused.push(entry);
    }
    Ok(followed)
}

/// The volumes one file completes, each with the file that completed it: one for a volume
/// file, none or more for a slice of a single-frame series (a volume that cannot be stacked
/// is an `Err` in the list). `Err` when the file does not read.
fn read_volumes(
    path: &Path,
    assembler: &mut SliceAssembler,
) -> anyhow::Result<Vec<(PathBuf, anyhow::Result<Image>)>> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        return Ok(vec![(path.to_path_buf(), Ok(read_image(path)?))]);
    }
    let assembled = match dicom::read_file(path)? {
        dicom::DicomFile::Volume(volume) => {
            return Ok(vec![(path.to_path_buf(), dicom_image(path, volume))]);
        }
        dicom::DicomFile::Slice(slice) => assembler.push(path.to_path_buf(), slice),
    };
    Ok(assembled
        .into_iter()
        .map(|a| {
            let last = a.last_file().cloned().unwrap_or_else(|| path.to_path_buf());
            let image = match a {
                Assembled::Volume { volume, .. } => dicom_image(&last, *volume),
                Assembled::Refused { files, error } => Err(anyhow::anyhow!(
                    "the volume of {} single-frame files ({} to {}): {error}",
                    files.len(),
                    files.first().map(|f| file_name(f)).unwrap_or_default(),
                    file_name(&last)
                )),
            };
            (last, image)
        })
        .collect())
}

/// Preprocesses and times one volume; `path` is the file that completed it.
fn process(
    path: &Path,
    image: Image,
    preprocessor: &mut SessionPreprocessor,
    volume: usize,
) -> anyhow::Result<Arrived> {
    let started = SystemTime::now();
    let processed = preprocessor.push(&image)?;
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
    })
}

/// A DICOM volume (a mosaic or an enhanced multi-frame file) or a 3-D NIfTI volume as an
/// image.
pub(super) fn read_image(path: &Path) -> anyhow::Result<Image> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        let v = nifti_io::read_volume(path)?;
        let values = v.values.iter().map(|&x| x as f32).collect();
        grid_image(path, v.shape, v.affine, values)
    } else {
        dicom_image(path, dicom::read_volume(path)?)
    }
}

fn dicom_image(path: &Path, volume: dicom::DicomVolume) -> anyhow::Result<Image> {
    grid_image(path, volume.shape, volume.affine, volume.values)
}

fn grid_image(
    path: &Path,
    shape: [usize; 3],
    affine: [[f64; 4]; 4],
    values: Vec<f32>,
) -> anyhow::Result<Image> {
    Image::new(Grid { shape, affine }, values).map_err(|e| {
        brainrecon_data::DataError::invalid(
            path,
            "volume grid",
            "a 3-D grid with an invertible affine",
            e.to_string(),
        )
        .into()
    })
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
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

fn summarise(
    folder: &Path,
    followed: Followed,
    preprocessor: &SessionPreprocessor,
    subject_centre: Option<[f64; 3]>,
) -> SessionRecord {
    let rows = &followed.rows;
    let latencies: Vec<f64> = rows.iter().map(|r| r.latency_ms).collect();
    let latency = |q| (!latencies.is_empty()).then(|| quantile(&latencies, q));
    SessionRecord {
        folder: folder.to_path_buf(),
        volumes: rows.len(),
        latency_ms_median: latency(0.5),
        latency_ms_p95: latency(0.95),
        max_framewise_displacement_mm: max_framewise_displacement(rows),
        registration_to_subject: registration(preprocessor, subject_centre),
        refused: followed.refused,
        ended_by: followed.ended_by,
    }
}

pub(super) fn max_framewise_displacement(rows: &[Row]) -> f64 {
    rows.iter()
        .map(|r| r.framewise_displacement_mm)
        .fold(0.0, f64::max)
}

/// The session's registration to the subject, as motion parameters about the subject's grid
/// centre (None before the first volume, or without a subject reference).
pub(super) fn registration(
    preprocessor: &SessionPreprocessor,
    subject_centre: Option<[f64; 3]>,
) -> Option<brainrecon_realtime::rigid::RigidParams> {
    preprocessor
        .subject_to_session()
        .zip(subject_centre)
        .map(|(t, centre)| t.params(centre))
}

fn print_summary(record: &SessionRecord, out: &Path, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(record);
    }
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
    outln!(
        "{} volumes ({} refused), latency median {} p95 {}, largest framewise displacement {:.2} mm; ended by {}",
        record.volumes,
        record.refused.len(),
        ms(record.latency_ms_median),
        ms(record.latency_ms_p95),
        record.max_framewise_displacement_mm,
        record.ended_by
    )?;
    outln!("motion trace: {}", out.join("motion.tsv").display())?;
    Ok(())
}
