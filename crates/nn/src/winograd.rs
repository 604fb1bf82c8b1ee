//! 3×3 stride-1 convolution on the CPU by Winograd's F(2×2, 3×3) transform, forward only.
//!
//! Each 2×2 block of outputs (a tile) is computed from the 4×4 input patch under it with 16
//! products instead of 36: the patch goes to Bᵀ·d·B, the kernel to G·g·Gᵀ, the 16 pointwise
//! products summed over input channels are 16 matrix products [O, C] · [C, tiles], and Aᵀ·m·A
//! brings each tile back to 2×2 outputs. The matrices are the usual ones (Lavin & Gray, 2016):
//!
//! ```text
//! Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]   G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
//! Aᵀ = [1 1 1 0; 0 1 −1 −1]
//! ```
//!
//! Transforms run along whole rows of tiles (contiguous slices the compiler vectorises). Tile
//! rows are cut into blocks of about [`TILES_PER_BLOCK`] tiles; blocks are spread over the
//! rayon pool in waves, each block's products single-threaded; then the output transform runs
//! per output plane, so every thread writes its own planes.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::kernels::simd::widest_fn;

/// Tiles per block: products [O, C] · [C, 256] keep faer near its peak.
const TILES_PER_BLOCK: usize = 256;

/// f32s of transformed outputs a wave of blocks may hold at once (~64 MB).
const WAVE_BUDGET: usize = 16 << 20;

/// Shape of one 3×3 stride-1 convolution: input [batch, channels, height, width], weight
/// [out_channels, channels, 3, 3], `padding` on every side.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape3x3 {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub padding: usize,
}

impl Shape3x3 {
    /// Output (rows, columns).
    fn out_hw(&self) -> (usize, usize) {
        (
            self.height + 2 * self.padding - 2,
            self.width + 2 * self.padding - 2,
        )
    }

    /// Tile (rows, columns): each tile is 2×2 outputs; the last may hang over the edge.
    fn tiles(&self) -> (usize, usize) {
        let (ho, wo) = self.out_hw();
        (ho.div_ceil(2), wo.div_ceil(2))
    }

    /// Whether the transform beats im2col: on outputs of at least 64×64 (1024 tiles) per
    /// image, with at least two tiles per channel. On smaller maps the 16 products are too
    /// narrow and transforming the weights (16/9 their size) costs more than it saves:
    /// measured on 2 cores, 512 channels at 64×64 1.07× faster, 640 channels at 32×32 (batch
    /// 2) 1.13× slower, 1280 at 16×16 2.8× slower.
    pub fn pays(&self) -> bool {
        let (th, tw) = self.tiles();
        let widest = self.channels.max(self.out_channels);
        th * tw >= 1024 && th * tw * self.batch >= 2 * widest && self.channels >= 16
    }

    /// Blocks of tile rows, image by image: (image, tile rows).
    fn blocks(&self) -> Vec<(usize, std::ops::Range<usize>)> {
        let (th, tw) = self.tiles();
        let rows = (TILES_PER_BLOCK / tw.max(1)).clamp(1, th.max(1));
        (0..self.batch)
            .flat_map(|b| {
                (0..th.div_ceil(rows)).map(move |i| (b, i * rows..((i + 1) * rows).min(th)))
            })
            .collect()
    }
}

/// One block's transformed outputs [16, O, tiles] and where they go.
struct Block {
    image: usize,
    tile_rows: std::ops::Range<usize>,
    products: Vec<f32>,
}

/// Convolution of `input` [B, C, H, W] with `weight` [O, C, 3, 3], stride 1 → [B, O, Ho, Wo].
pub(crate) fn conv3x3(s: &Shape3x3, input: &[f32], weight: &[f32]) -> Vec<f32> {
    let (ho, wo) = s.out_hw();
    assert_eq!(input.len(), s.batch * s.channels * s.height * s.width);
    assert_eq!(weight.len(), s.out_channels * s.channels * 9);
    let kernels = transform_weight(weight, s.out_channels, s.channels);
    let mut out = vec![0f32; s.batch * s.out_channels * ho * wo];
    let blocks = s.blocks();
    let tw = s.tiles().1;
    let per_block = 16 * s.out_channels * TILES_PER_BLOCK.max(tw);
    let threads = rayon::current_num_threads().max(1);
    let wave = (WAVE_BUDGET / per_block.max(1)).clamp(threads, 4 * threads);
    for items in blocks.chunks(wave) {
        let done = multiply_blocks(s, input, &kernels, items);
        write_outputs(s, &done, &mut out);
    }
    out
}

