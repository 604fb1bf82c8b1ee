//! MusicGen's delay pattern: codebook k runs k steps behind codebook 0, so that each step
//! predicts codebook k of frame t − k, after the coarser codebooks of that frame.
//!
//! With 4 codebooks and `max_length` 8 (P = pad, `-` = generated):
//!
//! ```text
//! P - - - - P P P
//! P P - - - - P P
//! P P P - - - - P
//! P P P P - - - -
//! ```
//!
//! Position 0 of every row is the start token; the first k positions of row k and the last
//! K − 1 − k are forced to the pad. Stereo checkpoints interleave left and right codebooks, and
//! the pattern repeats each row for both channels. The same layout as transformers'
//! `build_delay_pattern_mask` / `apply_delay_pattern_mask`; [`undo_delay_pattern`] gives what
//! EnCodec decodes.

use brainrecon_nn::Result;

use super::config::invalid;

/// The pattern of one batch item: `forced[k][t]` is true where codebook k's step t is the pad.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelayPattern {
    /// `[num_codebooks][max_length]`.
    pub forced: Vec<Vec<bool>>,
    /// The token of the forced steps (`decoder_start_token_id`).
    pub pad: u32,
    /// 1, or 2 when rows alternate left and right.
    pub audio_channels: usize,
}

impl DelayPattern {
    /// The pattern of `num_codebooks` rows (interleaved left/right pairs when `audio_channels`
    /// is 2) over `max_length` steps. Errors when `max_length` is too short for the delays to
    /// leave a frame (transformers then skips the pattern silently).
    #[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87; the workspace supports 1.85
    pub fn new(
        num_codebooks: usize,
        audio_channels: usize,
        max_length: usize,
        pad: u32,
    ) -> Result<Self> {
        if audio_channels == 0 || num_codebooks == 0 || num_codebooks % audio_channels != 0 {
            return Err(invalid(format!(
                "{num_codebooks} codebooks cannot be split over {audio_channels} audio channels"
            )));
        }
        let per_channel = num_codebooks / audio_channels;
        if max_length < 2 * per_channel - 1 || max_length <= per_channel {
            return Err(invalid(format!(
                "a sequence of {max_length} steps (the start token and the new tokens) is too \
                 short for the delay pattern of {per_channel} codebooks: at least {} are needed",
                (2 * per_channel - 1).max(per_channel + 1)
            )));
        }
        let forced = (0..num_codebooks)
            .map(|row| {
                let k = row / audio_channels;
                (0..max_length)
                    .map(|t| t <= k || t >= max_length - per_channel + 1 + k)
                    .collect()
            })
            .collect();
        Ok(DelayPattern {
            forced,
            pad,
            audio_channels,
        })
    }

    /// Rows: codebooks of all audio channels.
    pub fn num_codebooks(&self) -> usize {
        self.forced.len()
    }

    /// Steps per row, the start token included.
    pub fn max_length(&self) -> usize {
        self.forced[0].len()
    }

    /// Frames each codebook holds once the pattern is undone (`max_length − K` for mono).
    pub fn frames(&self) -> usize {
        self.forced[0].iter().filter(|&&f| !f).count()
    }

    /// `apply_delay_pattern_mask` on one row of codebook `k`: forced steps become the pad.
    pub fn apply_row(&self, k: usize, row: &mut [u32]) {
        for (t, token) in row.iter_mut().enumerate() {
            if self.forced[k][t] {
                *token = self.pad;
            }
        }
    }
}

/// `build_delay_pattern_mask` for one batch item's prompt (`prompt[k]` the codes of codebook k,
/// all the same length): each codebook's prompt shifted right by its delay, forced steps set to
/// the pad, free steps without a prompt code left as None. Returns that mask
/// (`[K][max_length]`) and the decoder's input: the mask's steps before the first free step of
/// codebook 0.
#[allow(clippy::type_complexity)]
pub fn build_delay_pattern_mask(
    prompt: &[Vec<u32>],
    pattern: &DelayPattern,
) -> Result<(Vec<Vec<Option<u32>>>, Vec<Vec<u32>>)> {
    let k_count = pattern.num_codebooks();
    if prompt.len() != k_count {
        return Err(invalid(format!(
            "the prompt has {} codebook rows; expected {k_count}",
            prompt.len()
        )));
    }
    let len = prompt[0].len();
    let max_length = pattern.max_length();
    if prompt.iter().any(|r| r.len() != len) || len >= max_length {
        return Err(invalid(format!(
            "prompt rows must share one length below max_length {max_length}"
        )));
    }
    let mask: Vec<Vec<Option<u32>>> = (0..k_count)
        .map(|row| {
            let delay = row / pattern.audio_channels;
            (0..max_length)
                .map(|t| {
                    if pattern.forced[row][t] {
                        Some(pattern.pad)
                    } else if t >= delay && t < len + delay {
                        Some(prompt[row][t - delay])
                    } else {
                        None
                    }
                })
                .collect()
        })
        .collect();
    let start = mask[0].iter().position(|m| m.is_none()).unwrap_or(len);
    let input = mask
        .iter()
        .map(|row| {
            row[..start]
                .iter()
                .map(|m| m.unwrap_or(pattern.pad))
                .collect()
        })
        .collect();
    Ok((mask, input))
}

