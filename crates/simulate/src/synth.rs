//! Procedural instruments: notes from additive or FM recipes under an ADSR envelope, optional
//! soft clipping (overdrive), and a small drum kit from sine sweeps and seeded noise. Each
//! voice is mixed into a mono `f32` buffer at a given time.
//!
//! Additive partials run as rotating phasors (one complex multiply per partial and sample,
//! renormalised every 1024 samples), so a dense chord costs a few multiplies per sample rather
//! than a `sin` per partial.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::TAU;

/// Equal-tempered frequency of a MIDI note (A4 = 69 = 440 Hz).
pub fn midi_hz(note: f64) -> f64 {
    440.0 * 2f64.powf((note - 69.0) / 12.0)
}

/// Attack, decay and release in seconds; sustain as a level (0–1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Seconds from 0 to full level.
    pub attack: f64,
    /// Seconds from full level down to `sustain`.
    pub decay: f64,
    /// Level held until the release (0–1).
    pub sustain: f64,
    /// Seconds from the held level to 0 after the note ends.
    pub release: f64,
}

impl Envelope {
    /// Level at `t` seconds into a note held for `hold` seconds.
    pub fn level(&self, t: f64, hold: f64) -> f64 {
        let before_release = |t: f64| {
            if t < self.attack {
                t / self.attack.max(1e-6)
            } else if t < self.attack + self.decay {
                1.0 - (1.0 - self.sustain) * (t - self.attack) / self.decay.max(1e-6)
            } else {
                self.sustain
            }
        };
        if t < hold {
            before_release(t)
        } else {
            let from = before_release(hold);
            (from * (1.0 - (t - hold) / self.release.max(1e-6))).max(0.0)
        }
    }
}

/// How a pitched voice makes its sound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Timbre {
    /// Partials `(frequency ratio, amplitude)`; partial k decays at `damping · ratio` per second
    /// on top of the envelope (bright partials die first, as on a plucked string).
    Additive {
        /// `(frequency ratio to the note, amplitude)` of each partial.
        partials: Vec<(f64, f64)>,
        /// Extra decay per second per unit of frequency ratio.
        damping: f64,
    },
    /// Two-operator FM: carrier at the note, modulator at `ratio` × the note, modulation index
    /// `index` decaying at `index_decay` per second.
    Fm {
        /// Modulator frequency over carrier frequency.
        ratio: f64,
        /// Modulation index at the note's start.
        index: f64,
        /// Decay rate of the index, per second.
        index_decay: f64,
    },
}

/// A pitched instrument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Voice {
    /// The instrument's name, as captions use it.
    pub name: String,
    /// How it makes its sound.
    pub timbre: Timbre,
    /// Its amplitude envelope.
    pub envelope: Envelope,
    /// tanh overdrive gain (0: clean).
    pub drive: f64,
    /// Output gain.
    pub gain: f64,
}

/// Mixes `sound` into `out` from `start` seconds on, scaled by `gain` (cut at the end of `out`).
pub fn mix(out: &mut [f32], rate: f64, start: f64, sound: &[f32], gain: f64) {
    let first = (start * rate).round().max(0.0) as usize;
    if first >= out.len() {
        return;
    }
    let end = (first + sound.len()).min(out.len());
    for (o, s) in out[first..end].iter_mut().zip(sound) {
        *o += (*s as f64 * gain) as f32;
    }
}

