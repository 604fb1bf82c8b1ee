//! `brainrecon realtime run`: the real-time route. The export folder is followed as `watch`
//! follows it; each volume's pattern at the decoders' voxels is decoded into z and c and the
//! newest is drawn with the diffusion model, on a live page and into a session record.

use super::realtime::{
    follow, max_framewise_displacement, read_image, registration, Arrived, FolderArgs, Refused, Row,
};
use super::usage;
use brainrecon_data::atomic::write_json_atomic;
use brainrecon_data::image::write_png;
use brainrecon_data::npy;
use brainrecon_data::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::StableDiffusion;
use brainrecon_realtime::grid::Grid;
use brainrecon_realtime::session::{SessionPreprocessor, SubjectSpace};
use brainrecon_routes::realtime::{
    live_answers, offline_patterns, shown_trials, write_recons, Answer, LiveDecoders, LiveDrawer,
    PatternWindow,
};
use brainrecon_stream::live::quantile;
use brainrecon_stream::{frame_hash, FrameState, Hub, Server};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Reconstruct what the subject sees while the scanner runs, volume by volume.
///
/// Follows the scanner's export folder as `realtime watch` does (Siemens mosaics or 3-D
/// NIfTI; each file read once complete; realigned to the session's first volume, which is
/// registered to --subject-reference, the subject's reference volume on the grid the decoders
/// were fit on, e.g. fMRIPrep's boldref). At the decoders' voxels each volume is detrended and
/// z-scored with running statistics; the mean of the last --window-s seconds of volumes,
/// standardised per voxel by the running statistics of those means, is decoded by the linear
/// route's ridge decoders (DECODERS/z and DECODERS/c, from `brainrecon fit`) and drawn as the
/// linear route draws: the picture of z, noised to --strength and denoised conditioned on c.
/// The newest volume is drawn; volumes that arrive while an image is being made are decoded
/// and recorded but not drawn.
///
/// The live page (--serve, default 127.0.0.1:8080) shows the current and the previous image,
/// motion traces, the early visual cortex's signal, the latency from a file's last write to
/// its image, and messages (a refused file, a pause). OUT holds the session's record:
/// motion.tsv, volumes.tsv (per volume: decoded, drawn, timings), images/ and decoded-z/
/// (vol-NNNNNN.png), decoded/{volumes,z,c}.npy and session.json; with --events (the session's
/// BIDS events.tsv) also OUT/recons, a reconstruction folder of the shown images that
/// `brainrecon eval --stimuli SUBJECT --recons OUT/recons` scores like any other, and
/// OUT/recons-offline: the same images from the same volumes analysed after the session
/// (each voxel detrended and z-scored over the whole session), to measure what being live
/// costs.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  \
    brainrecon realtime run --folder /mnt/scanner/export --subject sub-01 --decoders decoders \\\n      \
    --subject-reference sub-01_task-images_run-01_space-T1w_boldref.nii.gz --tr 1.6\n  \
    brainrecon realtime run --folder rt-sim/export --subject demo-out/sub-01 --decoders demo-out/decoders \\\n      \
    --tr 1.0 --events rt-sim/events.tsv --no-serve --idle-seconds 5 --json")]
