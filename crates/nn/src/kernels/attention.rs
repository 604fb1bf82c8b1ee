//! Multi-head attention for f32 CPU inference in one pass, without [B, H, Lq, Lk] score tensors.
//!
//! candle multiplies the per-head products with its batched matmul (a quarter of faer's rate on
//! these shapes) and materialises every score matrix (2 × 8 × 4096² floats in a 512 px U-Net).
//! Here each task takes one (batch, head) and a block of query rows: the block's scores come
//! from one faer product, the softmax runs in place, and a second product with the values
//! writes the block's output. Heads are read in place from the [B, L, H·Dh] projections. Each
//! output row is computed by the same sequence of operations whatever the pool size, so the
//! result does not depend on the number of threads. The backward pass recomputes each head's
//! scores from q and k, a block of query rows at a time, instead of storing them
//! ([`AttentionBackwardF32`]).

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::contiguous_f32;
use super::math::exp_shifted_in_place;
use super::simd::widest_fn;
use super::softmax::softmax_grad_in_place;

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

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
        let (b, lq, dq) = q.dims3()?;
        let (_, lk, dv) = v.dims3()?;
        // Custom ops take three inputs: keys and values travel together.
        let kv = Tensor::cat(&[k.flatten_all()?, v.flatten_all()?], 0)?;
        let op = AttentionBackwardF32 {
            heads: self.heads,
            scale: self.scale,
            dims: [b, lq, lk, dq, dv],
        };
        let packed = q.apply_op3_no_bwd(&kv, &grad.contiguous()?, &op)?;
        let (nq, nk, nv) = (b * lq * dq, b * lk * dq, b * lk * dv);
        let part = |start: usize, len: usize, shape: (usize, usize, usize)| {
            packed.narrow(0, start, len)?.reshape(shape)
        };
        Ok((
            Some(part(0, nq, (b, lq, dq))?),
            Some(part(nq, nk, (b, lk, dq))?),
            Some(part(nq + nk, nv, (b, lk, dv))?),
        ))
    }
}

/// The gradients of [`FusedAttentionF32`]: `(q [B, Lq, H·Dh], k‖v flattened, dO [B, Lq, H·Dv])`
/// → `[dq, dk, dv]` flattened in the inputs' layouts. One task per (batch, head); within it,
/// blocks of query rows: S = scale·Q Kᵀ, P = softmax(S), dP = dO Vᵀ, dS = P ⊙ (dP − Σ_j dP⊙P),
/// dQ = scale·dS K, and dK += scale·dSᵀ Q, dV += Pᵀ dO summed over the blocks in order.
struct AttentionBackwardF32 {
    heads: usize,
    scale: f32,
    /// `[B, Lq, Lk, H·Dh, H·Dv]`.
    dims: [usize; 5],
}

