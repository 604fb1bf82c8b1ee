//! A live session: the export folder followed volume by volume ([`Follower`]), each volume's
//! pattern decoded into z and c, the newest decoded volume drawn on its own thread
//! ([`super::worker`]: reading and decoding never wait for the model), and the session's record
//! written (volumes.tsv, images/, decoded-z/, decoded/, session.json, and with the session's
//! events the reconstruction folders of the shown images).
//!
//! ```no_run
//! # use brainrecon_routes::realtime::session::{LiveEvent, LiveOptions, LiveSession};
//! # use std::sync::atomic::AtomicBool;
//! # fn options() -> LiveOptions { unimplemented!() }
//! let mut session = LiveSession::open(options())?;
//! let stop = AtomicBool::new(false);
//! while let Some(event) = session.next(&stop)? {
//!     match event {
//!         LiveEvent::Volume(volume) => println!("motion {:?}", volume.arrived.row.motion),
//!         LiveEvent::Drawn(frame) => {
//!             println!("volume {}: image {}×{}", frame.row.volume, frame.image.width, frame.image.height)
//!         }
//!         _ => {}
//!     }
//! }
//! let summary = session.finish()?;
//! # Ok::<(), brainrecon_routes::RouteError>(())
//! ```

use super::decoders::{LiveDecoders, PatternWindow};
use super::draw::LiveDrawer;
use super::record::{append_volume_rows, PauseNotice, Pauses, Summary, VolumeRow};
use super::score::{live_answers, offline_patterns, shown_trials, write_recons, Answer};
use super::worker::{DrawJob, DrawWorker, Finished};
use crate::error::{Result, RouteError};
use brainrecon_core::stats::quantile_nearest_rank;
use brainrecon_core::DataError;
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::{DType, Device, StableDiffusion};
use brainrecon_formats::image::RgbImage;
use brainrecon_formats::npy;
use brainrecon_realtime::follow::{
    max_framewise_displacement, Arrived, Event, FollowOptions, Follower, Refused, Row,
};
use brainrecon_realtime::grid::{Grid, Image};
use brainrecon_realtime::read::{error_chain, read_image};
use brainrecon_realtime::session::{SessionPreprocessor, SubjectSpace};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Everything a live session needs.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct LiveOptions {
    /// How the export folder is followed.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub follow: FollowOptions,
    /// The prepared subject the decoders were fit on.
    #[cfg_attr(
        feature = "cli",
        arg(long, help = "The prepared subject the decoders were fit on")
    )]
    pub subject: PathBuf,
    /// The folder holding the z and c decoders (`DECODERS/z`, `DECODERS/c`).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "The folder holding the z and c decoders (`brainrecon fit --target z|c --out DIR/z|c`)"
        )
    )]
    pub decoders: PathBuf,
    /// A volume on the subject's grid to register the session to; `None`: the session lies
    /// on the subject's grid already.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "A volume on the subject's grid (NIfTI) to register the session to; without it the session is taken to be on the subject's grid already"
        )
    )]
    pub subject_reference: Option<PathBuf>,
    /// The session's repetition time, seconds.
    #[cfg_attr(
        feature = "cli",
        arg(long, help = "The session's repetition time in seconds")
    )]
    pub tr: f64,
    /// Seconds of volumes averaged into each decoded pattern.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 4.0,
            help = "Seconds of volumes averaged into each decoded pattern"
        )
    )]
    pub window_s: f64,
    /// Seconds from an image's onset to the first volume of its pattern (scoring).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 4.0,
            help = "Seconds from an image's onset to the first volume of its pattern (scoring with --events)"
        )
    )]
    pub delay_s: f64,
    /// Draw every decoded volume, however late (instead of the newest of each poll).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Draw every decoded volume, however late (rehearsal on a folder filled at once; live, only the newest volume is drawn)"
        )
    )]
    pub draw_all: bool,
    /// The session's BIDS events.tsv: write OUT/recons and OUT/recons-offline.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "The session's BIDS events.tsv (onset, stim_file): write OUT/recons for scoring"
        )
    )]
    pub events: Option<PathBuf>,
    /// Where the session's record goes.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value = "realtime-session",
            help = "Where the session's record goes"
        )
    )]
    pub out: PathBuf,
    /// The diffusion model (as `StableDiffusion::load` takes it).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value = "shapes-ldm",
            help = "Diffusers folder, cache snapshot, cached model id, or shapes-ldm (built in)"
        )
    )]
    pub model: String,
    /// DDIM steps of the full schedule (img2img runs `strength` of them).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 10,
            help = "DDIM steps of the full schedule (--strength of them run)"
        )
    )]
    pub steps: usize,
    /// Share of the schedule img2img runs from the decoded z's picture.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 0.8,
            help = "Share of the schedule img2img runs, in (0, 1]"
        )
    )]
    pub strength: f64,
    /// Classifier-free guidance scale against the empty prompt.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 5.0,
            help = "Classifier-free guidance scale (≤ 1 disables guidance)"
        )
    )]
    pub guidance: f64,
    /// Seed of the drawing noise.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 42, help = "Seed of the sampler's noise")
    )]
    pub seed: u64,
    /// Where the diffusion model runs.
    #[cfg_attr(feature = "cli", arg(skip = Device::Cpu))]
    pub device: Device,
    /// The diffusion weights' precision.
    #[cfg_attr(feature = "cli", arg(skip = DType::F32))]
    pub dtype: DType,
    /// The command recorded in the reconstruction folders' manifests.
    #[cfg_attr(feature = "cli", arg(skip = String::new()))]
    pub command: String,
}