/// Undoes the delay pattern of one batch item's full sequences (`[K][max_length]`, the pattern
/// applied): codebook k's free steps, `[K][frames]` — the codes EnCodec decodes.
pub fn undo_delay_pattern(sequences: &[Vec<u32>], pattern: &DelayPattern) -> Vec<Vec<u32>> {
    sequences
        .iter()
        .zip(&pattern.forced)
        .map(|(row, forced)| {
            row.iter()
                .zip(forced)
                .filter(|(_, &f)| !f)
                .map(|(&t, _)| t)
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(p: &DelayPattern) -> Vec<String> {
        p.forced
            .iter()
            .map(|r| r.iter().map(|&f| if f { 'P' } else { '-' }).collect())
            .collect()
    }

    #[test]
    fn the_pattern_of_transformers_docstring() {
        let p = DelayPattern::new(4, 1, 8, 9).unwrap();
        assert_eq!(render(&p), ["P----PPP", "PP----PP", "PPP----P", "PPPP----"]);
        assert_eq!(p.frames(), 4);
        // with a prompt a..h (two codes per codebook), shifted by the delays
        let prompt = vec![vec![1, 2], vec![3, 4], vec![5, 6], vec![7, 8]];
        let (mask, input) = build_delay_pattern_mask(&prompt, &p).unwrap();
        let show = |r: &Vec<Option<u32>>| -> Vec<i64> {
            r.iter().map(|m| m.map_or(-1, |v| v as i64)).collect()
        };
        assert_eq!(show(&mask[0]), [9, 2, -1, -1, -1, 9, 9, 9]);
        assert_eq!(show(&mask[1]), [9, 9, 4, -1, -1, -1, 9, 9]);
        assert_eq!(show(&mask[3]), [9, 9, 9, 9, 8, -1, -1, -1]);
        assert_eq!(input, vec![vec![9, 2], vec![9, 9], vec![9, 9], vec![9, 9]]);
    }

    #[test]
    fn stereo_rows_repeat_per_channel() {
        let p = DelayPattern::new(4, 2, 5, 0).unwrap();
        assert_eq!(render(&p), ["P---P", "P---P", "PP---", "PP---"]);
        // with a prompt, as transformers 5.23's build_delay_pattern_mask gives it
        let p = DelayPattern::new(4, 2, 5, 9).unwrap();
        let prompt = vec![vec![1, 2], vec![3, 4], vec![5, 6], vec![7, 8]];
        let (mask, input) = build_delay_pattern_mask(&prompt, &p).unwrap();
        let show: Vec<Vec<i64>> = mask
            .iter()
            .map(|r| r.iter().map(|m| m.map_or(-1, |v| v as i64)).collect())
            .collect();
        assert_eq!(
            show,
            [
                [9, 2, -1, -1, 9],
                [9, 4, -1, -1, 9],
                [9, 9, 6, -1, -1],
                [9, 9, 8, -1, -1]
            ]
        );
        assert_eq!(input, vec![vec![9, 2], vec![9, 4], vec![9, 9], vec![9, 9]]);
    }

    #[test]
    fn undo_keeps_the_free_steps() {
        let p = DelayPattern::new(3, 1, 6, 0).unwrap();
        let mut seq = vec![vec![7, 1, 2, 3, 9, 9], vec![7, 7, 4, 5, 6, 9], vec![7; 6]];
        seq[2] = vec![7, 7, 7, 8, 8, 8];
        for (k, row) in seq.iter_mut().enumerate() {
            p.apply_row(k, row);
        }
        assert_eq!(seq[0], [0, 1, 2, 3, 0, 0]);
        assert_eq!(
            undo_delay_pattern(&seq, &p),
            vec![vec![1, 2, 3], vec![4, 5, 6], vec![8, 8, 8]]
        );
    }

    #[test]
    fn too_short_sequences_are_refused() {
        let e = DelayPattern::new(4, 1, 6, 0).unwrap_err().to_string();
        assert!(e.contains("at least 7"), "{e}");
        assert!(DelayPattern::new(1, 1, 1, 0).is_err());
        assert!(DelayPattern::new(1, 1, 2, 0).is_ok());
    }
}