pub struct RunArgs {
    #[command(flatten)]
    folder: FolderArgs,
    /// The prepared subject the decoders were fit on
    #[arg(long)]
    subject: PathBuf,
    /// The folder holding the z and c decoders (`brainrecon fit --target z|c --out DIR/z|c`)
    #[arg(long)]
    decoders: PathBuf,
    /// A volume on the subject's grid (NIfTI) to register the session to; without it the
    /// session is taken to be on the subject's grid already
    #[arg(long)]
    subject_reference: Option<PathBuf>,
    /// The session's repetition time in seconds
    #[arg(long)]
    tr: f64,
    /// Seconds of volumes averaged into each decoded pattern
    #[arg(long, default_value_t = 4.0)]
    window_s: f64,
    /// Seconds from an image's onset to the first volume of its pattern (scoring with --events)
    #[arg(long, default_value_t = 4.0)]
    delay_s: f64,
    /// Draw every decoded volume, however late (rehearsal on a folder filled at once; live,
    /// only the newest volume is drawn)
    #[arg(long)]
    draw_all: bool,
    /// The session's BIDS events.tsv (onset, stim_file): write OUT/recons for scoring
    #[arg(long)]
    events: Option<PathBuf>,
    /// Where the session's record goes
    #[arg(long, default_value = "realtime-session")]
    out: PathBuf,
    /// Diffusers folder, cache snapshot, cached model id, or shapes-ldm (built in)
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// DDIM steps of the full schedule (--strength of them run)
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Share of the schedule img2img runs, in (0, 1]
    #[arg(long, default_value_t = 0.8)]
    strength: f64,
    /// Classifier-free guidance scale (≤ 1 disables guidance)
    #[arg(long, default_value_t = 5.0)]
    guidance: f64,
    /// Seed of the sampler's noise
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Serve the live page on this address [default: 127.0.0.1:8080, or a free port when that
    /// one is taken]
    #[arg(long, value_name = "ADDRESS", conflicts_with = "no_serve")]
    serve: Option<String>,
    /// Do not serve the page
    #[arg(long)]
    no_serve: bool,
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Weights' precision: f32, f16, or bf16 (GPU only)
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Print the session summary as JSON
    #[arg(long)]
    json: bool,
}

/// Volumes of history the page's traces show.
const TRACE_VOLUMES: usize = 120;

/// One volume's row of volumes.tsv.
struct VolumeRow {
    volume: usize,
    file: String,
    decoded: bool,
    drawn: bool,
    preprocess_ms: f64,
    decode_ms: f64,
    draw_ms: f64,
    /// From the file's last write to its image on the page.
    latency_ms: Option<f64>,
}

const VOLUMES_HEADER: &str =
    "volume\tfile\tdecoded\tdrawn\tpreprocess_ms\tdecode_ms\tdraw_ms\tlatency_ms\n";

/// Everything the session keeps between volumes.
struct Live<'a> {
    decoders: &'a LiveDecoders,
    drawer: LiveDrawer<'a>,
    window: PatternWindow,
    warmup: usize,
    draw_all: bool,
    hub: Arc<Hub>,
    out: PathBuf,
    tr: f64,
    started: Instant,
    rows: Vec<VolumeRow>,
    /// (volume, z, c) of every decoded volume.
    decoded: Vec<(usize, Vec<f32>, Vec<f32>)>,
    /// Every volume's samples at the decoders' voxels, for the analysis afterwards.
    samples: Vec<Vec<f32>>,
    /// Motion parameters and the early visual mean z-score of the last volumes.
    traces: VecDeque<[f32; 7]>,
    frames: u64,
    /// Volumes (0-based) whose image was drawn.
    drawn: Vec<usize>,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    check(&args)?;
    let subject = PreparedSubject::open(&args.subject)?;
    let decoders = LiveDecoders::load(&subject, &args.decoders)?;
    let device = super::device(&args.device)?;
    let dtype = super::dtype(&args.dtype)?;
    super::check_dtype_on(dtype, &device)?;
    let sd = StableDiffusion::load(&args.model, dtype, &device)?;
    let drawer = LiveDrawer::new(
        &subject,
        &sd,
        &decoders,
        args.steps,
        args.strength,
        args.guidance,
        args.seed,
    )?;
    let grid = Grid {
        shape: subject.meta.volume_shape,
        affine: subject.meta.affine,
    };
    let reference = subject_reference(&args, &grid)?;
    let subject_centre = reference.as_ref().map(|r| r.grid.centre());
    let options = args.folder.session_options();
    let warmup = options.warmup;
    let space = SubjectSpace {
        grid,
        voxels: decoders.voxels.clone(),
        reference,
    };
    let mut preprocessor = SessionPreprocessor::new(space, options)?;
    let hub = Hub::new();
    let server = start_page(&args, hub.clone())?;
    for dir in ["images", "decoded-z"] {
        let dir = args.out.join(dir);
        std::fs::create_dir_all(&dir).map_err(|e| brainrecon_data::DataError::io(&dir, e))?;
    }
    let volumes_in_window = ((args.window_s / args.tr).round() as usize).max(1);
    let mut live = Live {
        decoders: &decoders,
        drawer,
        window: PatternWindow::new(decoders.voxels.len(), volumes_in_window),
        warmup,
        draw_all: args.draw_all,
        hub: hub.clone(),
        out: args.out.clone(),
        tr: args.tr,
        started: Instant::now(),
        rows: Vec::new(),
        decoded: Vec::new(),
        samples: Vec::new(),
        traces: VecDeque::new(),
        frames: 0,
        drawn: Vec::new(),
    };
    hub.set_status("waiting for the scanner's first volume", false);
    let pauses = std::cell::RefCell::new(Pauses::new(args.tr));
    let followed = follow(
        &args.folder,
        &mut preprocessor,
        &args.out,
        |batch| {
            pauses.borrow_mut().arrived(live.rows.len() + batch.len());
            live.arrived(batch)
        },
        |refused: &Refused| {
            hub.set_status(
                format!(
                    "refused {}: {} (the session goes on)",
                    refused.file, refused.error
                ),
                false,
            )
        },
        |since: Duration| pauses.borrow_mut().waiting(since, &hub),
    )?;
    hub.set_status(format!("session ended: {}", followed.ended_by), true);
    let recons = match &args.events {
        Some(events) => Some(score_records(
            &args,
            &subject,
            &sd,
            &live,
            events,
            volumes_in_window,
        )?),
        None => None,
    };
    let record = live.finish(&followed.rows)?;
    let summary = Summary {
        folder: args.folder.folder.clone(),
        volumes: followed.rows.len(),
        refused: followed.refused,
        ended_by: followed.ended_by,
        max_framewise_displacement_mm: max_framewise_displacement(&followed.rows),
        registration_to_subject: registration(&preprocessor, subject_centre),
        window_volumes: volumes_in_window,
        pauses: pauses.into_inner().seen,
        recons: recons.as_ref().map(|r| r.0.clone()),
        recons_offline: recons.map(|r| r.1),
        ..record
    };
    write_json_atomic(&args.out.join("session.json"), &summary)?;
    if let Some(server) = server {
        server.shutdown();
    }
    print_summary(&summary, &args.out, args.json)
}