/// One note of `voice` at `freq` Hz and velocity 1, held for `hold` seconds, then released.
pub fn render_note(rate: f64, voice: &Voice, hold: f64, freq: f64) -> Vec<f32> {
    let n = ((hold + voice.envelope.release) * rate).ceil() as usize;
    let mut note = vec![0.0f64; n];
    match &voice.timbre {
        Timbre::Additive { partials, damping } => {
            for &(ratio, amplitude) in partials {
                let f = freq * ratio;
                if f >= 0.45 * rate {
                    continue; // above what the rate can hold: would alias
                }
                add_partial(&mut note, TAU * f / rate, amplitude, damping * ratio / rate);
            }
        }
        Timbre::Fm {
            ratio,
            index,
            index_decay,
        } => {
            let (wc, wm) = (TAU * freq / rate, TAU * freq * ratio / rate);
            for (i, v) in note.iter_mut().enumerate() {
                let t = i as f64;
                let depth = index * (-index_decay * t / rate).exp();
                *v = (wc * t + depth * (wm * t).sin()).sin();
            }
        }
    }
    let drive_norm = if voice.drive > 0.0 {
        voice.drive.tanh()
    } else {
        1.0
    };
    note.iter()
        .enumerate()
        .map(|(i, v)| {
            let mut s = v * voice.envelope.level(i as f64 / rate, hold);
            if voice.drive > 0.0 {
                s = (voice.drive * s).tanh() / drive_norm;
            }
            (s * voice.gain) as f32
        })
        .collect()
}

/// Mixes one note of `voice` into `out` (sample rate `rate`) from `start` seconds, held for
/// `hold` seconds (the release follows), at `freq` Hz and `velocity` (0–1).
pub fn play_note(
    out: &mut [f32],
    rate: f64,
    voice: &Voice,
    start: f64,
    hold: f64,
    freq: f64,
    velocity: f64,
) {
    mix(
        out,
        rate,
        start,
        &render_note(rate, voice, hold, freq),
        velocity,
    );
}

/// Adds `amplitude · sin(w·i) · exp(−decay·i)` to `out` by phasor rotation.
fn add_partial(out: &mut [f64], w: f64, amplitude: f64, decay: f64) {
    let (rot_c, rot_s) = (w.cos(), w.sin());
    let shrink = (-decay).exp();
    let (mut c, mut s, mut a) = (1.0f64, 0.0f64, amplitude);
    for (i, v) in out.iter_mut().enumerate() {
        *v += a * s;
        let (nc, ns) = (c * rot_c - s * rot_s, s * rot_c + c * rot_s);
        c = nc;
        s = ns;
        a *= shrink;
        if i % 1024 == 1023 {
            let r = (c * c + s * s).sqrt();
            c /= r;
            s /= r;
        }
    }
}

/// The drum kit's pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Drum {
    /// Bass drum: a sine sweeping from 158 Hz down to 48 Hz.
    Kick,
    /// Snare drum: a 190-Hz tone and noise.
    Snare,
    /// Closed hi-hat: short bright noise.
    ClosedHat,
    /// Open hi-hat: longer bright noise.
    OpenHat,
    /// Ride cymbal: inharmonic partials over bright noise.
    Ride,
    /// Hand clap: three noise bursts.
    Clap,
    /// Rimshot.
    Rimshot,
}

impl Drum {
    /// The piece's name in captions (`kick`, `closed hi-hat`, …).
    pub fn name(self) -> &'static str {
        match self {
            Drum::Kick => "kick",
            Drum::Snare => "snare",
            Drum::ClosedHat => "closed hi-hat",
            Drum::OpenHat => "open hi-hat",
            Drum::Ride => "ride cymbal",
            Drum::Clap => "clap",
            Drum::Rimshot => "rimshot",
        }
    }
}

/// Mixes one drum hit into `out` at `start` seconds.
pub fn play_drum(
    out: &mut [f32],
    rate: f64,
    drum: Drum,
    start: f64,
    velocity: f64,
    rng: &mut ChaCha8Rng,
) {
    mix(out, rate, start, &render_drum(rate, drum, rng), velocity);
}