impl CustomOp3 for AttentionBackwardF32 {
    fn name(&self) -> &'static str {
        "brainrecon-attention-f32-backward"
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
        let kv = contiguous_f32(s2, l2, name, "keys and values")?;
        let d_out = contiguous_f32(s3, l3, name, "output gradient")?;
        let [b, lq, lk, dq, dv] = self.dims;
        let h = self.heads;
        if h == 0
            || dq % h != 0
            || dv % h != 0
            || q.len() != b * lq * dq
            || kv.len() != b * lk * (dq + dv)
            || d_out.len() != b * lq * dv
        {
            candle_core::bail!("{name}: inputs do not fit {:?} with {h} heads", self.dims);
        }
        let (k, v) = kv.split_at(b * lk * dq);
        let (dh, dvh) = (dq / h, dv / h);
        let block = (SCORES_PER_TASK / lk.max(1)).clamp(16, 256);
        let scale = self.scale;
        // Per (batch, head): dQ [Lq, Dh], dK [Lk, Dh], dV [Lk, Dvh], head-major.
        let per_head: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..b * h)
            .into_par_iter()
            .map(|bh| {
                let (bi, hi) = (bh / h, bh % h);
                let qm = MatRef::from_row_major_slice(&q[bi * lq * dq..][..lq * dq], lq, dq)
                    .subcols(hi * dh, dh);
                let km = MatRef::from_row_major_slice(&k[bi * lk * dq..][..lk * dq], lk, dq)
                    .subcols(hi * dh, dh);
                let vm = MatRef::from_row_major_slice(&v[bi * lk * dv..][..lk * dv], lk, dv)
                    .subcols(hi * dvh, dvh);
                let dom = MatRef::from_row_major_slice(&d_out[bi * lq * dv..][..lq * dv], lq, dv)
                    .subcols(hi * dvh, dvh);
                let (mut dqh, mut dkh, mut dvh_buf) = (
                    vec![0f32; lq * dh],
                    vec![0f32; lk * dh],
                    vec![0f32; lk * dvh],
                );
                let mut p = vec![0f32; block * lk];
                let mut dp = vec![0f32; block * lk];
                let mut r0 = 0;
                while r0 < lq {
                    let rows = block.min(lq - r0);
                    let (p, dp) = (&mut p[..rows * lk], &mut dp[..rows * lk]);
                    let (q_blk, do_blk) = (qm.subrows(r0, rows), dom.subrows(r0, rows));
                    let pm = MatMut::from_row_major_slice_mut(p, rows, lk);
                    matmul(pm, Accum::Replace, q_blk, km.transpose(), scale, Par::Seq);
                    for row in p.chunks_mut(lk) {
                        let inv = 1.0 / exp_shifted_widest(row);
                        row.iter_mut().for_each(|x| *x *= inv);
                    }
                    let dpm = MatMut::from_row_major_slice_mut(dp, rows, lk);
                    matmul(
                        dpm,
                        Accum::Replace,
                        do_blk,
                        vm.transpose(),
                        1.0f32,
                        Par::Seq,
                    );
                    // dV += Pᵀ dO (before dP is turned into dS in place).
                    let pr = MatRef::from_row_major_slice(p, rows, lk);
                    let dvm = MatMut::from_row_major_slice_mut(&mut dvh_buf, lk, dvh);
                    matmul(dvm, Accum::Add, pr.transpose(), do_blk, 1.0f32, Par::Seq);
                    for (d, y) in dp.chunks_mut(lk).zip(p.chunks(lk)) {
                        softmax_grad_in_place(y, d);
                    }
                    let dsm = MatRef::from_row_major_slice(dp, rows, lk);
                    let dqm = MatMut::from_row_major_slice_mut(
                        &mut dqh[r0 * dh..][..rows * dh],
                        rows,
                        dh,
                    );
                    matmul(dqm, Accum::Replace, dsm, km, scale, Par::Seq);
                    let dkm = MatMut::from_row_major_slice_mut(&mut dkh, lk, dh);
                    matmul(dkm, Accum::Add, dsm.transpose(), q_blk, scale, Par::Seq);
                    r0 += rows;
                }
                (dqh, dkh, dvh_buf)
            })
            .collect();
        // Head-major → the inputs' [B, L, H·D] layouts, packed [dq | dk | dv].
        let mut packed = vec![0f32; q.len() + kv.len()];
        let (pq, rest) = packed.split_at_mut(q.len());
        let (pk, pv) = rest.split_at_mut(b * lk * dq);
        let dqs: Vec<&[f32]> = per_head.iter().map(|t| t.0.as_slice()).collect();
        let dks: Vec<&[f32]> = per_head.iter().map(|t| t.1.as_slice()).collect();
        let dvs: Vec<&[f32]> = per_head.iter().map(|t| t.2.as_slice()).collect();
        scatter_heads(pq, &dqs, lq, dq, h);
        scatter_heads(pk, &dks, lk, dq, h);
        scatter_heads(pv, &dvs, lk, dv, h);
        let len = packed.len();
        Ok((CpuStorage::F32(packed), Shape::from(len)))
    }
}

/// Head-major `heads[b·H + h]` `[L, D]` → `dst` `[B, L, H·D]` (`width` = H·D).
fn scatter_heads(dst: &mut [f32], heads: &[&[f32]], len: usize, width: usize, h: usize) {
    let hw = width / h;
    dst.par_chunks_mut(width).enumerate().for_each(|(row, d)| {
        let (bi, li) = (row / len, row % len);
        for (hi, out) in d.chunks_mut(hw).enumerate() {
            out.copy_from_slice(&heads[bi * h + hi][li * hw..][..hw]);
        }
    });
}

widest_fn!(pub(crate) fn exp_shifted_widest(row: &mut [f32]) -> f32 = exp_shifted_in_place);

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use crate::kernels::grads_of;

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
            // f64 takes candle's elementary ops: the reference.
            let wide = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
            let reference =
                multi_head_attention(&wide(&q), &wide(&k), &wide(&v), heads, false, None, false)
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap();
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

    /// The backward pass (scores recomputed per block of query rows) against candle's
    /// elementary ops in f64: two query blocks (256 + 44 rows), cross-attention, saturated
    /// scores.
    #[test]
    fn fused_attention_backward_matches_the_elementary_ops_in_f64() {
        for (b, lq, lk, inner, heads, scale) in [
            (2, 300, 150, 16, 2, 1.0),
            (1, 70, 77, 24, 3, 1.0),
            (1, 65, 65, 8, 2, 12.0),
        ] {
            let inputs = [
                seeded(&[b, lq, inner], 7, scale),
                seeded(&[b, lk, inner], 8, scale),
                seeded(&[b, lk, inner], 9, 1.0),
            ];
            let probe = seeded(&[b, lq, inner], 10, 1.0);
            let grads = |inputs: &[Tensor]| {
                let run = |t: &[Tensor]| {
                    multi_head_attention(&t[0], &t[1], &t[2], heads, false, None, false).unwrap()
                };
                grads_of(run, inputs, &probe)
            };
            let wide: Vec<Tensor> = inputs
                .iter()
                .map(|t| t.to_dtype(DType::F64).unwrap())
                .collect();
            for (name, (fast, reference)) in ["q", "k", "v"]
                .iter()
                .zip(grads(&inputs).iter().zip(&grads(&wide)))
            {
                let max = |t: &Tensor| {
                    t.abs()
                        .unwrap()
                        .max_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap()
                };
                let d = max(&(fast - reference).unwrap());
                let tol = 1e-4 * max(reference) + 1e-6;
                assert!(
                    d <= tol,
                    "({b}, {lq}, {lk}, {inner}, {heads}) d{name}: {d} > {tol}"
                );
            }
        }
    }
}
