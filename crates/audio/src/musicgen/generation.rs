//! MusicGen's generation loop as transformers' `MusicgenForConditionalGeneration.generate` runs
//! it (greedy search or sampling; beams are not part of MusicGen's generation):
//!
//! 1. the decoder starts from the start token in every codebook, the delay pattern built for
//!    `1 + max_new_tokens` steps ([`DelayPattern`]);
//! 2. with classifier-free guidance (`guidance_scale > 1`) the batch is run twice, once with the
//!    text's states and once with zero states (and an all-zero mask), and the scores are
//!    `uncond + (cond − uncond) · guidance_scale`;
//! 3. each step picks one code per codebook (argmax, or a draw after temperature and top-k) and
//!    the next step's input has the delay pattern applied (forced steps are the pad);
//! 4. at the end the pattern is undone: codebook k's free steps, `max_new_tokens + 1 − K` frames
//!    (mono), the codes EnCodec decodes.
//!
//! Draws come from a ChaCha8 stream the caller seeds (torch's random stream is not reproduced):
//! one uniform number per batch item and codebook and step, in that order.

use brainrecon_nn::Result;
use candle_core::Tensor;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::config::{invalid, MusicgenGenerationDefaults};
use super::decoder::{EncoderOutput, MusicgenForCausalLM};
use super::delay::{undo_delay_pattern, DelayPattern};

/// How each step's code is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decoding {
    /// `do_sample=False`: the highest score (the first one on ties, as torch's argmax).
    Greedy,
    /// `do_sample=True`: scores divided by `temperature`, all but the `top_k` highest set to
    /// −∞ (ties with the k-th kept; 0 = off), then one draw from their softmax.
    Sample {
        /// Codes kept before the draw (0 = all).
        top_k: usize,
        /// Divides the scores before the softmax (1 = unchanged).
        temperature: f32,
    },
}

/// Settings of [`generate`], named as transformers' `generate` arguments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenerationSettings {
    /// Decoder steps after the start token; each codebook gets `max_new_tokens + 1 − K` frames
    /// (mono). At most the decoder's `max_position_embeddings`.
    pub max_new_tokens: usize,
    /// Classifier-free guidance; 1 = none.
    pub guidance_scale: f32,
    /// How each step's code is chosen.
    pub decoding: Decoding,
}

impl GenerationSettings {
    /// Greedy decoding (`do_sample=False`) of `max_new_tokens` steps with `guidance_scale`.
    pub fn greedy(max_new_tokens: usize, guidance_scale: f32) -> Self {
        GenerationSettings {
            max_new_tokens,
            guidance_scale,
            decoding: Decoding::Greedy,
        }
    }

    /// Top-`top_k` sampling at temperature 1 of `max_new_tokens` steps with `guidance_scale`.
    pub fn top_k(max_new_tokens: usize, guidance_scale: f32, top_k: usize) -> Self {
        GenerationSettings {
            max_new_tokens,
            guidance_scale,
            decoding: Decoding::Sample {
                top_k,
                temperature: 1.0,
            },
        }
    }

    /// The checkpoint's `generation_config.json` settings (facebook's MusicGen: sampling,
    /// top-k 250, guidance 3) with this many new tokens.
    pub fn from_defaults(defaults: &MusicgenGenerationDefaults, max_new_tokens: usize) -> Self {
        let decoding = if defaults.do_sample {
            Decoding::Sample {
                top_k: defaults.top_k,
                temperature: defaults.temperature,
            }
        } else {
            Decoding::Greedy
        };
        GenerationSettings {
            max_new_tokens,
            guidance_scale: defaults.guidance_scale,
            decoding,
        }
    }

    fn check(&self, max_positions: usize) -> Result<()> {
        if self.max_new_tokens == 0 || self.max_new_tokens > max_positions {
            return Err(invalid(format!(
                "max_new_tokens {} is out of range: expected 1 to the decoder's \
                 max_position_embeddings {max_positions}",
                self.max_new_tokens
            )));
        }
        if !(self.guidance_scale.is_finite() && self.guidance_scale >= 1.0) {
            return Err(invalid(format!(
                "guidance_scale {} is not a number ≥ 1 (1 = no guidance)",
                self.guidance_scale
            )));
        }
        if let Decoding::Sample { temperature, .. } = self.decoding {
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(invalid(format!(
                    "temperature {temperature} is not a positive number"
                )));
            }
        }
        Ok(())
    }
}