/// One drum hit at velocity 1 (its noise drawn from `rng`).
pub fn render_drum(rate: f64, drum: Drum, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let seconds = match drum {
        Drum::Kick => 0.45,
        Drum::Snare | Drum::Clap => 0.3,
        Drum::ClosedHat | Drum::Rimshot => 0.08,
        Drum::OpenHat => 0.4,
        Drum::Ride => 0.9,
    };
    let n = (seconds * rate) as usize;
    let (mut phase, mut prev_noise, mut hp) = (0.0f64, 0.0f64, 0.0f64);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = i as f64 / rate;
        let noise: f64 = rng.gen_range(-1.0..1.0);
        // A first difference: noise with its low end removed (cymbal-like).
        let bright = noise - prev_noise;
        prev_noise = noise;
        hp = 0.5 * hp + 0.5 * bright;
        let v = match drum {
            Drum::Kick => {
                let f = 48.0 + 110.0 * (-t / 0.035).exp();
                phase += TAU * f / rate;
                phase.sin() * (-t / 0.22).exp()
            }
            Drum::Snare => {
                phase += TAU * 190.0 / rate;
                0.5 * phase.sin() * (-t / 0.06).exp() + 0.6 * noise * (-t / 0.1).exp()
            }
            Drum::ClosedHat => 0.5 * hp * (-t / 0.025).exp(),
            Drum::OpenHat => 0.45 * hp * (-t / 0.15).exp(),
            Drum::Ride => {
                let metal: f64 = [1.0, 1.483, 1.932, 2.546]
                    .iter()
                    .map(|r| (TAU * 420.0 * r * t).sin())
                    .sum::<f64>();
                (0.08 * metal + 0.25 * hp) * (-t / 0.45).exp()
            }
            Drum::Clap => {
                let bursts = (0..3)
                    .map(|k| {
                        let dt = t - 0.011 * k as f64;
                        if dt >= 0.0 {
                            (-dt / 0.012).exp()
                        } else {
                            0.0
                        }
                    })
                    .sum::<f64>()
                    + 0.5 * (-t / 0.09).exp();
                0.45 * noise * bursts
            }
            Drum::Rimshot => {
                phase += TAU * 820.0 / rate;
                (0.6 * phase.sin() + 0.3 * hp) * (-t / 0.012).exp()
            }
        };
        out.push(v as f32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn an_additive_note_has_its_pitch_and_envelope() {
        let rate = 22_050.0;
        let voice = Voice {
            name: "test".into(),
            timbre: Timbre::Additive {
                partials: vec![(1.0, 1.0)],
                damping: 0.0,
            },
            envelope: Envelope {
                attack: 0.01,
                decay: 0.0,
                sustain: 1.0,
                release: 0.05,
            },
            drive: 0.0,
            gain: 0.5,
        };
        let mut out = vec![0.0f32; 22_050];
        play_note(&mut out, rate, &voice, 0.1, 0.5, 441.0, 1.0);
        // Before the note: silence; during: a 441 Hz sine of amplitude 0.5 (phasor drift is
        // negligible); after the release: silence again.
        assert!(out[..2205].iter().all(|&v| v == 0.0));
        for (i, &v) in out.iter().enumerate().take(2205 + 10_000).skip(2205 + 441) {
            let want = 0.5 * (TAU * 441.0 * (i - 2205) as f64 / rate).sin();
            assert!((v as f64 - want).abs() < 1e-6, "{i}");
        }
        assert!(out[2205 + 11_025 + 1103..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn drums_are_seeded_and_decay() {
        let rate = 22_050.0;
        let hit = |seed| {
            let mut out = vec![0.0f32; 22_050];
            play_drum(
                &mut out,
                rate,
                Drum::Snare,
                0.0,
                1.0,
                &mut ChaCha8Rng::seed_from_u64(seed),
            );
            out
        };
        assert_eq!(hit(1), hit(1));
        assert_ne!(hit(1), hit(2));
        let out = hit(1);
        let energy = |r: std::ops::Range<usize>| out[r].iter().map(|v| v * v).sum::<f32>();
        assert!(energy(0..1000) > 20.0 * energy(5000..6000));
        assert!(out[7000..].iter().all(|&v| v == 0.0));
        assert!((midi_hz(69.0) - 440.0).abs() < 1e-12 && (midi_hz(57.0) - 220.0).abs() < 1e-12);
    }
}