/// Input transform and the 16 products of each block; blocks in parallel when there are
/// enough of them, else the 16 products of each block in parallel.
fn multiply_blocks(
    s: &Shape3x3,
    input: &[f32],
    kernels: &[f32],
    items: &[(usize, std::ops::Range<usize>)],
) -> Vec<Block> {
    let one = |(image, tile_rows): &(usize, std::ops::Range<usize>), spread: bool| {
        let tiles = tile_rows.len() * s.tiles().1;
        let mut patches = vec![0f32; 16 * s.channels * tiles];
        transform_input(s, input, *image, tile_rows.clone(), &mut patches);
        let mut products = vec![0f32; 16 * s.out_channels * tiles];
        multiply(s, kernels, &patches, tiles, &mut products, spread);
        Block {
            image: *image,
            tile_rows: tile_rows.clone(),
            products,
        }
    };
    if items.len() >= rayon::current_num_threads() {
        items.par_iter().map(|item| one(item, false)).collect()
    } else {
        items.iter().map(|item| one(item, true)).collect()
    }
}

/// `products[ξ] = kernels[ξ] · patches[ξ]` for the 16 points ξ: [O, C] · [C, tiles].
fn multiply(
    s: &Shape3x3,
    kernels: &[f32],
    patches: &[f32],
    tiles: usize,
    products: &mut [f32],
    spread: bool,
) {
    let (o, c) = (s.out_channels, s.channels);
    let point = |(xi, dst): (usize, &mut [f32])| {
        let dst = MatMut::from_row_major_slice_mut(dst, o, tiles);
        let lhs = MatRef::from_row_major_slice(&kernels[xi * o * c..(xi + 1) * o * c], o, c);
        let rhs = MatRef::from_row_major_slice(&patches[xi * c * tiles..][..c * tiles], c, tiles);
        matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
    };
    if spread {
        products
            .par_chunks_mut(o * tiles)
            .enumerate()
            .for_each(point);
    } else {
        products.chunks_mut(o * tiles).enumerate().for_each(point);
    }
}

/// G·g·Gᵀ of every kernel: weight [O, C, 3, 3] → [16, O, C].
fn transform_weight(weight: &[f32], out_channels: usize, channels: usize) -> Vec<f32> {
    let oc = out_channels * channels;
    let mut kernels = vec![0f32; 16 * oc];
    let mut rows = vec![[0f32; 16]; oc];
    rows.par_iter_mut().enumerate().for_each(|(k, u)| {
        let g = &weight[k * 9..(k + 1) * 9];
        // G·g: four rows of three.
        let mut t = [[0f32; 3]; 4];
        for j in 0..3 {
            let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
            t[0][j] = g0;
            t[1][j] = 0.5 * (g0 + g1 + g2);
            t[2][j] = 0.5 * (g0 - g1 + g2);
            t[3][j] = g2;
        }
        // (G·g)·Gᵀ: each row of three to four.
        for (i, [a, b, c]) in t.iter().enumerate() {
            u[4 * i] = *a;
            u[4 * i + 1] = 0.5 * (a + b + c);
            u[4 * i + 2] = 0.5 * (a - b + c);
            u[4 * i + 3] = *c;
        }
    });
    for (k, u) in rows.iter().enumerate() {
        for (xi, v) in u.iter().enumerate() {
            kernels[xi * oc + k] = *v;
        }
    }
    kernels
}