fn check(args: &RunArgs) -> anyhow::Result<()> {
    super::check_sampling(args.steps, args.guidance)?;
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(usage(format!(
                "--{name}: expected a positive number of seconds, found {v}"
            )))
        }
    };
    positive("tr", args.tr)?;
    positive("window-s", args.window_s)?;
    if !(args.delay_s.is_finite() && args.delay_s >= 0.0) {
        return Err(usage(format!(
            "--delay-s: expected seconds ≥ 0, found {}",
            args.delay_s
        )));
    }
    Ok(())
}

/// The subject's reference volume, which must lie on the subject's grid.
fn subject_reference(
    args: &RunArgs,
    grid: &Grid,
) -> anyhow::Result<Option<brainrecon_realtime::grid::Image>> {
    let Some(path) = &args.subject_reference else {
        return Ok(None);
    };
    let image = read_image(path)?;
    if image.grid.shape != grid.shape || !image.grid.same_placement(grid) {
        return Err(brainrecon_data::DataError::invalid(
            path,
            "grid",
            format!("the prepared subject's grid: shape {:?}", grid.shape),
            format!("shape {:?} with another affine or size", image.grid.shape),
        )
        .into());
    }
    Ok(Some(image))
}

fn start_page(args: &RunArgs, hub: Arc<Hub>) -> anyhow::Result<Option<Server>> {
    if args.no_serve {
        return Ok(None);
    }
    let server = super::stream::start_server(args.serve.as_deref(), &hub)?;
    eprintln!("live page: {}", server.url());
    Ok(Some(server))
}

