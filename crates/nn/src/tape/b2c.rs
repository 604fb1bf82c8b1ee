//! The op B2C's training step adds to the tape: context dropout, which replaces some samples'
//! context by a constant (the empty prompt's) so that guidance against the empty prompt works
//! at reconstruction.

use super::ops::{emit, split_units, Op};
use super::{NodeId, Tape};
use crate::{ModelError, Result};

impl Tape {
    /// Per-sample blending with a constant: `x` `[B, ...]` (M values per sample) and `keep`
    /// `[B]` → `keep[b] · x[b] + (1 − keep[b]) · constant` for each sample b, where
    /// `constant` holds M values (one sample's worth, shared by all). With `keep` 0 or 1
    /// this is B2C's context dropout; the gradient reaching `x` is `keep[b] · g`. Errors when
    /// `x` has no leading B, `keep` is not B long, or `constant` is not M long.
    pub fn blend_rows(&mut self, x: NodeId, keep: &[f32], constant: &[f32]) -> Result<NodeId> {
        let shape = self.shape(x).to_vec();
        let b = shape.first().copied().unwrap_or(0);
        let len = self.values[x.0].len();
        if b == 0 || keep.len() != b || constant.len() * b != len {
            return Err(ModelError::Invalid(format!(
                "tape blend_rows: input {shape:?}, {} keep weights and a constant of {} values \
                 do not pair (expected B weights and one sample's values)",
                keep.len(),
                constant.len()
            )));
        }
        let m = len / b;
        // The backward is a mask's: dx = g · keep[b], the constant takes no gradient.
        let mask: Vec<f32> = keep
            .iter()
            .flat_map(|&k| std::iter::repeat_n(k, m))
            .collect();
        let needs = self.needs(&[x]);
        let (id, _) = self.push(&shape, Op::Mask { x, mask }, needs);
        let (before, last) = self.values.split_at_mut(id.0);
        let xv = &before[x.0];
        split_units(&mut last[0], m, |r0, y| {
            for (r, yr) in y.chunks_exact_mut(m.max(1)).enumerate() {
                let (k, xr) = (keep[r0 + r], &xv[(r0 + r) * m..][..m]);
                emit(yr, false, |i| k * xr[i] + (1.0 - k) * constant[i]);
            }
        });
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values and gradients by hand: kept samples pass x and its gradient, dropped ones hold
    /// the constant and pass no gradient, a fractional weight blends both.
    #[test]
    fn blend_rows_values_and_gradients() {
        let mut tape = Tape::new();
        let x = tape
            .parameter(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
            .unwrap();
        let y = tape
            .blend_rows(x, &[1.0, 0.0, 0.25], &[10.0, 20.0])
            .unwrap();
        assert_eq!(tape.shape(y), &[3, 2]);
        assert_eq!(tape.value(y), &[1.0, 2.0, 10.0, 20.0, 8.75, 16.5]);
        tape.backward_from(y, &[1.0, -1.0, 2.0, 3.0, 4.0, 8.0])
            .unwrap();
        assert_eq!(tape.grad(x).unwrap(), &[1.0, -1.0, 0.0, 0.0, 1.0, 2.0]);
        assert!(tape.blend_rows(x, &[1.0, 0.0], &[0.0, 0.0]).is_err());
        assert!(tape.blend_rows(x, &[1.0, 0.0, 1.0], &[0.0]).is_err());
    }
}
