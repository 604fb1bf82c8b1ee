//! Source → windows → latents, in one loop.

use crate::error::Result;
use crate::latent::{Latent, LatentMapper, Smoother};
use crate::source::Source;
use crate::window::{Window, WindowSpec, Windower};
use std::collections::VecDeque;

/// Reads a source, cuts it into windows and maps each to a latent (smoothed, if a smoother is
/// given). Pace the source with a [`crate::Pacer`] for a real-time replay.
pub struct LatentStream<S: Source> {
    source: S,
    windower: Windower,
    mapper: LatentMapper,
    smoother: Option<Smoother>,
    windows: VecDeque<Window>,
    /// Frames requested per read: about one hop, so windows come out as soon as they can.
    read_frames: usize,
}

impl<S: Source> LatentStream<S> {
    /// Chains `source`, windows of `spec`, `mapper` and an optional `smoother`.
    pub fn new(
        source: S,
        spec: &WindowSpec,
        mapper: LatentMapper,
        smoother: Option<Smoother>,
    ) -> Result<Self> {
        let windower = Windower::new(spec, source.channels(), source.rate())?;
        let read_frames = (spec.hop_s * source.rate()).ceil().max(1.0) as usize;
        Ok(LatentStream {
            source,
            windower,
            mapper,
            smoother,
            windows: VecDeque::new(),
            read_frames,
        })
    }

    /// The windower (window length, channels).
    pub fn windower(&self) -> &Windower {
        &self.windower
    }

    /// The next latent, or `None` when the source has ended. A window with no usable channel
    /// is an error; the caller may print it and call again to go on with the next window.
    pub fn next_latent(&mut self) -> Result<Option<Latent>> {
        Ok(self.next_window_latent()?.map(|(_, latent)| latent))
    }

    /// The next window and its latent, or `None` when the source has ended (see
    /// [`LatentStream::next_latent`]).
    pub fn next_window_latent(&mut self) -> Result<Option<(Window, Latent)>> {
        loop {
            if let Some(window) = self.windows.pop_front() {
                let mut latent = self.mapper.latent(&window)?;
                if let Some(smoother) = &mut self.smoother {
                    latent.values = smoother.smooth(&latent.values);
                }
                return Ok(Some((window, latent)));
            }
            match self.source.next_chunk(self.read_frames)? {
                None => return Ok(None),
                Some(chunk) => self.windows.extend(self.windower.push(&chunk)?),
            }
        }
    }

    /// The source's channel labels.
    pub fn labels(&self) -> Vec<String> {
        self.source.labels()
    }

    /// The source's sample rate in Hz.
    pub fn rate(&self) -> f64 {
        self.source.rate()
    }

    /// The latent mapper.
    pub fn mapper(&self) -> &LatentMapper {
        &self.mapper
    }

    /// The source.
    pub fn into_source(self) -> S {
        self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{Synthetic, SyntheticSpec};

    #[test]
    fn a_synthetic_stream_gives_standard_latents() {
        let source = Synthetic::new(SyntheticSpec {
            channels: 4,
            rate: 120.0,
            frames: Some(240),
            ..SyntheticSpec::default()
        })
        .unwrap();
        let mapper = LatentMapper::new([4, 8, 8], 3).unwrap();
        let mut stream = LatentStream::new(
            source,
            &WindowSpec::default(),
            mapper,
            Some(Smoother::new(0.5).unwrap()),
        )
        .unwrap();
        let mut count = 0;
        while let Some(latent) = stream.next_latent().unwrap() {
            assert_eq!(latent.values.len(), 256);
            assert!(latent.warnings.is_empty());
            count += 1;
        }
        // 240 frames, 120-frame windows every 4 frames: starts 0, 4, ..., 120.
        assert_eq!(count, 31);
    }
}
