//! `brainrecon realtime …`: real-time fMRI. `watch` follows a scanner's export folder volume by
//! volume: each file is read once complete, realigned and registered, and its motion written
//! as it arrives (the scanner side of real-time reconstruction; decoding is not joined yet).

use super::usage;
use brainrecon_data::atomic::write_json_atomic;
use brainrecon_data::{dicom, nifti_io};
use brainrecon_realtime::grid::{Grid, Image};
use brainrecon_realtime::realign::RealignOptions;
use brainrecon_realtime::session::{SessionOptions, SessionPreprocessor, SubjectSpace};
use brainrecon_realtime::watch::{FolderWatch, Ready};
use brainrecon_stream::live::quantile;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Real-time fMRI: follow a scanner's export folder volume by volume
#[derive(clap::Subcommand)]
pub enum RealtimeCommand {
    Watch(WatchArgs),
}

pub fn run(command: RealtimeCommand) -> anyhow::Result<()> {
    match command {
        RealtimeCommand::Watch(args) => watch(args),
    }
}

/// Watch a scanner's real-time export folder: realign each volume as it arrives.
///
/// Reads Siemens EPI mosaics (.dcm, .ima) or 3-D NIfTI volumes (.nii, .nii.gz) as the export
/// writes them, one file per volume. A file is read as soon as its size holds over one poll;
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
    /// The folder the scanner's real-time export writes into
    #[arg(long)]
    folder: PathBuf,
    /// Where motion.tsv and session.json go
    #[arg(long, default_value = "realtime-session")]
    out: PathBuf,
    /// A NIfTI volume on the subject's grid to register the session to
    #[arg(long)]
    subject_reference: Option<PathBuf>,
    /// Stop after this many volumes
    #[arg(long)]
    volumes: Option<usize>,
    /// Stop when no new file has arrived for this long
    #[arg(long, default_value_t = 60.0)]
    idle_seconds: f64,
    /// A file that does not read is given this long without a change of size (ms) before it
    /// counts as broken
    #[arg(long, default_value_t = 200)]
    settle_ms: u64,
    /// How often the folder is listed (ms)
    #[arg(long, default_value_t = 20)]
    poll_ms: u64,
    /// Gaussian smoothing before realignment (mm FWHM)
    #[arg(long, default_value_t = 5.0)]
    smoothing_mm: f64,
    /// Print the session summary as JSON
    #[arg(long)]
    json: bool,
}