/// Bᵀ·d·B of every 4×4 patch of `tile_rows` of one image → `patches` [16, C, tiles].
///
/// Per channel and tile row, the four input rows under it are copied with their padding into
/// even and odd columns, so patch column j of tile t is `even[t]`, `odd[t]`, `even[t + 1]`,
/// `odd[t + 1]`: each step is a whole-row slice operation.
#[inline(always)]
fn transform_input_inline(
    s: &Shape3x3,
    input: &[f32],
    image: usize,
    tile_rows: std::ops::Range<usize>,
    patches: &mut [f32],
) {
    let (_, tw) = s.tiles();
    let tiles = tile_rows.len() * tw;
    let (h, w, p) = (s.height, s.width, s.padding);
    let plane_len = h * w;
    let mut even = vec![0f32; 4 * (tw + 1)];
    let mut odd = vec![0f32; 4 * (tw + 1)];
    // Bᵀ·d along columns: four [4, tw] results, row i of the patch, column j.
    let mut cols = vec![0f32; 16 * tw];
    for c in 0..s.channels {
        let plane = &input[(image * s.channels + c) * plane_len..][..plane_len];
        for (r, ty) in tile_rows.clone().enumerate() {
            let rows = even.chunks_mut(tw + 1).zip(odd.chunks_mut(tw + 1));
            for (i, (e, o)) in rows.enumerate() {
                let y = (2 * ty + i).checked_sub(p).filter(|&y| y < h);
                split_row(y.map(|y| &plane[y * w..(y + 1) * w]), p, e, o);
            }
            let rows = even.chunks(tw + 1).zip(odd.chunks(tw + 1));
            for (i, (e, o)) in rows.enumerate() {
                let (c0, rest) = cols[i * 4 * tw..(i + 1) * 4 * tw].split_at_mut(tw);
                let (c1, rest) = rest.split_at_mut(tw);
                let (c2, c3) = rest.split_at_mut(tw);
                for t in 0..tw {
                    c0[t] = e[t] - e[t + 1];
                    c1[t] = o[t] + e[t + 1];
                    c2[t] = e[t + 1] - o[t];
                    c3[t] = o[t] - o[t + 1];
                }
            }
            // Bᵀ along rows, written to patches[ξ = 4·i + j][c][r·tw ..].
            for j in 0..4 {
                let d = |i: usize| &cols[(i * 4 + j) * tw..][..tw];
                let (d0, d1, d2, d3) = (d(0), d(1), d(2), d(3));
                let at = |xi: usize| (xi * s.channels + c) * tiles + r * tw;
                let span = |i: usize| at(4 * i + j)..at(4 * i + j) + tw;
                for (t, v) in patches[span(0)].iter_mut().enumerate() {
                    *v = d0[t] - d2[t];
                }
                for (t, v) in patches[span(1)].iter_mut().enumerate() {
                    *v = d1[t] + d2[t];
                }
                for (t, v) in patches[span(2)].iter_mut().enumerate() {
                    *v = d2[t] - d1[t];
                }
                for (t, v) in patches[span(3)].iter_mut().enumerate() {
                    *v = d1[t] - d3[t];
                }
            }
        }
    }
}

widest_fn!(fn transform_input(
    s: &Shape3x3,
    input: &[f32],
    image: usize,
    tile_rows: std::ops::Range<usize>,
    patches: &mut [f32],
) = transform_input_inline);

/// One padded input row (None: a row of padding) split into even and odd columns: column
/// `x` of the padded row (input column `x − p`) goes to `even[x / 2]` or `odd[x / 2]`.
#[inline(always)]
fn split_row(row: Option<&[f32]>, p: usize, even: &mut [f32], odd: &mut [f32]) {
    even.fill(0.0);
    odd.fill(0.0);
    let Some(row) = row else { return };
    let limit = 2 * even.len();
    for (x, v) in row.iter().enumerate() {
        let padded = x + p;
        if padded >= limit {
            break;
        }
        if padded.is_multiple_of(2) {
            even[padded / 2] = *v;
        } else {
            odd[padded / 2] = *v;
        }
    }
}

/// Aᵀ·m·A of every block's products into the output planes [B, O, Ho, Wo], plane by plane.
fn write_outputs(s: &Shape3x3, blocks: &[Block], out: &mut [f32]) {
    let (ho, wo) = s.out_hw();
    let tw = s.tiles().1;
    out.par_chunks_mut(ho * wo).enumerate().for_each_init(
        || vec![0f32; 8 * tw],
        |rows, (plane, dst)| {
            let (image, o) = (plane / s.out_channels, plane % s.out_channels);
            for block in blocks.iter().filter(|b| b.image == image) {
                write_block(s, block, o, rows, dst);
            }
        },
    );
}

widest_fn!(fn write_block(s: &Shape3x3, block: &Block, o: usize, rows: &mut [f32], dst: &mut [f32]) = write_block_inline);

