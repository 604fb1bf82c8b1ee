//! The live page of a real-time session: the newest image, motion traces, the early visual
//! cortex's signal and the session's messages, published to a [`Hub`].

use super::session::{Frame, LiveEvent, LiveSession, VolumeOutcome};
use brainrecon_stream::{frame_hash, FrameState, Hub};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// Volumes of history the page's traces show.
const TRACE_VOLUMES: usize = 120;

/// The live page's state between volumes.
pub struct LivePage {
    hub: Arc<Hub>,
    tr: f64,
    z_voxels: usize,
    started: Instant,
    /// Motion parameters and the early visual mean z-score of the last volumes.
    traces: VecDeque<[f32; 7]>,
}

impl LivePage {
    /// A page for a session with repetition time `tr` (s) whose z decoder reads the first
    /// `z_voxels` voxels of each pattern (the early visual cortex).
    pub fn new(hub: Arc<Hub>, tr: f64, z_voxels: usize) -> Self {
        LivePage {
            hub,
            tr,
            z_voxels,
            started: Instant::now(),
            traces: VecDeque::new(),
        }
    }

    /// Shows one event of the session; returns the line to log, if any.
    pub fn show(&mut self, event: &LiveEvent, session: &LiveSession) -> Option<String> {
        match event {
            LiveEvent::Volume(volume) => {
                self.volume(volume);
                None
            }
            LiveEvent::Drawn(frame) => {
                let state = self.frame_state(
                    frame,
                    session.volumes_received() as u64,
                    session.frames() as u64,
                );
                self.hub.publish(Arc::new(frame.image.clone()), None, state);
                None
            }
            LiveEvent::Refused(refused) => {
                self.hub.set_status(
                    format!(
                        "refused {}: {} (the session goes on)",
                        refused.file, refused.error
                    ),
                    false,
                );
                Some(refused.log_line())
            }
            LiveEvent::Waiting {
                pause: Some(pause), ..
            } => {
                self.hub.set_status(
                    format!(
                        "no new volume for {:.0} s after volume {} (scanner paused?); waiting",
                        pause.seconds, pause.volumes
                    ),
                    false,
                );
                pause.first.then(|| {
                    format!(
                        "no new volume for {:.1} s after volume {} (scanner paused?); waiting",
                        pause.seconds, pause.volumes
                    )
                })
            }
            LiveEvent::Waiting { pause: None, .. } => None,
        }
    }

    fn volume(&mut self, volume: &VolumeOutcome) {
        let arrived = &volume.arrived;
        let z = &arrived.processed.zscores[..self.z_voxels];
        let mean = z.iter().sum::<f32>() / z.len().max(1) as f32;
        let m = arrived.row.motion;
        let mut entry = [0.0f32; 7];
        (0..6).for_each(|i| entry[i] = m[i] as f32);
        entry[6] = mean;
        if self.traces.len() == TRACE_VOLUMES {
            self.traces.pop_front();
        }
        self.traces.push_back(entry);
        if volume.warming_up {
            self.hub.set_status(
                format!(
                    "volume {} ({}): warming up the running statistics",
                    arrived.row.volume + 1,
                    arrived.row.file
                ),
                false,
            );
        }
    }

    fn frame_state(&self, frame: &Frame, received: u64, frames: u64) -> FrameState {
        let labels = [
            "x (mm)",
            "y (mm)",
            "z (mm)",
            "pitch (°)",
            "roll (°)",
            "yaw (°)",
            "visual z",
        ];
        let volume = frame.row.volume;
        FrameState {
            frames,
            hash: frame_hash(&frame.image),
            dropped: received - frames,
            fps: 1.0 / self.tr,
            latency_ms: frame.latency_ms,
            window_start_s: volume as f64 * self.tr,
            status: format!(
                "volume {} ({}): framewise displacement {:.2} mm",
                volume + 1,
                frame.row.file,
                frame.row.framewise_displacement_mm
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
                    format!("{:.0} ms", frame.row.processing_ms),
                ),
            ],
        }
    }
}