impl LiveOptions {
    /// Refuses non-positive TR and window and a negative delay.
    pub fn check(&self) -> Result<()> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(RouteError::Usage(format!(
                    "--{name}: expected a positive number of seconds, found {v}"
                )))
            }
        };
        positive("tr", self.tr)?;
        positive("window-s", self.window_s)?;
        if !(self.delay_s.is_finite() && self.delay_s >= 0.0) {
            return Err(RouteError::Usage(format!(
                "--delay-s: expected seconds ≥ 0, found {}",
                self.delay_s
            )));
        }
        Ok(())
    }

    /// Volumes in a pattern's window.
    pub fn window_volumes(&self) -> usize {
        ((self.window_s / self.tr).round() as usize).max(1)
    }
}

/// A picture drawn: the volume whose decoded features it shows (its motion row), the
/// reconstruction and the picture of z, and the time from the file's last write to now.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The volume's motion row.
    pub row: Row,
    /// The reconstruction.
    pub image: RgbImage,
    /// The VAE decode of the decoded z.
    pub decoded_z: RgbImage,
    /// Milliseconds from the volume file's last write to the finished picture.
    pub latency_ms: f64,
}

/// One volume handled.
#[derive(Debug, Clone)]
pub struct VolumeOutcome {
    /// The volume: its motion row and preprocessed samples.
    pub arrived: Arrived,
    /// Its decoded (z, c), once the running statistics are warm and the window full.
    pub decoded: Option<(Vec<f32>, Vec<f32>)>,
    /// The last volume of its poll, and none of the poll's volumes was decoded: the running
    /// statistics are warming up.
    pub warming_up: bool,
}

/// What a live session brings.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A volume read, preprocessed and perhaps decoded.
    Volume(Box<VolumeOutcome>),
    /// A picture finished drawing (of the newest decoded volume when it was handed over).
    Drawn(Box<Frame>),
    /// A file that does not read, or a volume that cannot be realigned; the session goes on.
    Refused(Refused),
    /// No new file for `since`; `pause` when that is a pause worth telling.
    Waiting {
        /// Time since the last new file.
        since: Duration,
        /// The pause to tell, when it is one worth telling.
        pause: Option<PauseNotice>,
    },
}

/// A live session; see the module's example.
pub struct LiveSession {
    options: LiveOptions,
    subject: PreparedSubject,
    decoders: LiveDecoders,
    /// The drawing thread, which holds the model until the session finishes.
    worker: Option<DrawWorker>,
    follower: Follower,
    window: PatternWindow,
    warmup: usize,
    rows: Vec<VolumeRow>,
    /// Rows of `rows` already in volumes.tsv.
    written_rows: usize,
    /// (volume, z, c) of every decoded volume.
    decoded: Vec<(usize, Vec<f32>, Vec<f32>)>,
    /// Every volume's number and samples at the decoders' voxels, for the analysis
    /// afterwards.
    samples: Vec<(usize, Vec<f32>)>,
    /// Volumes (0-based) whose image was drawn.
    drawn: Vec<usize>,
    /// Pictures finished and not yet handed to the caller.
    frames: std::collections::VecDeque<Frame>,
    /// Whether the current poll has decoded a volume.
    poll_decoded: bool,
    pauses: Pauses,
}

