//! Replaying a source at the speed it was recorded, or as fast as it can be read.

use crate::error::{Result, StreamError};
use crate::source::{Chunk, Source};
use std::time::{Duration, Instant};

/// How a [`Pacer`] releases chunks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Each chunk is held until the wall clock reaches the time of its last frame.
    RealTime,
    /// Chunks are released as soon as they are read.
    Fast,
}

/// The wall-clock offset, from the first read, at which `frames` frames at `rate` Hz replayed
/// at `speed` × real time have all been "recorded": `frames / (rate × speed)` seconds
/// (`Duration::MAX` when that is not a finite duration, e.g. for a rate of 0).
pub fn due(frames: u64, rate: f64, speed: f64) -> Duration {
    Duration::try_from_secs_f64(frames as f64 / (rate * speed)).unwrap_or(Duration::MAX)
}

/// Wraps a source and paces it: a [`Source`] itself.
///
/// With [`Pace::RealTime`], the clock starts at the first `next_chunk`; a chunk that ends at
/// frame `n` is returned no earlier than `due(n, rate, speed)` after that. A consumer slower
/// than real time is not waited for: see [`Pacer::lag`].
pub struct Pacer<S: Source> {
    source: S,
    pace: Pace,
    speed: f64,
    start: Option<Instant>,
    frames: u64,
}

impl<S: Source> Pacer<S> {
    /// Paces `source` at 1 × real time (for [`Pace::RealTime`]).
    pub fn new(source: S, pace: Pace) -> Self {
        Pacer {
            source,
            pace,
            speed: 1.0,
            start: None,
            frames: 0,
        }
    }

    /// Replays at `speed` × real time (2 is twice as fast).
    pub fn with_speed(mut self, speed: f64) -> Result<Self> {
        if !(speed.is_finite() && speed > 0.0) {
            return Err(StreamError::parameter(
                "speed",
                "a finite factor above 0",
                speed.to_string(),
            ));
        }
        self.speed = speed;
        Ok(self)
    }

    /// Frames returned so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// How far behind the wall clock the replay is: the time since the last returned frame
    /// was due (zero when on time, and always zero for [`Pace::Fast`]).
    pub fn lag(&self) -> Duration {
        match (self.pace, self.start) {
            (Pace::RealTime, Some(start)) => {
                match start.checked_add(due(self.frames, self.source.rate(), self.speed)) {
                    Some(due_at) => Instant::now().saturating_duration_since(due_at),
                    None => Duration::ZERO,
                }
            }
            _ => Duration::ZERO,
        }
    }

    /// The wrapped source.
    pub fn into_inner(self) -> S {
        self.source
    }
}

impl<S: Source> Source for Pacer<S> {
    fn channels(&self) -> usize {
        self.source.channels()
    }

    fn rate(&self) -> f64 {
        self.source.rate()
    }

    fn labels(&self) -> Vec<String> {
        self.source.labels()
    }

    fn next_chunk(&mut self, max_frames: usize) -> Result<Option<Chunk>> {
        let start = *self.start.get_or_insert_with(Instant::now);
        let chunk = self.source.next_chunk(max_frames)?;
        if let Some(chunk) = &chunk {
            self.frames += chunk.frames() as u64;
            if self.pace == Pace::RealTime {
                let wait = start
                    .checked_add(due(self.frames, self.source.rate(), self.speed))
                    .map(|due_at| due_at.saturating_duration_since(Instant::now()));
                if let Some(wait) = wait.filter(|w| !w.is_zero()) {
                    std::thread::sleep(wait);
                }
            }
        }
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{default_labels, Recording};

    fn recording(frames: usize) -> Recording {
        Recording::new("mem", 200.0, default_labels(2), vec![0.5; frames * 2]).unwrap()
    }

    #[test]
    fn due_is_frames_over_rate() {
        assert_eq!(due(250, 250.0, 1.0), Duration::from_secs(1));
        assert_eq!(due(250, 250.0, 2.0), Duration::from_millis(500));
    }

    #[test]
    fn real_time_waits_for_the_clock() {
        let mut pacer = Pacer::new(recording(40), Pace::RealTime);
        let started = Instant::now();
        let mut frames = 0;
        while let Some(chunk) = pacer.next_chunk(10).unwrap() {
            frames += chunk.frames();
        }
        // 40 frames at 200 Hz: 0.2 s.
        assert_eq!(frames, 40);
        assert!(
            started.elapsed() >= Duration::from_millis(195),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn fast_does_not_wait() {
        let mut pacer = Pacer::new(recording(2000), Pace::Fast);
        let started = Instant::now();
        while pacer.next_chunk(100).unwrap().is_some() {}
        assert_eq!(pacer.frames(), 2000);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(pacer.lag(), Duration::ZERO);
    }

    #[test]
    fn speed_must_be_positive() {
        assert!(Pacer::new(recording(1), Pace::RealTime)
            .with_speed(0.0)
            .is_err());
    }
}