/// What [`generate`] returns.
#[derive(Clone, Debug)]
pub struct GeneratedCodes {
    /// [B, K, frames] u32, the delay pattern undone: the input of EnCodec's decoder (see
    /// [`super::CodesToAudio`]).
    pub codes: Tensor,
    /// `[B][K][1 + max_new_tokens]`: the decoder's sequences with the delay pattern applied (the
    /// start token first), as transformers' `sequences` before the pattern is undone.
    pub sequences: Vec<Vec<Vec<u32>>>,
    /// The delay pattern the sequences were generated under.
    pub pattern: DelayPattern,
}

/// `uncond + (cond − uncond) · scale`, per score (transformers'
/// `ClassifierFreeGuidanceLogitsProcessor`).
pub fn guided_scores(cond: &[f32], uncond: &[f32], scale: f32) -> Vec<f32> {
    cond.iter()
        .zip(uncond)
        .map(|(&c, &u)| u + (c - u) * scale)
        .collect()
}

/// Index of the largest score, the first on ties.
fn argmax(scores: &[f32]) -> usize {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best
}

/// Temperature, top-k, then one draw from the softmax (the first index whose cumulative
/// probability exceeds a uniform draw).
fn sample(scores: &mut [f32], top_k: usize, temperature: f32, rng: &mut ChaCha8Rng) -> usize {
    if temperature != 1.0 {
        scores.iter_mut().for_each(|s| *s /= temperature);
    }
    if top_k > 0 && top_k < scores.len() {
        let mut sorted = scores.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let kth = sorted[top_k - 1];
        scores
            .iter_mut()
            .filter(|s| **s < kth)
            .for_each(|s| *s = f32::NEG_INFINITY);
    }
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = scores.iter().map(|&s| ((s - max) as f64).exp()).collect();
    let total: f64 = exp.iter().sum();
    let u: f64 = rng.gen::<f64>() * total;
    let mut cumulative = 0.0;
    let mut last = 0;
    for (i, &e) in exp.iter().enumerate() {
        if e > 0.0 {
            cumulative += e;
            last = i;
            if u < cumulative {
                return i;
            }
        }
    }
    // rounding left the sum just below the draw: the last possible code
    last
}

/// The decoder's input for steps `past..len` of `sequences` [B][K][len], the pattern applied
/// → [B, K, len − past] u32.
fn step_input(
    sequences: &[Vec<Vec<u32>>],
    pattern: &DelayPattern,
    past: usize,
    device: &candle_core::Device,
) -> Result<Tensor> {
    let b = sequences.len();
    let k_count = pattern.num_codebooks();
    let len = sequences[0][0].len();
    let mut data = Vec::with_capacity(b * k_count * (len - past));
    for item in sequences {
        for (k, row) in item.iter().enumerate() {
            data.extend((past..len).map(|t| {
                if pattern.forced[k][t] {
                    pattern.pad
                } else {
                    row[t]
                }
            }));
        }
    }
    Ok(Tensor::from_vec(data, (b, k_count, len - past), device)?)
}