impl LiveSession {
    /// Opens the subject, its decoders and the model, prepares the subject's reference, and
    /// starts following the folder (OUT/motion.tsv begun, OUT/images and OUT/decoded-z made).
    pub fn open(options: LiveOptions) -> Result<LiveSession> {
        options.check()?;
        let subject = PreparedSubject::open(&options.subject)?;
        let decoders = LiveDecoders::load(&subject, &options.decoders)?;
        let sd = StableDiffusion::load(&options.model, options.dtype, &options.device)?;
        let drawer = LiveDrawer::new(
            &subject,
            &sd,
            &decoders,
            options.steps,
            options.strength,
            options.guidance,
            options.seed,
        )?;
        let grid = Grid {
            shape: subject.meta.volume_shape,
            affine: subject.meta.affine,
        };
        let reference = subject_reference(options.subject_reference.as_deref(), &grid)?;
        let session_options = options.follow.session_options();
        let warmup = session_options.warmup;
        let space = SubjectSpace {
            grid,
            voxels: decoders.voxels.clone(),
            reference,
        };
        let preprocessor = SessionPreprocessor::new(space, session_options)
            .map_err(|e| RouteError::Usage(error_chain(&e)))?;
        for dir in ["images", "decoded-z"] {
            let dir = options.out.join(dir);
            std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        }
        let follower = Follower::new(options.follow.clone(), preprocessor, &options.out)?;
        let worker = DrawWorker::start(sd, drawer, options.out.clone());
        Ok(LiveSession {
            window: PatternWindow::new(decoders.voxels.len(), options.window_volumes()),
            pauses: Pauses::new(options.tr),
            options,
            subject,
            decoders,
            worker: Some(worker),
            follower,
            warmup,
            rows: Vec::new(),
            written_rows: 0,
            decoded: Vec::new(),
            samples: Vec::new(),
            drawn: Vec::new(),
            frames: Default::default(),
            poll_decoded: false,
        })
    }

    /// The next event; `None` once the session has ended ([`LiveSession::ended_by`]) and
    /// every picture handed over has been drawn.
    pub fn next(&mut self, stop: &AtomicBool) -> Result<Option<LiveEvent>> {
        self.collect_frames(false)?;
        if let Some(frame) = self.frames.pop_front() {
            return Ok(Some(LiveEvent::Drawn(Box::new(frame))));
        }
        Ok(match self.follower.next_event(stop)? {
            None => {
                // The scanner is done; the pictures still being drawn are shown before the end.
                self.collect_frames(true)?;
                self.frames
                    .pop_front()
                    .map(|frame| LiveEvent::Drawn(Box::new(frame)))
            }
            Some(Event::Refused(refused)) => Some(LiveEvent::Refused(refused)),
            Some(Event::Waiting(since)) => Some(LiveEvent::Waiting {
                since,
                pause: self.pauses.waiting(since),
            }),
            Some(Event::Volume(arrived)) => {
                Some(LiveEvent::Volume(Box::new(self.volume(*arrived)?)))
            }
        })
    }

    /// Records the pictures the drawing thread finished (waiting for those in hand when
    /// `wait`) and queues them for the caller.
    fn collect_frames(&mut self, wait: bool) -> Result<()> {
        let Some(worker) = self.worker.as_mut() else {
            return Ok(());
        };
        let mut finished = worker.finished();
        if wait && finished.is_empty() && worker.busy() {
            finished = worker.wait_finished();
        }
        for done in finished {
            let frame = self.record_frame(done?);
            self.frames.push_back(frame);
        }
        Ok(())
    }

    /// A finished picture into the volume's row and the drawn list.
    fn record_frame(&mut self, done: Finished) -> Frame {
        let row = &mut self.rows[done.index];
        row.drawn = true;
        row.draw_ms = done.draw_ms;
        row.latency_ms = Some(done.latency_ms);
        self.drawn.push(done.arrived.row.volume);
        Frame {
            row: done.arrived.row,
            image: done.image,
            decoded_z: done.decoded_z,
            latency_ms: done.latency_ms,
        }
    }