/// Output plane `o` of one block: 2×2 outputs per tile, clipped at the bottom and right edges.
#[inline(always)]
fn write_block_inline(s: &Shape3x3, block: &Block, o: usize, rows: &mut [f32], dst: &mut [f32]) {
    let (ho, wo) = s.out_hw();
    let tw = s.tiles().1;
    let tiles = block.tile_rows.len() * tw;
    let m =
        |xi: usize, r: usize| &block.products[(xi * s.out_channels + o) * tiles + r * tw..][..tw];
    for (r, ty) in block.tile_rows.clone().enumerate() {
        // Aᵀ along rows: u[a][j] for output row a of the tile and patch column j.
        let (u0, u1) = rows.split_at_mut(4 * tw);
        for j in 0..4 {
            let (m0, m1, m2, m3) = (m(j, r), m(4 + j, r), m(8 + j, r), m(12 + j, r));
            let (a, b) = (&mut u0[j * tw..][..tw], &mut u1[j * tw..][..tw]);
            for t in 0..tw {
                a[t] = m0[t] + m1[t] + m2[t];
                b[t] = m1[t] - m2[t] - m3[t];
            }
        }
        // A along columns, interleaved into the two output rows.
        for (a, u) in [&*u0, &*u1].into_iter().enumerate() {
            let y = 2 * ty + a;
            if y >= ho {
                break;
            }
            let line = &mut dst[y * wo..(y + 1) * wo];
            let (v0, v1, v2, v3) = (&u[..tw], &u[tw..2 * tw], &u[2 * tw..3 * tw], &u[3 * tw..]);
            for t in 0..tw {
                let x = 2 * t;
                line[x] = v0[t] + v1[t] + v2[t];
                if x + 1 < wo {
                    line[x + 1] = v1[t] - v2[t] - v3[t];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::tests::{naive, worst_error};
    use candle_core::{Device, Tensor};

    /// The convolution sum in f64 (conv.rs's direct evaluation).
    fn direct(s: &Shape3x3, x: &[f32], w: &[f32]) -> Vec<f64> {
        let (b, c, h, wd) = (s.batch, s.channels, s.height, s.width);
        let x = Tensor::from_slice(x, (b, c, h, wd), &Device::Cpu).unwrap();
        let w = Tensor::from_slice(w, (s.out_channels, c, 3, 3), &Device::Cpu).unwrap();
        naive(&x, &w, (s.padding, s.padding), (1, 1))
    }

    #[test]
    fn matches_the_direct_sum_over_odd_sizes_paddings_and_batches() {
        let mut noise = crate::rng::SeededNoise::new(7);
        for (batch, channels, height, width, out_channels, padding) in [
            (1, 3, 9, 7, 5, 1),
            (2, 4, 8, 8, 6, 1),
            (3, 2, 5, 11, 4, 0),
            (1, 5, 4, 3, 2, 2),
            (2, 1, 3, 3, 1, 0),
            // More tile rows than one block holds.
            (1, 2, 40, 30, 3, 1),
        ] {
            let s = Shape3x3 {
                batch,
                channels,
                height,
                width,
                out_channels,
                padding,
            };
            let x = noise.normal_vec(batch * channels * height * width);
            let w = noise.normal_vec(out_channels * channels * 9);
            let got = conv3x3(&s, &x, &w);
            let want = direct(&s, &x, &w);
            assert_eq!(got.len(), want.len(), "{s:?}");
            let err = worst_error(&got, &want);
            assert!(err < 2e-6, "{s:?}: {err}");
        }
    }

    /// Inputs spanning eight orders of magnitude with a large offset (as in a VAE's last
    /// layers): the transform's sums and differences must not lose more than a few ulps of the
    /// output's scale.
    #[test]
    fn keeps_f32_accuracy_on_inputs_with_a_wide_range() {
        let mut noise = crate::rng::SeededNoise::new(11);
        let s = Shape3x3 {
            batch: 1,
            channels: 64,
            height: 24,
            width: 20,
            out_channels: 32,
            padding: 1,
        };
        let raw = noise.normal_vec(s.channels * s.height * s.width);
        let x: Vec<f32> = raw
            .iter()
            .enumerate()
            .map(|(i, v)| 300.0 + v * 10f32.powi((i % 9) as i32 - 4))
            .collect();
        let w: Vec<f32> = noise
            .normal_vec(s.out_channels * s.channels * 9)
            .iter()
            .map(|v| v * 0.02)
            .collect();
        let got = conv3x3(&s, &x, &w);
        let want = direct(&s, &x, &w);
        let err = worst_error(&got, &want);
        assert!(err < 5e-6, "{err}");
    }
}