impl Live<'_> {
    /// Decodes every volume of a poll (in order) and draws the newest decoded one (each one
    /// with --draw-all).
    fn arrived(&mut self, batch: Vec<Arrived>) -> anyhow::Result<()> {
        let mut newest = None;
        for volume in &batch {
            self.trace(volume);
            self.samples.push(volume.processed.samples.clone());
            let row = self.decode(volume)?;
            let decoded = row.decoded;
            self.rows.push(row);
            if decoded && self.draw_all {
                self.draw(self.rows.len() - 1, volume)?;
            } else if decoded {
                newest = Some((self.rows.len() - 1, volume));
            }
        }
        if let Some((index, volume)) = newest {
            self.draw(index, volume)?;
        } else if let (Some(last), false) = (batch.last(), self.draw_all) {
            self.hub.set_status(
                format!(
                    "volume {} ({}): warming up the running statistics",
                    last.row.volume + 1,
                    last.row.file
                ),
                false,
            );
        }
        let mut tsv = String::new();
        for row in &self.rows[self.rows.len() - batch.len()..] {
            tsv.push_str(&format_volume_row(row));
        }
        append(&self.out.join("volumes.tsv"), &tsv)
    }

    fn trace(&mut self, volume: &Arrived) {
        let z = &volume.processed.zscores[..self.decoders.z_voxels()];
        let mean = z.iter().sum::<f32>() / z.len().max(1) as f32;
        let m = volume.row.motion;
        let mut entry = [0.0f32; 7];
        (0..6).for_each(|i| entry[i] = m[i] as f32);
        entry[6] = mean;
        if self.traces.len() == TRACE_VOLUMES {
            self.traces.pop_front();
        }
        self.traces.push_back(entry);
    }

    /// The volume's pattern decoded, once the running statistics are warm.
    fn decode(&mut self, volume: &Arrived) -> anyhow::Result<VolumeRow> {
        let mut row = VolumeRow {
            volume: volume.row.volume,
            file: volume.row.file.clone(),
            decoded: false,
            drawn: false,
            preprocess_ms: volume.row.processing_ms,
            decode_ms: 0.0,
            draw_ms: 0.0,
            latency_ms: None,
        };
        if volume.processed.volume < self.warmup {
            return Ok(row);
        }
        let started = Instant::now();
        let Some((pattern, _)) = self.window.push(&volume.processed.zscores) else {
            return Ok(row);
        };
        let (z, c) = self.decoders.decode(&pattern)?;
        self.decoded.push((volume.row.volume, z, c));
        row.decoded = true;
        row.decode_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(row)
    }

    /// Draws row `index`'s decoded features, writes the pictures and publishes the image.
    fn draw(&mut self, index: usize, arrived: &Arrived) -> anyhow::Result<()> {
        let started = Instant::now();
        let volume = arrived.row.volume;
        let (_, z, c) = self
            .decoded
            .iter()
            .rev()
            .find(|d| d.0 == volume)
            .expect("decoded before drawing");
        let drawn = self.drawer.draw(z, c, volume)?;
        let name = format!("vol-{:06}.png", volume + 1);
        write_png(&self.out.join("images").join(&name), &drawn.image)?;
        write_png(&self.out.join("decoded-z").join(&name), &drawn.decoded_z)?;
        let draw_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.frames += 1;
        let latency_ms = SystemTime::now()
            .duration_since(arrived.written)
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0;
        let row = &mut self.rows[index];
        row.drawn = true;
        row.draw_ms = draw_ms;
        row.latency_ms = Some(latency_ms);
        self.drawn.push(volume);
        let state = self.frame_state(arrived, latency_ms, &drawn.image);
        self.hub.publish(Arc::new(drawn.image), None, state);
        Ok(())
    }

    fn frame_state(
        &self,
        arrived: &Arrived,
        latency_ms: f64,
        image: &brainrecon_data::image::RgbImage,
    ) -> FrameState {
        let labels = [
            "x (mm)",
            "y (mm)",
            "z (mm)",
            "pitch (°)",
            "roll (°)",
            "yaw (°)",
            "visual z",
        ];
        let volume = arrived.row.volume;
        let received = self.rows.len() as u64;
        FrameState {
            frames: self.frames,
            hash: frame_hash(image),
            dropped: received - self.frames,
            fps: 1.0 / self.tr,
            latency_ms,
            window_start_s: volume as f64 * self.tr,
            status: format!(
                "volume {} ({}): framewise displacement {:.2} mm",
                volume + 1,
                arrived.row.file,
                arrived.row.framewise_displacement_mm
            ),
            ended: false,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            traces: (0..7)
                .map(|i| self.traces.iter().map(|t| t[i]).collect())
                .collect(),
            title: "brainrecon realtime".into(),
            details: vec![
                ("volumes received".into(), received.to_string()),
                (
                    "session time".into(),
                    format!("{:.0} s", self.started.elapsed().as_secs_f64()),
                ),
                (
                    "preprocessing".into(),
                    format!("{:.0} ms", arrived.row.processing_ms),
                ),
            ],
        }
    }

    /// Writes decoded/{volumes,z,c}.npy and returns the session's timing figures.
    fn finish(&self, rows: &[Row]) -> anyhow::Result<Summary> {
        if !self.decoded.is_empty() {
            let dir = self.out.join("decoded");
            let n = self.decoded.len();
            let volumes: Vec<i64> = self.decoded.iter().map(|d| d.0 as i64).collect();
            npy::write(&dir.join("volumes.npy"), &[n], &volumes)?;
            let targets = [
                ("z.npy", &self.decoders.z.target_shape),
                ("c.npy", &self.decoders.c.target_shape),
            ];
            for (k, (file, target_shape)) in targets.into_iter().enumerate() {
                let mut shape = vec![n];
                shape.extend(target_shape);
                let rows: Vec<f32> = self
                    .decoded
                    .iter()
                    .flat_map(|d| if k == 0 { &d.1 } else { &d.2 }.iter().copied())
                    .collect();
                npy::write(&dir.join(file), &shape, &rows)?;
            }
        }
        let latencies: Vec<f64> = self.rows.iter().filter_map(|r| r.latency_ms).collect();
        let q = |values: &[f64], p| (!values.is_empty()).then(|| quantile(values, p));
        let preprocessing: Vec<f64> = rows.iter().map(|r| r.latency_ms).collect();
        let draws: Vec<f64> = self
            .rows
            .iter()
            .filter(|r| r.drawn)
            .map(|r| r.draw_ms)
            .collect();
        Ok(Summary {
            decoded: self.decoded.len(),
            drawn: self.drawn.len(),
            not_drawn: self.decoded.len() - self.drawn.len(),
            image_latency_ms_median: q(&latencies, 0.5),
            image_latency_ms_p95: q(&latencies, 0.95),
            preprocess_latency_ms_median: q(&preprocessing, 0.5),
            draw_ms_median: q(&draws, 0.5),
            ..Summary::default()
        })
    }
}

