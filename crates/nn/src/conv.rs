//! 2-D convolution on the CPU in f32 as im2col + faer matrix products, forward and backward.
//!
//! candle's CPU convolution and its gradients run at a few GFLOP/s on the small feature maps of
//! the project's own models; faer's GEMM runs at ~200 GFLOP/s here. Each image is unfolded to
//! columns [C·k·k, Ho·Wo] and multiplied by the weight [O, C·k·k]; the gradients are the two
//! transposed products, and col2im folds the input gradient back. Images are spread over the
//! rayon pool, each product single-threaded (the products are small). 3×3 stride-1 forward
//! passes over maps of 64×64 and more take Winograd's F(2×2, 3×3) instead (`winograd.rs`):
//! 16 products per 2×2 outputs instead of 36.

use crate::kernels::contiguous_f32;
use crate::kernels::simd::widest_fn;
use crate::winograd::{self, Shape3x3};
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Geometry of one convolution; kernel, stride and padding as (rows, columns).
/// (The training tape's convolution uses it too, with an unbounded budget: one block.)
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub(crate) batch: usize,
    pub(crate) channels: usize,
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) out_channels: usize,
    pub(crate) kernel: (usize, usize),
    pub(crate) stride: (usize, usize),
    pub(crate) padding: (usize, usize),
    /// Column-buffer elements per block of output rows.
    pub(crate) budget: usize,
}

/// ~32 MB of f32 columns per block.
const COLUMN_BUDGET: usize = 8 << 20;

impl Geometry {
    pub(crate) fn out_hw(&self) -> (usize, usize) {
        let o = |n: usize, k: usize, s: usize, p: usize| (n + 2 * p - k) / s + 1;
        (
            o(self.height, self.kernel.0, self.stride.0, self.padding.0),
            o(self.width, self.kernel.1, self.stride.1, self.padding.1),
        )
    }

    /// The shape for [`winograd::conv3x3`] when this is a 3×3 stride-1 convolution with the
    /// same padding on both axes.
    fn winograd(&self) -> Option<Shape3x3> {
        let square = self.kernel == (3, 3) && self.stride == (1, 1);
        (square && self.padding.0 == self.padding.1).then_some(Shape3x3 {
            batch: self.batch,
            channels: self.channels,
            height: self.height,
            width: self.width,
            out_channels: self.out_channels,
            padding: self.padding.0,
        })
    }

    pub(crate) fn ckk(&self) -> usize {
        self.channels * self.kernel.0 * self.kernel.1
    }

    /// Output rows in blocks whose columns stay under ~32 MB, so a 512 px image does not
    /// need a full [C·k·k, Ho·Wo] buffer.
    fn row_blocks(&self) -> Vec<std::ops::Range<usize>> {
        let (ho, wo) = self.out_hw();
        let rows = (self.budget / (self.ckk() * wo).max(1)).clamp(1, ho);
        (0..ho.div_ceil(rows))
            .map(|i| i * rows..((i + 1) * rows).min(ho))
            .collect()
    }

    /// Output columns `ox` whose input column `ox·s + kx − p` lies inside the image.
    fn valid_columns(&self, kx: usize) -> std::ops::Range<usize> {
        let (_, wo) = self.out_hw();
        let (s, p) = (self.stride.1, self.padding.1);
        let lo = p.saturating_sub(kx).div_ceil(s).min(wo);
        let hi = match (self.width + p).checked_sub(kx + 1) {
            Some(last) => (last / s + 1).min(wo),
            None => 0,
        };
        lo..hi.max(lo)
    }

