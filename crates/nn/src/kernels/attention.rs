//! Multi-head attention for f32 CPU inference in one pass, without [B, H, Lq, Lk] score tensors.
//!
//! candle multiplies the per-head products with its batched matmul (a quarter of faer's rate on
//! these shapes) and materialises every score matrix (2 × 8 × 4096² floats in a 512 px U-Net).
//! Here each task takes one (batch, head) and a block of query rows: the block's scores come
//! from one faer product, the softmax runs in place, and a second product with the values
//! writes the block's output. Heads are read in place from the [B, L, H·Dh] projections. Each
//! output row is computed by the same sequence of operations whatever the pool size, so the
//! result does not depend on the number of threads. No backward pass: inference only.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::contiguous_f32;
use super::math::exp_shifted_in_place;
use super::simd::widest_fn;

/// Scores per task: up to 256 query rows of 4096 keys (4 MiB), fewer for longer key sequences.
/// Longer blocks reuse each packed key and value panel for more rows.
const SCORES_PER_TASK: usize = 1 << 20;

/// (q [B, Lq, H·Dh], k [B, Lk, H·Dh], v [B, Lk, H·Dv]) → [B, Lq, H·Dv], scores scaled by `scale`.
pub(crate) struct FusedAttentionF32 {
    pub heads: usize,
    pub scale: f32,
}

impl CustomOp3 for FusedAttentionF32 {
    fn name(&self) -> &'static str {
        "brainrecon-attention-f32"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let name = self.name();
        let q = contiguous_f32(s1, l1, name, "queries")?;
        let k = contiguous_f32(s2, l2, name, "keys")?;
        let v = contiguous_f32(s3, l3, name, "values")?;
        let ((b, lq, dq), (bk, lk, dk), (bv, lv, dv)) = (
            l1.shape().dims3()?,
            l2.shape().dims3()?,
            l3.shape().dims3()?,
        );
        let h = self.heads;
        if b != bk || b != bv || lk != lv || dq != dk || h == 0 || dq % h != 0 || dv % h != 0 {
            candle_core::bail!(
                "{name}: queries {:?}, keys {:?}, values {:?} do not fit {h} heads",
                l1.dims(),
                l2.dims(),
                l3.dims()
            );
        }
        let (dh, dvh) = (dq / h, dv / h);
        // Output in [B, H, Lq, Dv/H] so that each task owns a contiguous chunk.
        let mut heads_out = vec![0f32; b * h * lq * dvh];
        if b * lq * dv == 0 {
            return Ok((CpuStorage::F32(vec![]), Shape::from((b, lq, dv))));
        }
        if lk == 0 {
            candle_core::bail!("{name}: no keys to attend to");
        }
        let block = (SCORES_PER_TASK / lk).clamp(16, 256);
        heads_out
            .par_chunks_mut(lq * dvh)
            .enumerate()
            .flat_map(|(bh, chunk)| {
                chunk
                    .par_chunks_mut(block * dvh)
                    .enumerate()
                    .map(move |(blk, out)| (bh, blk, out))
            })
            .for_each_init(
                || vec![0f32; block * lk],
                |scores, (bh, blk, out)| {
                    let (bi, hi) = (bh / h, bh % h);
                    let r0 = blk * block;
                    let rows = out.len() / dvh;
                    let qm = MatRef::from_row_major_slice(&q[bi * lq * dq..][..lq * dq], lq, dq)
                        .submatrix(r0, hi * dh, rows, dh);
                    let km = MatRef::from_row_major_slice(&k[bi * lk * dk..][..lk * dk], lk, dk)
                        .subcols(hi * dh, dh);
                    let vm = MatRef::from_row_major_slice(&v[bi * lk * dv..][..lk * dv], lk, dv)
                        .subcols(hi * dvh, dvh);
                    let s = &mut scores[..rows * lk];
                    let sm = MatMut::from_row_major_slice_mut(s, rows, lk);
                    matmul(sm, Accum::Replace, qm, km.transpose(), self.scale, Par::Seq);
                    // exp(s − max) in place; the division by each row's sum is applied to the
                    // (narrower) output rows instead of the scores.
                    let sums: Vec<f32> = s.chunks_mut(lk).map(exp_shifted_widest).collect();
                    let om = MatMut::from_row_major_slice_mut(out, rows, dvh);
                    let pm = MatRef::from_row_major_slice(&scores[..rows * lk], rows, lk);
                    matmul(om, Accum::Replace, pm, vm, 1.0f32, Par::Seq);
                    for (row, sum) in out.chunks_mut(dvh).zip(sums) {
                        let inv = 1.0 / sum;
                        row.iter_mut().for_each(|o| *o *= inv);
                    }
                },
            );
        // [B, H, Lq, Dvh] → [B, Lq, H·Dvh]
        let mut out = vec![0f32; b * lq * dv];
        out.par_chunks_mut(dv).enumerate().for_each(|(row, dst)| {
            let (bi, li) = (row / lq, row % lq);
            for hi in 0..h {
                let src = &heads_out[((bi * h + hi) * lq + li) * dvh..][..dvh];
                dst[hi * dvh..(hi + 1) * dvh].copy_from_slice(src);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b, lq, dv))))
    }
}

widest_fn!(fn exp_shifted_widest(row: &mut [f32]) -> f32 = exp_shifted_in_place);

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use crate::layers::multi_head_attention;
    use crate::rng::SeededNoise;

    fn seeded(shape: &[usize], seed: u64, scale: f32) -> Tensor {
        let mut noise = SeededNoise::new(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = noise.normal_vec(n).into_iter().map(|x| x * scale).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn fused_attention_matches_the_differentiable_path() {
        // Two query blocks (256 + 44 rows), cross-attention on 77 keys, one wide
        // head (the VAE's), and large logits so that the softmax saturates.
        for (b, lq, lk, inner, heads, scale) in [
            (2, 300, 150, 16, 2, 1.0),
            (1, 70, 77, 24, 3, 1.0),
            (2, 64, 9, 32, 1, 1.0),
            (1, 65, 65, 8, 2, 12.0),
        ] {
            let q = seeded(&[b, lq, inner], 1, scale);
            let k = seeded(&[b, lk, inner], 2, scale);
            let v = seeded(&[b, lk, inner], 3, 1.0);
            let fused = multi_head_attention(&q, &k, &v, heads, false, None, false).unwrap();
            // A tracked query takes candle's differentiable ops.
            let qv = Var::from_tensor(&q).unwrap();
            let reference =
                multi_head_attention(qv.as_tensor(), &k, &v, heads, false, None, false).unwrap();
            assert_eq!(fused.dims(), reference.dims());
            let d = (fused - reference.detach())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 2e-5, "({b}, {lq}, {lk}, {inner}, {heads}): off by {d}");
        }
    }

    #[test]
    fn fused_attention_does_not_depend_on_the_pool_size() {
        let q = seeded(&[2, 130, 16], 4, 1.0);
        let k = seeded(&[2, 90, 16], 5, 1.0);
        let v = seeded(&[2, 90, 16], 6, 1.0);
        let run = |threads: usize| -> Vec<f32> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| multi_head_attention(&q, &k, &v, 2, false, None, false))
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(run(1), run(3));
    }
}