/// Writes OUT/recons (the live images of the shown images) and OUT/recons-offline (the same
/// volumes analysed after the session and drawn the same way); returns both folders.
fn score_records(
    args: &RunArgs,
    subject: &PreparedSubject,
    sd: &StableDiffusion,
    live: &Live,
    events: &Path,
    window: usize,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let trials = shown_trials(subject, events, args.tr, args.delay_s, window)?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let (dir, offline_dir) = (args.out.join("recons"), args.out.join("recons-offline"));
    let answers = live_answers(&trials, &live.decoded, &args.out)?;
    let write = |answers: &[Answer], dir: &Path| {
        write_recons(
            subject,
            sd,
            &args.model,
            &live.drawer,
            live.decoders,
            answers,
            dir,
            &command,
        )
    };
    write(&answers, &dir)?;
    // The same trials, from the whole session's statistics.
    let scored: Vec<_> = trials
        .iter()
        .filter(|t| answers.iter().any(|a| a.id == t.id))
        .collect();
    let volumes: Vec<usize> = scored.iter().map(|t| t.volume).collect();
    let patterns = match live.samples.len() >= window {
        true => offline_patterns(&live.samples, window, &volumes),
        false => Vec::new(),
    };
    let mut offline = Vec::new();
    for (trial, pattern) in scored.iter().zip(&patterns) {
        let (z, c) = live.decoders.decode(pattern)?;
        let drawn = live.drawer.draw(&z, &c, trial.volume)?;
        offline.push(Answer {
            id: trial.id,
            z,
            c,
            drawn,
        });
    }
    write(&offline, &offline_dir)?;
    Ok((dir, offline_dir))
}

