//! What a live session leaves in its folder besides motion.tsv: volumes.tsv, one row per
//! volume as it is handled, and session.json, its summary; and the pauses it records.

use crate::error::Result;
use brainrecon_core::DataError;
use brainrecon_realtime::follow::Refused;
use brainrecon_realtime::rigid::RigidParams;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One volume's row of volumes.tsv.
#[derive(Debug, Clone)]
pub struct VolumeRow {
    /// The volume's number in the session, as motion.tsv numbers it.
    pub volume: usize,
    /// Its file's name.
    pub file: String,
    /// Whether its pattern was decoded (after the warm-up and the first window).
    pub decoded: bool,
    /// Whether its decoded features were drawn.
    pub drawn: bool,
    /// Milliseconds to preprocess it (realignment, masking, running z-scores).
    pub preprocess_ms: f64,
    /// Milliseconds to decode its pattern (0 when not decoded).
    pub decode_ms: f64,
    /// Milliseconds to draw its picture (0 when not drawn).
    pub draw_ms: f64,
    /// From the file's last write to its image.
    pub latency_ms: Option<f64>,
}

const VOLUMES_HEADER: &str =
    "volume\tfile\tdecoded\tdrawn\tpreprocess_ms\tdecode_ms\tdraw_ms\tlatency_ms\n";

fn format_volume_row(row: &VolumeRow) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{:.1}\t{:.1}\t{:.1}\t{}\n",
        row.volume,
        row.file,
        u8::from(row.decoded),
        u8::from(row.drawn),
        row.preprocess_ms,
        row.decode_ms,
        row.draw_ms,
        row.latency_ms
            .map_or("n/a".to_string(), |v| format!("{v:.1}"))
    )
}

/// Appends `rows` to volumes.tsv at `path`, writing its header first when it is new.
pub(super) fn append_volume_rows(path: &Path, rows: &[VolumeRow]) -> Result<()> {
    use std::io::Write;
    let text: String = rows.iter().map(format_volume_row).collect();
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| DataError::io(path, e))?;
    if new {
        file.write_all(VOLUMES_HEADER.as_bytes())
            .map_err(|e| DataError::io(path, e))?;
    }
    file.write_all(text.as_bytes())
        .map_err(|e| DataError::io(path, e))?;
    Ok(())
}

/// session.json of a live session.
#[derive(Debug, Clone, serde::Serialize, Default)]
pub struct Summary {
    /// The export folder followed.
    pub folder: PathBuf,
    /// Volumes read.
    pub volumes: usize,
    /// Files refused, each with why.
    pub refused: Vec<Refused>,
    /// Why the session ended (`volumes`, `signal`, `no new file for … s`).
    pub ended_by: String,
    /// Volumes decoded (after the running statistics' warm-up and the first window).
    pub decoded: usize,
    /// Decoded volumes drawn.
    pub drawn: usize,
    /// Decoded volumes not drawn because a newer one had arrived.
    pub not_drawn: usize,
    /// A file's last write → its image on the page.
    pub image_latency_ms_median: Option<f64>,
    /// Its 95th percentile.
    pub image_latency_ms_p95: Option<f64>,
    /// A file's last write → its volume preprocessed.
    pub preprocess_latency_ms_median: Option<f64>,
    /// Median milliseconds to draw a picture.
    pub draw_ms_median: Option<f64>,
    /// Largest framewise displacement of the session (Power et al. 2012), mm.
    pub max_framewise_displacement_mm: f64,
    /// The session's registration to the subject's reference, as rigid motion parameters.
    pub registration_to_subject: Option<RigidParams>,
    /// Volumes averaged into one pattern.
    pub window_volumes: usize,
    /// Gaps of more than two TRs between files: (volumes received before, seconds).
    pub pauses: Vec<(usize, f64)>,
    /// The reconstruction folder of the shown images (with events).
    pub recons: Option<PathBuf>,
    /// The same images from the same volumes analysed after the session (whole-session
    /// detrending and z-scoring instead of running statistics).
    pub recons_offline: Option<PathBuf>,
}

impl Summary {
    /// `Err` (naming the refused files) when the session read no volume: a session that read
    /// nothing is no success.
    pub fn require_volumes(&self) -> Result<()> {
        brainrecon_realtime::follow::require_volumes(
            &self.folder,
            self.volumes,
            &self.refused,
            &self.ended_by,
        )?;
        Ok(())
    }

    /// The summary as `realtime run` prints it; `out` is the session's record folder.
    pub fn text(&self, out: &Path) -> String {
        use std::fmt::Write;
        let summary = self;
        let mut text = String::new();
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
        let _ = writeln!(
            text,
            "{} volumes ({} refused), {} decoded, {} drawn; image latency median {} p95 {}; largest framewise displacement {:.2} mm; ended by {}",
            summary.volumes,
            summary.refused.len(),
            summary.decoded,
            summary.drawn,
            ms(summary.image_latency_ms_median),
            ms(summary.image_latency_ms_p95),
            summary.max_framewise_displacement_mm,
            summary.ended_by
        );
        let _ = writeln!(text, "record: {}", out.display());
        if let (Some(live), Some(offline)) = (&summary.recons, &summary.recons_offline) {
            let _ = writeln!(
                text,
                "reconstructions of the shown images: {} (live), {} (the same volumes analysed afterwards)",
                live.display(),
                offline.display()
            );
        }
        text
    }
}

/// A gap in the scanner's stream longer than two TRs, as it is to be told now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PauseNotice {
    /// Seconds since the last file.
    pub seconds: f64,
    /// Volumes received before the gap.
    pub volumes: usize,
    /// The first notice of this gap.
    pub first: bool,
}

/// Gaps in the scanner's stream: each one longer than two TRs is told (once at first, then
/// at most once a second) and recorded, to the second it was last told, when the next file
/// comes.
#[derive(Debug, Clone)]
pub struct Pauses {
    tr: f64,
    /// The current gap's length when it was last told, if it is a pause.
    current: Option<f64>,
    volumes: usize,
    seen: Vec<(usize, f64)>,
}

impl Pauses {
    /// No pause yet, for a session at `tr` seconds.
    pub fn new(tr: f64) -> Pauses {
        Pauses {
            tr,
            current: None,
            volumes: 0,
            seen: Vec::new(),
        }
    }

    /// `since` without a new file: a notice when it is (still) a pause worth telling.
    pub fn waiting(&mut self, since: Duration) -> Option<PauseNotice> {
        let seconds = since.as_secs_f64();
        if seconds < 2.0 * self.tr || self.volumes == 0 {
            return None;
        }
        let first = self.current.is_none();
        if self.current.is_none_or(|shown| seconds - shown >= 1.0) {
            self.current = Some(seconds);
            return Some(PauseNotice {
                seconds,
                volumes: self.volumes,
                first,
            });
        }
        None
    }

    /// Files came, making `volumes` in all: a pause, if there was one, ends.
    pub fn arrived(&mut self, volumes: usize) {
        if let Some(seconds) = self.current.take() {
            self.seen.push((self.volumes, seconds));
        }
        self.volumes = volumes;
    }

    /// The pauses so far: (volumes received before, seconds).
    pub fn seen(&self) -> &[(usize, f64)] {
        &self.seen
    }
}