/// One volume's row of motion.tsv.
struct Row {
    volume: usize,
    file: String,
    motion: [f64; 6],
    framewise_displacement_mm: f64,
    iterations: usize,
    /// From the file's last write to its reading, and the reading and preprocessing.
    wait_ms: f64,
    processing_ms: f64,
    latency_ms: f64,
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
struct Refused {
    file: String,
    error: String,
}

static STOP: AtomicBool = AtomicBool::new(false);

fn watch(args: WatchArgs) -> anyhow::Result<()> {
    if !args.folder.is_dir() {
        return Err(usage(format!(
            "--folder {}: not a folder",
            args.folder.display()
        )));
    }
    if args.idle_seconds.is_nan() || args.idle_seconds <= 0.0 || args.poll_ms == 0 {
        return Err(usage("--idle-seconds and --poll-ms must be positive"));
    }
    let options = SessionOptions {
        realign: RealignOptions {
            smoothing_fwhm_mm: args.smoothing_mm,
            ..RealignOptions::default()
        },
        ..SessionOptions::default()
    };
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
    let mut preprocessor = SessionPreprocessor::new(space, options)?;
    std::fs::create_dir_all(&args.out).map_err(|e| brainrecon_data::DataError::io(&args.out, e))?;
    let tsv_path = args.out.join("motion.tsv");
    let mut tsv = std::fs::File::create(&tsv_path)
        .map_err(|e| brainrecon_data::DataError::io(&tsv_path, e))?;
    tsv.write_all(HEADER.as_bytes())?;
    let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst));
    let mut watch = FolderWatch::new(
        &args.folder,
        &[".dcm", ".ima", ".nii", ".nii.gz"],
        Duration::from_millis(args.settle_ms),
    );
    let (mut rows, mut refused) = (Vec::<Row>::new(), Vec::new());
    let mut last_arrival = Instant::now();
    let ended_by = loop {
        if STOP.load(Ordering::SeqCst) {
            break "signal".to_string();
        }
        if args.volumes.is_some_and(|n| rows.len() >= n) {
            break "volumes".to_string();
        }
        if last_arrival.elapsed().as_secs_f64() > args.idle_seconds {
            break format!("no new file for {} s", args.idle_seconds);
        }
        let ready = watch
            .poll()
            .map_err(|e| brainrecon_data::DataError::io(&args.folder, e))?;
        if ready.is_empty() {
            std::thread::sleep(Duration::from_millis(args.poll_ms));
            continue;
        }
        last_arrival = Instant::now();
        for Ready { path, settled } in ready {
            match process(&path, &mut preprocessor, rows.len()) {
                Ok(row) => {
                    tsv.write_all(format_row(&row).as_bytes())?;
                    tsv.flush()?;
                    rows.push(row);
                }
                // Perhaps still being written: read it again once it has settled.
                Err(_) if !settled => watch.retry(&path),
                Err(error) => {
                    eprintln!(
                        "{}: refused: {error:#} (the session goes on)",
                        path.display()
                    );
                    refused.push(Refused {
                        file: file_name(&path),
                        error: format!("{error:#}"),
                    });
                }
            }
        }
    };
    let record = summarise(
        &args,
        &rows,
        refused,
        &preprocessor,
        subject_centre,
        ended_by,
    );
    write_json_atomic(&args.out.join("session.json"), &record)?;
    print_summary(&record, &args.out, args.json)
}

/// Reads, preprocesses and times one volume file.
fn process(
    path: &Path,
    preprocessor: &mut SessionPreprocessor,
    volume: usize,
) -> anyhow::Result<Row> {
    let started = SystemTime::now();
    let image = read_image(path)?;
    let processed = preprocessor.push(&image)?;
    let written = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(started);
    let ms = |from: SystemTime, to: SystemTime| {
        to.duration_since(from).unwrap_or_default().as_secs_f64() * 1000.0
    };
    let done = SystemTime::now();
    let m = processed.motion;
    Ok(Row {
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
    })
}

/// A DICOM mosaic or a 3-D NIfTI volume as an image.
fn read_image(path: &Path) -> anyhow::Result<Image> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    let (shape, affine, values) = if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        let v = nifti_io::read_volume(path)?;
        (
            v.shape,
            v.affine,
            v.values.iter().map(|&x| x as f32).collect(),
        )
    } else {
        let v = dicom::read_volume(path)?;
        (v.shape, v.affine, v.values)
    };
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

fn file_name(path: &Path) -> String {
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
    args: &WatchArgs,
    rows: &[Row],
    refused: Vec<Refused>,
    preprocessor: &SessionPreprocessor,
    subject_centre: Option<[f64; 3]>,
    ended_by: String,
) -> SessionRecord {
    let latencies: Vec<f64> = rows.iter().map(|r| r.latency_ms).collect();
    let latency = |q| (!latencies.is_empty()).then(|| quantile(&latencies, q));
    let registration = preprocessor
        .subject_to_session()
        .zip(subject_centre)
        .map(|(t, centre)| t.params(centre));
    SessionRecord {
        folder: args.folder.clone(),
        volumes: rows.len(),
        refused,
        latency_ms_median: latency(0.5),
        latency_ms_p95: latency(0.95),
        max_framewise_displacement_mm: rows
            .iter()
            .map(|r| r.framewise_displacement_mm)
            .fold(0.0, f64::max),
        registration_to_subject: registration,
        ended_by,
    }
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