    /// Input row of output row `oy` and kernel row `ky`, if inside the image.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride.0 + ky)
            .checked_sub(self.padding.0)
            .filter(|&y| y < self.height)
    }

    /// Columns [C·kh·kw, len(rows)·Wo] of output rows `rows` of one image [C, H, W].
    ///
    /// Each (channel, ky, kx, output row) is a strided run of one input row with zeros where
    /// the kernel hangs over the edge; with stride 1 the run is one slice copy.
    pub(crate) fn im2col(&self, image: &[f32], rows: std::ops::Range<usize>, cols: &mut [f32]) {
        let (_, wo) = self.out_hw();
        let n = rows.len() * wo;
        let ((kh, kw), s) = (self.kernel, self.stride.1);
        for c in 0..self.channels {
            let plane = &image[c * self.height * self.width..][..self.height * self.width];
            for ky in 0..kh {
                for kx in 0..kw {
                    let row = (c * kh + ky) * kw + kx;
                    let out = &mut cols[row * n..(row + 1) * n];
                    let valid = self.valid_columns(kx);
                    for (r, oy) in rows.clone().enumerate() {
                        let dst = &mut out[r * wo..(r + 1) * wo];
                        let Some(y) = self.input_row(oy, ky) else {
                            dst.fill(0.0);
                            continue;
                        };
                        dst[..valid.start].fill(0.0);
                        dst[valid.end..].fill(0.0);
                        let x0 = valid.start * s + kx - self.padding.1;
                        let src = &plane[y * self.width..(y + 1) * self.width];
                        let run = &mut dst[valid.clone()];
                        if s == 1 {
                            run.copy_from_slice(&src[x0..x0 + run.len()]);
                        } else {
                            for (i, d) in run.iter_mut().enumerate() {
                                *d = src[x0 + i * s];
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds columns [C·k·k, len(rows)·Wo] of output rows `rows` back into an image gradient.
    pub(crate) fn col2im(&self, cols: &[f32], rows: std::ops::Range<usize>, image: &mut [f32]) {
        col2im_widest(self, cols, rows, image)
    }

    #[inline(always)]
    fn col2im_inline(&self, cols: &[f32], rows: std::ops::Range<usize>, image: &mut [f32]) {
        let (_, wo) = self.out_hw();
        let n = rows.len() * wo;
        let ((kh, kw), s) = (self.kernel, self.stride.1);
        for c in 0..self.channels {
            let plane = &mut image[c * self.height * self.width..][..self.height * self.width];
            for ky in 0..kh {
                for kx in 0..kw {
                    let row = (c * kh + ky) * kw + kx;
                    let col = &cols[row * n..(row + 1) * n];
                    let valid = self.valid_columns(kx);
                    for (r, oy) in rows.clone().enumerate() {
                        let Some(y) = self.input_row(oy, ky) else {
                            continue;
                        };
                        let x0 = valid.start * s + kx - self.padding.1;
                        let dst = &mut plane[y * self.width..(y + 1) * self.width];
                        let run = &col[r * wo + valid.start..r * wo + valid.end];
                        if s == 1 {
                            // a whole-slice add, which the compiler vectorises
                            let dst = &mut dst[x0..x0 + run.len()];
                            dst.iter_mut().zip(run).for_each(|(d, v)| *d += v);
                        } else {
                            for (i, v) in run.iter().enumerate() {
                                dst[x0 + i * s] += v;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Largest column buffer any block needs.
    fn cols_len(&self) -> usize {
        let (_, wo) = self.out_hw();
        self.row_blocks()
            .iter()
            .map(|r| r.len() * wo * self.ckk())
            .max()
            .unwrap_or(0)
    }
}

widest_fn!(fn col2im_widest(
    g: &Geometry,
    cols: &[f32],
    rows: std::ops::Range<usize>,
    image: &mut [f32],
) = Geometry::col2im_inline);

fn f32_slice<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    contiguous_f32(storage, layout, "conv2d", what)
}

/// `dst[:, cols] = lhs · rhs`: `dst` row-major [m, n_total], `lhs` [m, k], `rhs` [k, len].
fn gemm_into(
    dst: &mut [f32],
    n_total: usize,
    cols: std::ops::Range<usize>,
    lhs: &[f32],
    rhs: &[f32],
    k: usize,
    par: Par,
) {
    let m = dst.len() / n_total;
    let dst = MatMut::from_row_major_slice_mut(dst, m, n_total).subcols_mut(cols.start, cols.len());
    let lhs = MatRef::from_row_major_slice(lhs, m, k);
    let rhs = MatRef::from_row_major_slice(&rhs[..k * cols.len()], k, cols.len());
    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, par);
}

/// `dst = lhsᵀ · rhs[:, cols]`: `lhs` row-major [k, m], `rhs` [k, n_total]; `dst` [m, len].
fn gemm_tn_from(
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    n_total: usize,
    cols: std::ops::Range<usize>,
    par: Par,
) {
    let k = rhs.len() / n_total;
    let m = lhs.len() / k;
    let dst = MatMut::from_row_major_slice_mut(&mut dst[..m * cols.len()], m, cols.len());
    let lhs = MatRef::from_row_major_slice(lhs, k, m).transpose();
    let rhs = MatRef::from_row_major_slice(rhs, k, n_total).subcols(cols.start, cols.len());
    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, par);
}

/// `dst += lhs[:, cols] · rhsᵀ`: `lhs` row-major [m, n_total], `rhs` [k, len]; `dst` [m, k].
fn gemm_nt_add_from(
    dst: &mut [f32],
    lhs: &[f32],
    n_total: usize,
    cols: std::ops::Range<usize>,
    rhs: &[f32],
    par: Par,
) {
    let m = lhs.len() / n_total;
    let k = dst.len() / m;
    let dst = MatMut::from_row_major_slice_mut(dst, m, k);
    let lhs = MatRef::from_row_major_slice(lhs, m, n_total).subcols(cols.start, cols.len());
    let rhs = MatRef::from_row_major_slice(&rhs[..k * cols.len()], k, cols.len()).transpose();
    matmul(dst, Accum::Add, lhs, rhs, 1.0f32, par);
}

/// Whether to spread images over the threads (each product single-threaded) rather than
/// thread each product: when there are at least as many images as threads.
fn per_image(batch: usize) -> bool {
    batch >= rayon::current_num_threads()
}

/// Runs `work(columns buffer, (image index, its chunk of out), product threading)` on every
/// `chunk`-sized piece of `out`: images in parallel with single-threaded products when there
/// are enough of them, else one image at a time with threaded products.
fn for_each_image(
    g: &Geometry,
    out: &mut [f32],
    chunk: usize,
    work: impl Fn(&mut Vec<f32>, (usize, &mut [f32]), Par) + Sync,
) {
    if per_image(g.batch) {
        out.par_chunks_mut(chunk).enumerate().for_each_init(
            || vec![0f32; g.cols_len()],
            |cols, item| work(cols, item, Par::Seq),
        );
    } else {
        let mut cols = vec![0f32; g.cols_len()];
        for item in out.chunks_mut(chunk).enumerate() {
            work(&mut cols, item, Par::rayon(0));
        }
    }
}

/// The forward op: (input [B, C, H, W], weight [O, C, kh, kw]) → [B, O, Ho, Wo].
#[derive(Clone, Copy, Debug)]
struct Conv2dOp {
    stride: (usize, usize),
    padding: (usize, usize),
    budget: usize,
}

impl Conv2dOp {
    fn geometry(&self, input: &[usize], weight: &[usize]) -> candle_core::Result<Geometry> {
        let ((ph, pw), (sh, sw)) = (self.padding, self.stride);
        match (input, weight) {
            (&[b, c, h, w], &[o, wc, kh, kw])
                if wc == c && h + 2 * ph >= kh && w + 2 * pw >= kw && sh > 0 && sw > 0 =>
            {
                Ok(Geometry {
                    batch: b,
                    channels: c,
                    height: h,
                    width: w,
                    out_channels: o,
                    kernel: (kh, kw),
                    stride: self.stride,
                    padding: self.padding,
                    budget: self.budget,
                })
            }
            _ => candle_core::bail!("conv2d: input {input:?} and weight {weight:?} do not fit"),
        }
    }
}

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "brainrecon-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.geometry(l1.dims(), l2.dims())?;
        let (x, w) = (f32_slice(s1, l1, "input")?, f32_slice(s2, l2, "weight")?);
        let (ho, wo) = g.out_hw();
        if let Some(s) = g.winograd().filter(Shape3x3::pays) {
            let out = winograd::conv3x3(&s, x, w);
            let shape = Shape::from((g.batch, g.out_channels, ho, wo));
            return Ok((CpuStorage::F32(out), shape));
        }
        let (chw, ohw) = (g.channels * g.height * g.width, g.out_channels * ho * wo);
        let mut out = vec![0f32; g.batch * ohw];
        let image = |cols: &mut Vec<f32>, (b, y): (usize, &mut [f32]), par: Par| {
            for rows in g.row_blocks() {
                let span = rows.start * wo..rows.end * wo;
                g.im2col(&x[b * chw..(b + 1) * chw], rows, cols);
                gemm_into(y, ho * wo, span, w, cols, g.ckk(), par);
            }
        };
        for_each_image(&g, &mut out, ohw, image);
        Ok((
            CpuStorage::F32(out),
            Shape::from((g.batch, g.out_channels, ho, wo)),
        ))
    }

    fn bwd(
        &self,
        input: &Tensor,
        weight: &Tensor,
        _output: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // A network's first convolution reads data, which needs no gradient: skipping it
        // saves a product as large as the forward pass and the col2im.
        let grad_input = match input.track_op() {
            true => Some(grad.apply_op2_no_bwd(
                &weight.contiguous()?,
                &GradInput {
                    op: *self,
                    input_dims: input.dims().to_vec(),
                },
            )?),
            false => None,
        };
        let grad_weight = match weight.track_op() {
            true => Some(input.contiguous()?.apply_op2_no_bwd(
                &grad,
                &GradWeight {
                    op: *self,
                    weight_dims: weight.dims().to_vec(),
                },
            )?),
            false => None,
        };
        Ok((grad_input, grad_weight))
    }
}

/// (grad_output [B, O, Ho, Wo], weight) → grad_input [B, C, H, W].
struct GradInput {
    op: Conv2dOp,
    input_dims: Vec<usize>,
}

impl CustomOp2 for GradInput {
    fn name(&self) -> &'static str {
        "brainrecon-conv2d-grad-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.op.geometry(&self.input_dims, l2.dims())?;
        let (dy, w) = (f32_slice(s1, l1, "grad")?, f32_slice(s2, l2, "weight")?);
        let (ho, wo) = g.out_hw();
        let (chw, ohw) = (g.channels * g.height * g.width, g.out_channels * ho * wo);
        let mut dx = vec![0f32; g.batch * chw];
        let image = |cols: &mut Vec<f32>, (b, dxb): (usize, &mut [f32]), par: Par| {
            let dyb = &dy[b * ohw..(b + 1) * ohw];
            for rows in g.row_blocks() {
                let span = rows.start * wo..rows.end * wo;
                gemm_tn_from(cols, w, dyb, ho * wo, span, par);
                g.col2im(cols, rows, dxb);
            }
        };
        for_each_image(&g, &mut dx, chw, image);
        Ok((CpuStorage::F32(dx), Shape::from(self.input_dims.clone())))
    }
}

/// (input, grad_output) → grad_weight [O, C, k, k].
struct GradWeight {
    op: Conv2dOp,
    weight_dims: Vec<usize>,
}

impl CustomOp2 for GradWeight {
    fn name(&self) -> &'static str {
        "brainrecon-conv2d-grad-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.op.geometry(l1.dims(), &self.weight_dims)?;
        let (x, dy) = (f32_slice(s1, l1, "input")?, f32_slice(s2, l2, "grad")?);
        let (ho, wo) = g.out_hw();
        let (chw, ohw, wlen) = (
            g.channels * g.height * g.width,
            g.out_channels * ho * wo,
            g.out_channels * g.ckk(),
        );
        // One partial sum per thread's share of the images, added in a fixed order (the
        // result depends on the pool size, not on scheduling).
        let threads = rayon::current_num_threads().max(1);
        let per = g.batch.div_ceil(threads);
        let par = if per_image(g.batch) {
            Par::Seq
        } else {
            Par::rayon(0)
        };
        let partials: Vec<Vec<f32>> = (0..g.batch.div_ceil(per))
            .into_par_iter()
            .map(|chunk| {
                let mut dw = vec![0f32; wlen];
                let mut cols = vec![0f32; g.cols_len()];
                for b in chunk * per..((chunk + 1) * per).min(g.batch) {
                    for rows in g.row_blocks() {
                        let span = rows.start * wo..rows.end * wo;
                        g.im2col(&x[b * chw..(b + 1) * chw], rows, &mut cols);
                        gemm_nt_add_from(
                            &mut dw,
                            &dy[b * ohw..(b + 1) * ohw],
                            ho * wo,
                            span,
                            &cols,
                            par,
                        );
                    }
                }
                dw
            })
            .collect();
        let mut dw = vec![0f32; wlen];
        for part in partials {
            for (a, b) in dw.iter_mut().zip(part) {
                *a += b;
            }
        }
        Ok((CpuStorage::F32(dw), Shape::from(self.weight_dims.clone())))
    }
}

/// Convolution of `input` [B, C, H, W] with `weight` [O, C, k, k] (no bias), differentiable.
/// f32 on the CPU takes the im2col + GEMM path (Winograd's for large 3×3 stride-1 maps);
/// anything else goes to candle.
pub fn conv2d(
    input: &Tensor,
    weight: &Tensor,
    padding: usize,
    stride: usize,
) -> candle_core::Result<Tensor> {
    conv2d_in_blocks(
        input,
        weight,
        (padding, padding),
        (stride, stride),
        COLUMN_BUDGET,
    )
}

/// [`conv2d`] with a kernel [O, C, kh, kw] and padding and stride as (rows, columns), as
/// torch's `Conv2d` with tuples (Inception's 1×7 and 7×1 convolutions).
pub fn conv2d_rect(
    input: &Tensor,
    weight: &Tensor,
    padding: (usize, usize),
    stride: (usize, usize),
) -> candle_core::Result<Tensor> {
    conv2d_in_blocks(input, weight, padding, stride, COLUMN_BUDGET)
}

fn conv2d_in_blocks(
    input: &Tensor,
    weight: &Tensor,
    padding: (usize, usize),
    stride: (usize, usize),
    budget: usize,
) -> candle_core::Result<Tensor> {
    #[cfg(feature = "cuda")]
    if crate::kernels::fused(input, &[weight]) {
        return crate::cuda::conv2d(input, weight, padding, stride);
    }
    let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    if f32_cpu(input) && f32_cpu(weight) {
        let op = Conv2dOp {
            stride,
            padding,
            budget,
        };
        return input.contiguous()?.apply_op2(&weight.contiguous()?, op);
    }
    if padding.0 != padding.1 || stride.0 != stride.1 {
        candle_core::bail!(
            "conv2d: padding {padding:?} and stride {stride:?} differ between the axes, which only \
             the f32 CPU and CUDA paths support"
        );
    }
    input.conv2d(weight, padding.0, stride.0, 1, 1)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn seeded(shape: &[usize], seed: u64) -> Tensor {
        let mut noise = crate::rng::SeededNoise::new(seed);
        let n: usize = shape.iter().product();
        Tensor::from_vec(noise.normal_vec(n), shape, &Device::Cpu).unwrap()
    }

    /// Largest |a − b| over the largest |b|.
    fn relative_error(a: &Tensor, b: &Tensor) -> f32 {
        let max = |t: &Tensor| {
            t.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        max(&(a - b).unwrap()) / max(b)
    }

    #[test]
    fn matches_candles_convolution_and_its_gradients() {
        for (shape, weight, padding, stride) in [
            ([2, 3, 9, 7], [5, 3, 3, 3], 1, 1),
            ([3, 4, 8, 8], [6, 4, 3, 3], 1, 2),
            ([2, 4, 6, 6], [3, 4, 1, 1], 0, 1),
            ([1, 2, 9, 9], [2, 2, 3, 3], 0, 2),
            // The kernel wider than the image, and stride 2 over odd sizes with padding.
            ([1, 2, 3, 4], [2, 2, 5, 5], 2, 1),
            ([2, 3, 7, 5], [2, 3, 3, 3], 1, 2),
        ] {
            let x = Var::from_tensor(&seeded(&shape, 1)).unwrap();
            let w = Var::from_tensor(&seeded(&weight, 2)).unwrap();
            let target = |y: &Tensor| y.sqr().unwrap().sum_all().unwrap();
            // A tiny budget makes one block per output row: the blocked path is checked too.
            let ours = conv2d(x.as_tensor(), w.as_tensor(), padding, stride).unwrap();
            let (pp, ss) = ((padding, padding), (stride, stride));
            let blocked = conv2d_in_blocks(x.as_tensor(), w.as_tensor(), pp, ss, 1).unwrap();
            // Two output rows per block: with an odd number of rows the last block is shorter.
            let ckk = weight[1] * weight[2] * weight[3];
            let wo = (shape[3] + 2 * padding - weight[2]) / stride + 1;
            let uneven =
                conv2d_in_blocks(x.as_tensor(), w.as_tensor(), pp, ss, 2 * ckk * wo).unwrap();
            let reference = x
                .as_tensor()
                .conv2d(w.as_tensor(), padding, stride, 1, 1)
                .unwrap();
            assert_eq!(ours.dims(), reference.dims());
            assert!(
                relative_error(&ours, &reference) < 1e-5,
                "{shape:?} forward"
            );
            assert!(
                relative_error(&blocked, &reference) < 1e-5,
                "{shape:?} forward in blocks"
            );
            assert!(
                relative_error(&uneven, &reference) < 1e-5,
                "{shape:?} forward in uneven blocks"
            );
            let g2 = target(&reference).backward().unwrap();
            for candidate in [&ours, &blocked, &uneven] {
                let g1 = target(candidate).backward().unwrap();
                for v in [&x, &w] {
                    let d = relative_error(g1.get(v).unwrap(), g2.get(v).unwrap());
                    assert!(d < 1e-4, "{shape:?} gradient off by {d}");
                }
            }
        }
    }

    /// A map large enough for the Winograd path: the same result as candle's convolution,
    /// and gradients through it (the backward pass stays im2col).
    #[test]
    fn winograd_path_matches_candle_forward_and_backward() {
        let (shape, weight) = ([1, 16, 64, 66], [20, 16, 3, 3]);
        let op = Conv2dOp {
            stride: (1, 1),
            padding: (1, 1),
            budget: COLUMN_BUDGET,
        };
        let s = op.geometry(&shape, &weight).unwrap();
        assert!(
            s.winograd().is_some_and(|w| w.pays()),
            "the test must take the Winograd path"
        );
        let x = Var::from_tensor(&seeded(&shape, 5)).unwrap();
        let w = Var::from_tensor(&seeded(&weight, 6)).unwrap();
        let ours = conv2d(x.as_tensor(), w.as_tensor(), 1, 1).unwrap();
        let reference = x.as_tensor().conv2d(w.as_tensor(), 1, 1, 1, 1).unwrap();
        assert!(relative_error(&ours, &reference) < 2e-6);
        let target = |y: &Tensor| y.sqr().unwrap().sum_all().unwrap();
        let (g1, g2) = (
            target(&ours).backward().unwrap(),
            target(&reference).backward().unwrap(),
        );
        for v in [&x, &w] {
            assert!(relative_error(g1.get(v).unwrap(), g2.get(v).unwrap()) < 1e-4);
        }
    }

    /// Direct evaluation of the convolution sum in f64, for kernels and paddings candle cannot
    /// take (and for the Winograd path's tests).
    pub(crate) fn naive(
        x: &Tensor,
        w: &Tensor,
        (ph, pw): (usize, usize),
        (sh, sw): (usize, usize),
    ) -> Vec<f64> {
        let (b, c, h, wd) = x.dims4().unwrap();
        let (o, _, kh, kw) = w.dims4().unwrap();
        let (xv, wv) = (
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            w.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        let (ho, wo) = ((h + 2 * ph - kh) / sh + 1, (wd + 2 * pw - kw) / sw + 1);
        let mut out = vec![0f64; b * o * ho * wo];
        for (n, y) in out.iter_mut().enumerate() {
            let (bi, oi, oy, ox) = (n / (o * ho * wo), n / (ho * wo) % o, n / wo % ho, n % wo);
            let mut acc = 0f64;
            for ci in 0..c {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let (iy, ix) = (
                            (oy * sh + ky) as isize - ph as isize,
                            (ox * sw + kx) as isize - pw as isize,
                        );
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                            continue;
                        }
                        let xi = ((bi * c + ci) * h + iy as usize) * wd + ix as usize;
                        let wi = ((oi * c + ci) * kh + ky) * kw + kx;
                        acc += xv[xi] as f64 * wv[wi] as f64;
                    }
                }
            }
            *y = acc;
        }
        out
    }

    /// Largest |got − want| over the largest |want|.
    pub(crate) fn worst_error(got: &[f32], want: &[f64]) -> f64 {
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
        got.iter()
            .zip(want)
            .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()))
            / scale
    }

    #[test]
    fn rectangular_kernels_paddings_and_strides_match_the_direct_sum() {
        for (shape, weight, padding, stride) in [
            ([2, 3, 9, 11], [4, 3, 1, 7], (0, 3), (1, 1)),
            ([1, 2, 10, 8], [3, 2, 7, 1], (3, 0), (1, 1)),
            ([2, 2, 9, 9], [2, 2, 3, 1], (1, 0), (2, 1)),
            ([1, 3, 7, 12], [2, 3, 1, 3], (0, 1), (1, 2)),
        ] {
            let (x, w) = (seeded(&shape, 3), seeded(&weight, 4));
            let ours = conv2d_rect(&x, &w, padding, stride).unwrap();
            let want = naive(&x, &w, padding, stride);
            let got = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(got.len(), want.len(), "{shape:?} {weight:?}");
            let err = worst_error(&got, &want);
            assert!(err < 1e-5, "{shape:?} {weight:?}: {err}");
            // blocked by single output rows too
            let blocked = conv2d_in_blocks(&x, &w, padding, stride, 1).unwrap();
            assert_eq!(
                blocked.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                got
            );
        }
    }
}
