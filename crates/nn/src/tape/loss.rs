//! Losses recorded as one node: the value and its gradient computed together in f64.

use super::{NodeId, Tape};
use crate::{ModelError, Result};

/// The terms of [`Tape::contrastive_alignment_loss`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EncoderLossParts {
    /// `contrastive + align_weight · alignment`.
    pub total: f64,
    /// CLIP's symmetric InfoNCE of the L2-normalised rows.
    pub contrastive: f64,
    /// Mean squared error + 1 − mean cosine.
    pub alignment: f64,
}

/// torch's clamp of norms (and of the product of norms in cosine similarity).
const NORM_FLOOR: f64 = 1e-8;

impl Tape {
    /// MinD-Video's encoder loss on `x` [B, M] (any shape with B leading rows) against the
    /// constant `target` of the same shape: CLIP's symmetric InfoNCE of the L2-normalised rows
    /// (norms clamped at 1e-8, logits = cosines / `temperature`) plus `align_weight` × (mean
    /// squared error + 1 − mean per-row cosine). One node; value and gradient in f64.
    /// Errors when the lengths differ or B < 1.
    pub fn contrastive_alignment_loss(
        &mut self,
        x: NodeId,
        target: &[f32],
        temperature: f64,
        align_weight: f64,
    ) -> Result<(NodeId, EncoderLossParts)> {
        let b = self.shape(x).first().copied().unwrap_or(0);
        let xv = self.value(x);
        if b == 0 || xv.len() != target.len() || xv.len() % b != 0 {
            return Err(ModelError::Invalid(format!(
                "tape loss: prediction {:?} and target of {} values do not pair",
                self.shape(x),
                target.len()
            )));
        }
        let m = xv.len() / b;
        let row = |v: &[f32], i: usize| -> Vec<f64> {
            v[i * m..][..m].iter().map(|&e| e as f64).collect()
        };
        let a: Vec<Vec<f64>> = (0..b).map(|i| row(xv, i)).collect();
        let t: Vec<Vec<f64>> = (0..b).map(|i| row(target, i)).collect();
        let norm = |v: &[f64]| v.iter().map(|e| e * e).sum::<f64>().sqrt();
        let dot = |u: &[f64], v: &[f64]| u.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
        let na: Vec<f64> = a.iter().map(|v| norm(v)).collect();
        let nt: Vec<f64> = t.iter().map(|v| norm(v)).collect();
        let p: Vec<Vec<f64>> = a
            .iter()
            .zip(&na)
            .map(|(v, &n)| v.iter().map(|e| e / n.max(NORM_FLOOR)).collect())
            .collect();
        let qn: Vec<Vec<f64>> = t
            .iter()
            .zip(&nt)
            .map(|(v, &n)| v.iter().map(|e| e / n.max(NORM_FLOOR)).collect())
            .collect();
        // logits[i][j] = p_i · q_j / τ; softmax over rows (a → b) and over columns (b → a)
        let logits: Vec<Vec<f64>> = (0..b)
            .map(|i| (0..b).map(|j| dot(&p[i], &qn[j]) / temperature).collect())
            .collect();
        let softmax = |v: Vec<f64>| -> (Vec<f64>, f64) {
            let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = v.iter().map(|x| (x - max).exp()).collect();
            let s: f64 = e.iter().sum();
            (e.iter().map(|x| x / s).collect(), max + s.ln())
        };
        let mut dlogits = vec![vec![0f64; b]; b];
        let (mut ce_rows, mut ce_cols) = (0f64, 0f64);
        let half_mean = 0.5 / b as f64;
        for i in 0..b {
            let (sm, lse) = softmax(logits[i].clone());
            ce_rows += lse - logits[i][i];
            for j in 0..b {
                dlogits[i][j] += half_mean * (sm[j] - if i == j { 1.0 } else { 0.0 });
            }
        }
        for j in 0..b {
            let (sm, lse) = softmax((0..b).map(|i| logits[i][j]).collect());
            ce_cols += lse - logits[j][j];
            for i in 0..b {
                dlogits[i][j] += half_mean * (sm[i] - if i == j { 1.0 } else { 0.0 });
            }
        }
        let contrastive = 0.5 * (ce_rows + ce_cols) / b as f64;
        let mut mse = 0f64;
        let mut cos_sum = 0f64;
        let mut dx = vec![0f32; b * m];
        let inv_bm = 1.0 / (b * m) as f64;
        for i in 0..b {
            // contrastive: through p_i = a_i / max(|a_i|, floor)
            let mut dp = vec![0f64; m];
            for j in 0..b {
                let c = dlogits[i][j] / temperature;
                dp.iter_mut().zip(&qn[j]).for_each(|(d, q)| *d += c * q);
            }
            let da: Vec<f64> = if na[i] > NORM_FLOOR {
                let pd = dot(&p[i], &dp);
                dp.iter()
                    .zip(&p[i])
                    .map(|(d, pe)| (d - pe * pd) / na[i])
                    .collect()
            } else {
                dp.iter().map(|d| d / NORM_FLOOR).collect()
            };
            // alignment: MSE and −cosine
            let den = na[i] * nt[i];
            let dt = dot(&a[i], &t[i]);
            let cos = dt / den.max(NORM_FLOOR);
            cos_sum += cos;
            for (e, dxe) in dx[i * m..][..m].iter_mut().enumerate() {
                let diff = a[i][e] - t[i][e];
                mse += diff * diff * inv_bm;
                let dcos = if den > NORM_FLOOR {
                    t[i][e] / den - cos * a[i][e] / (na[i] * na[i])
                } else {
                    t[i][e] / NORM_FLOOR
                };
                let dalign = 2.0 * diff * inv_bm - dcos / b as f64;
                *dxe = (da[e] + align_weight * dalign) as f32;
            }
        }
        let alignment = mse + 1.0 - cos_sum / b as f64;
        let total = contrastive + align_weight * alignment;
        let id = self.scalar_with_grad(x, total as f32, dx);
        Ok((
            id,
            EncoderLossParts {
                total,
                contrastive,
                alignment,
            },
        ))
    }
}