    /// Decodes a volume and hands it to the drawing thread (replacing a volume still waiting
    /// there, unless every volume is drawn).
    fn volume(&mut self, arrived: Arrived) -> Result<VolumeOutcome> {
        self.pauses.arrived(self.rows.len() + 1);
        self.samples
            .push((arrived.row.volume, arrived.processed.samples.clone()));
        let (row, decoded) = self.decode(&arrived)?;
        self.rows.push(row);
        let index = self.rows.len() - 1;
        if let (Some((z, c)), Some(worker)) = (&decoded, self.worker.as_mut()) {
            self.poll_decoded = true;
            let job = DrawJob {
                index,
                arrived: arrived.clone(),
                z: z.clone(),
                c: c.clone(),
            };
            worker.submit(job, self.options.draw_all);
        }
        let mut warming_up = false;
        if arrived.last_of_poll {
            warming_up = !self.poll_decoded;
            self.poll_decoded = false;
            self.write_rows()?;
        }
        Ok(VolumeOutcome {
            arrived,
            decoded,
            warming_up,
        })
    }

    /// The volume's pattern decoded, once the running statistics are warm.
    fn decode(&mut self, volume: &Arrived) -> Result<(VolumeRow, Option<(Vec<f32>, Vec<f32>)>)> {
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
            return Ok((row, None));
        }
        let started = Instant::now();
        let Some((pattern, _)) = self.window.push(&volume.processed.zscores) else {
            return Ok((row, None));
        };
        let (z, c) = self.decoders.decode(&pattern)?;
        self.decoded.push((volume.row.volume, z.clone(), c.clone()));
        row.decoded = true;
        row.decode_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok((row, Some((z, c))))
    }

    /// Appends the rows not yet in volumes.tsv.
    fn write_rows(&mut self) -> Result<()> {
        if self.written_rows < self.rows.len() {
            append_volume_rows(
                &self.options.out.join("volumes.tsv"),
                &self.rows[self.written_rows..],
            )?;
            self.written_rows = self.rows.len();
        }
        Ok(())
    }

    /// Volumes received so far.
    pub fn volumes_received(&self) -> usize {
        self.rows.len()
    }

    /// Pictures drawn so far.
    pub fn frames(&self) -> usize {
        self.drawn.len()
    }

    /// The decoders (their voxels: the z decoder's first).
    pub fn decoders(&self) -> &LiveDecoders {
        &self.decoders
    }

    /// The options the session was opened with.
    pub fn options(&self) -> &LiveOptions {
        &self.options
    }

    /// Why the session ended, once it has.
    pub fn ended_by(&self) -> Option<&str> {
        self.follower.ended_by()
    }

    /// Ends the session: with events, writes OUT/recons and OUT/recons-offline; writes
    /// OUT/decoded/{volumes,z,c}.npy and OUT/session.json, and returns the summary.
    pub fn finish(mut self) -> Result<Summary> {
        // Every picture handed over is drawn and recorded before the record is written.
        let worker = self
            .worker
            .take()
            .expect("the drawing thread runs until finish");
        let (sd, drawer, finished) = worker.stop()?;
        for done in finished {
            self.record_frame(done?);
        }
        self.write_rows()?;
        let recons = match self.options.events.clone() {
            Some(events) => Some(self.score_records(&events, &sd, &drawer)?),
            None => None,
        };
        let timing = self.write_decoded()?;
        let rows = self.follower.rows();
        let summary = Summary {
            folder: self.options.follow.folder.clone(),
            volumes: rows.len(),
            refused: self.follower.refused().to_vec(),
            ended_by: self.follower.ended_by().unwrap_or_default().to_string(),
            max_framewise_displacement_mm: max_framewise_displacement(rows),
            registration_to_subject: self.follower.preprocessor().registration(),
            window_volumes: self.options.window_volumes(),
            pauses: self.pauses.seen().to_vec(),
            recons: recons.as_ref().map(|r| r.0.clone()),
            recons_offline: recons.map(|r| r.1),
            ..timing
        };
        brainrecon_core::fs::write_json_atomic(&self.options.out.join("session.json"), &summary)?;
        Ok(summary)
    }

    /// Writes decoded/{volumes,z,c}.npy and returns the session's timing figures.
    fn write_decoded(&self) -> Result<Summary> {
        if !self.decoded.is_empty() {
            let dir = self.options.out.join("decoded");
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
        let q = |values: &[f64], p| (!values.is_empty()).then(|| quantile_nearest_rank(values, p));
        let preprocessing: Vec<f64> = self.follower.rows().iter().map(|r| r.latency_ms).collect();
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

    /// Writes OUT/recons (the live images of the shown images) and OUT/recons-offline (the
    /// same volumes analysed after the session and drawn the same way); returns both folders.
    fn score_records(
        &self,
        events: &Path,
        sd: &StableDiffusion,
        drawer: &LiveDrawer,
    ) -> Result<(PathBuf, PathBuf)> {
        let o = &self.options;
        let window = o.window_volumes();
        let trials = shown_trials(&self.subject, events, o.tr, o.delay_s, window)?;
        let (dir, offline_dir) = (o.out.join("recons"), o.out.join("recons-offline"));
        let answers = live_answers(&trials, &self.decoded, &o.out)?;
        let write = |answers: &[Answer], dir: &Path| {
            write_recons(
                &self.subject,
                sd,
                &o.model,
                drawer,
                &self.decoders,
                answers,
                dir,
                &o.command,
            )
        };
        write(&answers, &dir)?;
        // The same trials, from the whole session's statistics.
        let scored: Vec<_> = trials
            .iter()
            .filter(|t| answers.iter().any(|a| a.id == t.id))
            .collect();
        let volumes: Vec<usize> = scored.iter().map(|t| t.volume).collect();
        let samples = samples_by_volume(&self.samples);
        let patterns = match samples.len() >= window {
            true => offline_patterns(&samples, window, &volumes),
            false => Vec::new(),
        };
        let mut offline = Vec::new();
        for (trial, pattern) in scored.iter().zip(&patterns) {
            let (z, c) = self.decoders.decode(pattern)?;
            let drawn = drawer.draw(sd, &z, &c, trial.volume)?;
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
}

/// The session's samples indexed by volume number: a volume refused or never written (a gap
/// in the scanner's numbering) takes the samples of the volume before it, so that the offline
/// analysis sees one row per TR, as the trials' volume numbers count them.
fn samples_by_volume(samples: &[(usize, Vec<f32>)]) -> Vec<Vec<f32>> {
    let mut sorted: Vec<&(usize, Vec<f32>)> = samples.iter().collect();
    sorted.sort_by_key(|(volume, _)| *volume);
    let Some(last) = sorted.last().map(|(v, _)| *v) else {
        return Vec::new();
    };
    let mut dense: Vec<Vec<f32>> = Vec::with_capacity(last + 1);
    let mut next = sorted.iter().peekable();
    for volume in 0..=last {
        while next.peek().is_some_and(|(v, _)| *v < volume) {
            next.next();
        }
        match next.peek() {
            Some((v, row)) if *v == volume => dense.push(row.clone()),
            _ => {
                let previous = dense.last().cloned().unwrap_or_else(|| sorted[0].1.clone());
                dense.push(previous);
            }
        }
    }
    dense
}

/// The subject's reference volume, which must lie on the subject's grid.
fn subject_reference(path: Option<&Path>, grid: &Grid) -> Result<Option<Image>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let image = read_image(path)?;
    if image.grid.shape != grid.shape || !image.grid.same_placement(grid) {
        return Err(DataError::invalid(
            path,
            "grid",
            format!("the prepared subject's grid: shape {:?}", grid.shape),
            format!("shape {:?} with another affine or size", image.grid.shape),
        )
        .into());
    }
    Ok(Some(image))
}

#[cfg(test)]
mod tests {
    use super::samples_by_volume;

    #[test]
    fn a_gap_in_the_numbering_is_filled_by_the_volume_before_it() {
        let rows = vec![(0, vec![1.0]), (3, vec![4.0]), (1, vec![2.0])];
        assert_eq!(
            samples_by_volume(&rows),
            [vec![1.0], vec![2.0], vec![2.0], vec![4.0]]
        );
        let late_start = vec![(2, vec![7.0])];
        assert_eq!(
            samples_by_volume(&late_start),
            [vec![7.0], vec![7.0], vec![7.0]]
        );
        assert!(samples_by_volume(&[]).is_empty());
    }
}
