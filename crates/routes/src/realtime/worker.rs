//! The drawing thread of a live session: reading, realignment and decoding never wait for the
//! diffusion model. The session hands each decoded volume over; while the model draws, a newer
//! volume replaces the one waiting (only the newest is drawn, unless every volume is to be),
//! and the pictures come back as they finish. Every volume stays in the record whether or not
//! it was drawn.

use super::draw::LiveDrawer;
use crate::error::{Result, RouteError};
use brainrecon_diffusion::pipeline::StableDiffusion;
use brainrecon_formats::image::{write_png, RgbImage};
use brainrecon_realtime::follow::Arrived;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

/// A decoded volume to draw: its row's index in the session, the volume and its (z, c).
pub(super) struct DrawJob {
    pub index: usize,
    pub arrived: Arrived,
    pub z: Vec<f32>,
    pub c: Vec<f32>,
}

/// A picture finished: the job's row index, the pictures, how long drawing took, and the time
/// from the volume's file's last write to the pictures written.
pub(super) struct Finished {
    pub index: usize,
    pub arrived: Arrived,
    pub image: RgbImage,
    pub decoded_z: RgbImage,
    pub draw_ms: f64,
    pub latency_ms: f64,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<DrawJob>,
    closed: bool,
}

/// The thread that owns the model while the session runs.
pub(super) struct DrawWorker {
    queue: Arc<(Mutex<Queue>, Condvar)>,
    finished: mpsc::Receiver<Result<Finished>>,
    handle: Option<JoinHandle<(StableDiffusion, LiveDrawer)>>,
    /// Jobs handed over and not yet finished.
    in_flight: usize,
}

impl DrawWorker {
    /// Starts the thread with the model and the drawer; pictures go to `out`/images and
    /// `out`/decoded-z as `vol-NNNNNN.png`.
    pub fn start(sd: StableDiffusion, drawer: LiveDrawer, out: PathBuf) -> DrawWorker {
        let queue = Arc::new((Mutex::new(Queue::default()), Condvar::new()));
        let (send, finished) = mpsc::channel();
        let shared = queue.clone();
        let handle = std::thread::Builder::new()
            .name("brainrecon-draw".into())
            .spawn(move || {
                loop {
                    let job = {
                        let (lock, ready) = &*shared;
                        let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
                        while q.jobs.is_empty() && !q.closed {
                            q = ready.wait(q).unwrap_or_else(|e| e.into_inner());
                        }
                        match q.jobs.pop_front() {
                            Some(job) => job,
                            None => break,
                        }
                    };
                    // The session may have ended and stopped listening: nothing to tell then.
                    let _ = send.send(draw_one(&sd, &drawer, &out, job));
                }
                (sd, drawer)
            })
            .expect("the system starts a thread");
        DrawWorker {
            queue,
            finished,
            handle: Some(handle),
            in_flight: 0,
        }
    }

    /// Hands `job` over. With `keep_all` false a job still waiting is dropped for it (its
    /// row then says it was not drawn); the one being drawn goes on.
    pub fn submit(&mut self, job: DrawJob, keep_all: bool) {
        let (lock, ready) = &*self.queue;
        let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
        if !keep_all && q.jobs.pop_front().is_some() {
            self.in_flight -= 1;
        }
        q.jobs.push_back(job);
        self.in_flight += 1;
        ready.notify_one();
    }

    /// The pictures finished since the last call, oldest first.
    pub fn finished(&mut self) -> Vec<Result<Finished>> {
        let done: Vec<_> = self.finished.try_iter().collect();
        self.in_flight -= done.len();
        done
    }

    /// Waits for the next picture (none when nothing is in hand).
    pub fn wait_finished(&mut self) -> Vec<Result<Finished>> {
        if self.in_flight == 0 {
            return Vec::new();
        }
        match self.finished.recv() {
            Ok(done) => {
                self.in_flight -= 1;
                vec![done]
            }
            Err(_) => Vec::new(),
        }
    }

    /// Waits for every job handed over, stops the thread and gives the model back, with the
    /// pictures that finished meanwhile.
    pub fn stop(mut self) -> Result<(StableDiffusion, LiveDrawer, Vec<Result<Finished>>)> {
        {
            let (lock, ready) = &*self.queue;
            let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
            q.closed = true;
            ready.notify_one();
        }
        let handle = self.handle.take().expect("the thread runs until stopped");
        let (sd, drawer) = handle
            .join()
            .map_err(|_| RouteError::Usage("the drawing thread panicked".into()))?;
        let done = self.finished.try_iter().collect();
        Ok((sd, drawer, done))
    }

    /// Whether a job is waiting or being drawn.
    pub fn busy(&self) -> bool {
        self.in_flight > 0
    }
}

fn draw_one(
    sd: &StableDiffusion,
    drawer: &LiveDrawer,
    out: &std::path::Path,
    job: DrawJob,
) -> Result<Finished> {
    let started = Instant::now();
    let volume = job.arrived.row.volume;
    let drawn = drawer.draw(sd, &job.z, &job.c, volume)?;
    let name = format!("vol-{:06}.png", volume + 1);
    write_png(&out.join("images").join(&name), &drawn.image)?;
    write_png(&out.join("decoded-z").join(&name), &drawn.decoded_z)?;
    let latency_ms = SystemTime::now()
        .duration_since(job.arrived.written)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0;
    Ok(Finished {
        index: job.index,
        arrived: job.arrived,
        image: drawn.image,
        decoded_z: drawn.decoded_z,
        draw_ms: started.elapsed().as_secs_f64() * 1000.0,
        latency_ms,
    })
}