impl Tape {
    /// B2C's CLIP alignment term on `x` [B, ...] against the constant `target` of the same
    /// shape: `weight · (MSE + 1 − mean cosine)`, the MSE over every value (the mean of the
    /// per-sample MSEs: samples have the same size) and the cosine of each sample's flattened
    /// values with the product of the norms clamped at 1e-8 (torch's `cosine_similarity`). One
    /// scalar node; value and gradient in f64. Returns the node and the unweighted term.
    /// Errors when the lengths differ or B < 1.
    pub fn alignment_loss(
        &mut self,
        x: NodeId,
        target: &[f32],
        weight: f64,
    ) -> Result<(NodeId, f64)> {
        let b = self.shape(x).first().copied().unwrap_or(0);
        let xv = self.value(x);
        if b == 0 || xv.len() != target.len() || xv.len() % b != 0 {
            return Err(ModelError::Invalid(format!(
                "tape alignment loss: prediction {:?} and target of {} values do not pair",
                self.shape(x),
                target.len()
            )));
        }
        let m = xv.len() / b;
        let inv_n = 1.0 / xv.len() as f64;
        let inv_b = 1.0 / b as f64;
        let mut dx = vec![0f32; xv.len()];
        let (mut mse, mut cos_sum) = (0f64, 0f64);
        for ((a, t), d) in xv
            .chunks_exact(m)
            .zip(target.chunks_exact(m))
            .zip(dx.chunks_exact_mut(m))
        {
            let (mut aa, mut tt, mut at) = (0f64, 0f64, 0f64);
            for (&a, &t) in a.iter().zip(t) {
                let (a, t) = (a as f64, t as f64);
                aa += a * a;
                tt += t * t;
                at += a * t;
                mse += (a - t) * (a - t) * inv_n;
            }
            let (na, nt) = (aa.sqrt(), tt.sqrt());
            let den = na * nt;
            let cos = at / den.max(NORM_FLOOR);
            cos_sum += cos;
            for ((d, &a), &t) in d.iter_mut().zip(a).zip(t) {
                let (a, t) = (a as f64, t as f64);
                // d cos / d a: (t − cos·a·nt/na) / den, or t / floor where the clamp holds
                let dcos = if den > NORM_FLOOR {
                    t / den - cos * a / (na * na)
                } else {
                    t / NORM_FLOOR
                };
                *d = (weight * (2.0 * (a - t) * inv_n - dcos * inv_b)) as f32;
            }
        }
        let term = mse + 1.0 - cos_sum * inv_b;
        let id = self.scalar_with_grad(x, (weight * term) as f32, dx);
        Ok((id, term))
    }
}
