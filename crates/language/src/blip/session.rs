//! A captioning run over BLIP's text decoder for the search algorithms of
//! [`crate::generate`]: [`CaptionSession`] implements [`NextTokenLogits`].

use brainrecon_nn::{ModelError, Result};
use candle_core::{Device, Tensor};

use super::text::{BlipTextLMHeadModel, TextKvCache};
use crate::generate::NextTokenLogits;

/// The decoder, its key/value cache and the tokens each cached row has seen.
///
/// Built with the encoder states (image features, or decoded brain features) of each row. The
/// first [`NextTokenLogits::next_logits`] call may have more rows than the states: with `n`
/// state rows and `k·n` sequences, state row `i` serves sequences `i·k … i·k + k − 1`
/// (transformers' `repeat_interleave` of the inputs over beams). Cross-attention keys/values are
/// computed once, at construction.
#[derive(Clone, Debug)]
pub struct CaptionSession<'m> {
    decoder: &'m BlipTextLMHeadModel,
    cache: TextKvCache,
    /// Per row, the tokens the cache has seen (empty before the first step).
    seen: Vec<Vec<u32>>,
    device: Device,
}

impl<'m> CaptionSession<'m> {
    /// `encoder_hidden_states` [N, Lenc, encoder width], attended in full (an all-ones mask, as
    /// BLIP's `generate` passes).
    pub fn new(decoder: &'m BlipTextLMHeadModel, encoder_hidden_states: &Tensor) -> Result<Self> {
        Ok(CaptionSession {
            decoder,
            cache: decoder.bert.new_cache(Some(encoder_hidden_states))?,
            seen: Vec::new(),
            device: encoder_hidden_states.device().clone(),
        })
    }

    /// A session without cross-attention (the decoder as a plain causal language model).
    pub fn without_encoder(decoder: &'m BlipTextLMHeadModel, device: &Device) -> Result<Self> {
        Ok(CaptionSession {
            decoder,
            cache: decoder.bert.new_cache(None)?,
            seen: Vec::new(),
            device: device.clone(),
        })
    }

    /// The key/value cache of the tokens seen so far.
    pub fn cache(&self) -> &TextKvCache {
        &self.cache
    }

    /// The first step: spread the state rows over the sequences.
    fn expand_rows(&mut self, n: usize) -> Result<()> {
        let Some(rows) = self.cache.rows()? else {
            return Ok(());
        };
        if rows == n {
            return Ok(());
        }
        // `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
        #[allow(clippy::manual_is_multiple_of)]
        if rows == 0 || n % rows != 0 {
            return Err(ModelError::Invalid(format!(
                "{n} sequences for {rows} rows of encoder states: expected a multiple"
            )));
        }
        let k = n / rows;
        let index: Vec<usize> = (0..n).map(|i| i / k).collect();
        self.cache.reorder(&index)
    }

    /// Logits of the token after each sequence, running only the tokens the cache lacks.
    pub fn step(&mut self, sequences: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let n = sequences.len();
        let len = sequences.first().map_or(0, Vec::len);
        if n == 0 || len == 0 || sequences.iter().any(|s| s.len() != len) {
            return Err(ModelError::Invalid(
                "next_logits needs at least one sequence, all of one non-zero length".into(),
            ));
        }
        let done = self.cache.len();
        if self.seen.is_empty() {
            self.expand_rows(n)?;
        } else if self.seen.len() != n {
            return Err(ModelError::Invalid(format!(
                "{n} sequences, but the cache holds {} rows (call reorder when beams change)",
                self.seen.len()
            )));
        }
        if len <= done {
            return Err(ModelError::Invalid(format!(
                "sequences of {len} tokens bring nothing new: the cache has seen {done}"
            )));
        }
        for (i, (s, seen)) in sequences.iter().zip(&self.seen).enumerate() {
            if s[..done] != seen[..] {
                return Err(ModelError::Invalid(format!(
                    "sequence {i} differs from the tokens its cached row has seen (call reorder \
                     when beams change)"
                )));
            }
        }
        let new: Vec<u32> = sequences.iter().flat_map(|s| s[done..].to_vec()).collect();
        let ids = Tensor::from_vec(new, (n, len - done), &self.device)?;
        let logits = self.decoder.next_token_logits(&ids, &mut self.cache)?;
        self.seen = sequences.to_vec();
        Ok(logits.to_dtype(candle_core::DType::F32)?.to_vec2()?)
    }

    /// Keeps rows `rows` (new row i is old row `rows[i]`).
    pub fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        if !self.seen.is_empty() {
            if let Some(&bad) = rows.iter().find(|&&r| r >= self.seen.len()) {
                return Err(ModelError::Invalid(format!(
                    "row {bad} does not exist: the session holds {} rows",
                    self.seen.len()
                )));
            }
            self.seen = rows.iter().map(|&r| self.seen[r].clone()).collect();
        }
        self.cache.reorder(rows)
    }
}

fn to_candle(e: ModelError) -> candle_core::Error {
    match e {
        ModelError::Candle(c) => c,
        other => candle_core::Error::Msg(other.to_string()),
    }
}

impl NextTokenLogits for CaptionSession<'_> {
    fn next_logits(&mut self, sequences: &[Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        self.step(sequences).map_err(to_candle)
    }

    fn reorder(&mut self, rows: &[usize]) -> candle_core::Result<()> {
        self.select_rows(rows).map_err(to_candle)
    }
}