/// Gaps in the scanner's stream: each one longer than two TRs is told on the page and in the
/// log, and recorded (to the second) when the next file comes.
struct Pauses {
    tr: f64,
    /// The current gap's length when it was last heard, if it is a pause.
    current: Option<f64>,
    volumes: usize,
    seen: Vec<(usize, f64)>,
}

impl Pauses {
    fn new(tr: f64) -> Pauses {
        Pauses {
            tr,
            current: None,
            volumes: 0,
            seen: Vec::new(),
        }
    }

    fn waiting(&mut self, since: Duration, hub: &Hub) {
        let seconds = since.as_secs_f64();
        if seconds < 2.0 * self.tr || self.volumes == 0 {
            return;
        }
        if self.current.is_none() {
            eprintln!(
                "no new volume for {seconds:.1} s after volume {} (scanner paused?); waiting",
                self.volumes
            );
        }
        if self.current.is_none_or(|shown| seconds - shown >= 1.0) {
            hub.set_status(
                format!(
                    "no new volume for {seconds:.0} s after volume {} (scanner paused?); waiting",
                    self.volumes
                ),
                false,
            );
            self.current = Some(seconds);
        }
    }

    /// Files came, making `volumes` in all: a pause, if there was one, ends.
    fn arrived(&mut self, volumes: usize) {
        if let Some(seconds) = self.current.take() {
            self.seen.push((self.volumes, seconds));
        }
        self.volumes = volumes;
    }
}

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

/// Appends to a TSV file, writing its header first when it is new.
fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| brainrecon_data::DataError::io(path, e))?;
    if new {
        file.write_all(VOLUMES_HEADER.as_bytes())?;
    }
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// session.json.
#[derive(serde::Serialize, Default)]
pub(super) struct Summary {
    folder: PathBuf,
    volumes: usize,
    refused: Vec<Refused>,
    ended_by: String,
    /// Volumes decoded (after the running statistics' warm-up and the first window).
    decoded: usize,
    drawn: usize,
    /// Decoded volumes not drawn because a newer one had arrived.
    not_drawn: usize,
    /// A file's last write → its image on the page.
    image_latency_ms_median: Option<f64>,
    image_latency_ms_p95: Option<f64>,
    /// A file's last write → its volume preprocessed.
    preprocess_latency_ms_median: Option<f64>,
    draw_ms_median: Option<f64>,
    max_framewise_displacement_mm: f64,
    registration_to_subject: Option<brainrecon_realtime::rigid::RigidParams>,
    window_volumes: usize,
    /// Gaps of more than two TRs between files: (volumes received before, seconds).
    pauses: Vec<(usize, f64)>,
    /// The reconstruction folder of the shown images (with --events).
    recons: Option<PathBuf>,
    /// The same images from the same volumes analysed after the session (whole-session
    /// detrending and z-scoring instead of running statistics).
    recons_offline: Option<PathBuf>,
}

fn print_summary(summary: &Summary, out: &Path, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(summary);
    }
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
    outln!(
        "{} volumes ({} refused), {} decoded, {} drawn; image latency median {} p95 {}; largest framewise displacement {:.2} mm; ended by {}",
        summary.volumes,
        summary.refused.len(),
        summary.decoded,
        summary.drawn,
        ms(summary.image_latency_ms_median),
        ms(summary.image_latency_ms_p95),
        summary.max_framewise_displacement_mm,
        summary.ended_by
    )?;
    outln!("record: {}", out.display())?;
    if let (Some(live), Some(offline)) = (&summary.recons, &summary.recons_offline) {
        outln!(
            "reconstructions of the shown images: {} (live), {} (the same volumes analysed afterwards)",
            live.display(),
            offline.display()
        )?;
    }
    Ok(())
}