/// Generates codes conditioned on `encoder` (the text encoder's states for a batch), starting
/// from `start_token` (the checkpoint's `decoder_start_token_id`, also the delay pattern's pad).
/// `rng` is drawn from only when sampling.
pub fn generate(
    decoder: &MusicgenForCausalLM,
    encoder: &EncoderOutput,
    start_token: u32,
    settings: &GenerationSettings,
    rng: &mut ChaCha8Rng,
) -> Result<GeneratedCodes> {
    let c = decoder.config();
    settings.check(c.max_position_embeddings)?;
    if start_token as usize > c.vocab_size {
        return Err(invalid(format!(
            "start token {start_token} is outside the embedding tables (0..={})",
            c.vocab_size
        )));
    }
    let max_length = settings.max_new_tokens + 1;
    let pattern = DelayPattern::new(c.num_codebooks, c.audio_channels, max_length, start_token)?;
    let b = encoder.batch()?;
    let guided = settings.guidance_scale > 1.0;
    let conditioning = if guided {
        encoder.with_unconditional()?
    } else {
        encoder.clone()
    };
    let mut cache = decoder.start(&conditioning)?;
    let device = encoder.hidden_states.device();
    let mut sequences = vec![vec![vec![start_token]; c.num_codebooks]; b];
    for _ in 0..settings.max_new_tokens {
        let x = step_input(&sequences, &pattern, cache.len(), device)?;
        let x = if guided {
            Tensor::cat(&[&x, &x], 0)?
        } else {
            x
        };
        let logits = decoder.forward(&x, &mut cache)?;
        let last = logits.dim(2)? - 1;
        let last: Vec<Vec<Vec<f32>>> = logits.narrow(2, last, 1)?.squeeze(2)?.to_vec3()?;
        for (i, item) in sequences.iter_mut().enumerate() {
            for (k, row) in item.iter_mut().enumerate() {
                let mut scores = if guided {
                    guided_scores(&last[i][k], &last[b + i][k], settings.guidance_scale)
                } else {
                    last[i][k].clone()
                };
                let code = match settings.decoding {
                    Decoding::Greedy => argmax(&scores),
                    Decoding::Sample { top_k, temperature } => {
                        sample(&mut scores, top_k, temperature, rng)
                    }
                };
                row.push(code as u32);
            }
        }
    }
    for item in sequences.iter_mut() {
        for (k, row) in item.iter_mut().enumerate() {
            pattern.apply_row(k, row);
        }
    }
    let frames = pattern.frames();
    let codes: Vec<u32> = sequences
        .iter()
        .flat_map(|item| undo_delay_pattern(item, &pattern).into_iter().flatten())
        .collect();
    Ok(GeneratedCodes {
        codes: Tensor::from_vec(codes, (b, c.num_codebooks, frames), device)?,
        sequences,
        pattern,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn guidance_extrapolates_from_the_unconditional_scores() {
        assert_eq!(guided_scores(&[2.0, 0.0], &[1.0, 1.0], 3.0), [4.0, -2.0]);
        assert_eq!(guided_scores(&[2.0, 0.0], &[1.0, 1.0], 1.0), [2.0, 0.0]);
    }

    #[test]
    fn top_k_draws_only_the_k_best() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let base = [0.5f32, 3.0, -1.0, 2.9, 2.8, 0.0];
        for _ in 0..200 {
            let i = sample(&mut base.to_vec(), 2, 1.0, &mut rng);
            assert!(i == 1 || i == 3, "{i}");
        }
        // ties with the k-th score are kept
        let tied = [1.0f32, 2.0, 1.0, 0.0];
        let mut seen = [false; 4];
        for _ in 0..200 {
            seen[sample(&mut tied.to_vec(), 2, 1.0, &mut rng)] = true;
        }
        assert_eq!(seen, [true, true, true, false]);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
    }

    #[test]
    fn bad_settings_are_refused() {
        let s = GenerationSettings::greedy(0, 1.0);
        assert!(s
            .check(10)
            .unwrap_err()
            .to_string()
            .contains("max_new_tokens 0"));
        let s = GenerationSettings::greedy(11, 1.0);
        let e = s.check(10).unwrap_err().to_string();
        assert!(e.contains("max_position_embeddings 10"), "{e}");
        let s = GenerationSettings::greedy(5, 0.5);
        assert!(s
            .check(10)
            .unwrap_err()
            .to_string()
            .contains("guidance_scale"));
        let mut s = GenerationSettings::top_k(5, 3.0, 4);
        s.decoding = Decoding::Sample {
            top_k: 4,
            temperature: 0.0,
        };
        assert!(s.check(10).unwrap_err().to_string().contains("temperature"));
    }
}
