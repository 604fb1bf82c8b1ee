//! Text generation over any model that gives next-token logits.

/// A model that gives the logits of the next token for a batch of rows (beams).
///
/// Implementations keep their own key/value cache: `next_logits` receives the whole sequences
/// (all rows the same length) and runs only the tokens the cache has not seen.
pub trait NextTokenLogits {
    /// rows × vocab logits (before any softmax) of the token after each sequence.
    fn next_logits(&mut self, sequences: &[Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>>;
    /// Keeps the cached state of `rows`: new row i is old row `rows[i]` (beams reordered).
    fn reorder(&mut self, rows: &[usize]) -> candle_core::Result<()>;
}
