//! The design of an encoding model: feature blocks (per-image features of one kind), each
//! optionally standardised, joined side by side, and reduced to the span of the training
//! images when they are wider than there are training images.
//!
//! Why the reduction is safe: ridge (with an intercept) depends on the features only through
//! inner products between centred rows, and a model fit on training images only ever needs
//! those of training images with each other and of any image with the training images. Both
//! are unchanged by projecting every image onto the span of the (centred) training images, so
//! the principal-component scores of the training images (at most one column per training
//! image) give the same predictions as the full features, for every alpha and every CV fold
//! (folds are subsets of the training images). BLIP's image tokens (226 × 768 = 173k columns
//! for ViT-B) then cost a ridge of at most #train-images columns. Keeping only the top K
//! components (`pca`) is the lossy version.

use crate::decode::decoders::{image_targets, ImageTargets, Target};
use crate::decode::features::{feature_paths, FeatureMeta};
use crate::error::{Result, RouteError};
use brainrecon_datasets::prepared::PreparedSubject;
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, Side};
use serde::Serialize;
use std::path::Path;

/// Directions whose variance over the training images is below this share of the largest are
/// rounding noise of the f32 products (dropping them changes no prediction measurably).
const RELATIVE_EIGENVALUE_FLOOR: f64 = 1e-6;

/// Columns converted and multiplied together while forming the image Gram matrix.
const COLUMN_BLOCK: usize = 2048;

/// One block of per-image features: rows follow the subject's stimuli/ids.npy.
pub struct FeatureBlock {
    /// The name it was asked for by (`blip-vision-l3`, `pixels:8`, a path).
    pub name: String,
    /// The per-image values, `[n_images, width]`.
    pub targets: ImageTargets,
}

impl FeatureBlock {
    /// Columns of the block.
    pub fn width(&self) -> usize {
        self.targets.width()
    }
}

/// Loads `target` for `subject`, checking that the features were made for this subject and
/// hold finite numbers only.
pub fn load_block(
    subject: &PreparedSubject,
    target: &Target,
    features_dir: &Path,
) -> Result<FeatureBlock> {
    if let Target::Features(kind) = target {
        let (array, meta_path) = feature_paths(features_dir, *kind);
        if meta_path.exists() && array.exists() {
            let meta = FeatureMeta::read(&meta_path)?;
            if meta.subject != subject.meta.subject {
                return Err(RouteError::mismatch(
                    &meta_path,
                    "subject",
                    format!(
                        "features of {} ({})",
                        subject.meta.subject,
                        subject.root.display()
                    ),
                    meta.subject,
                ));
            }
        }
    }
    let targets = image_targets(subject, target, features_dir)?;
    check_finite(&targets)?;
    Ok(FeatureBlock {
        name: target.name(),
        targets,
    })
}

/// Fails naming the file, row (image id) and column of the first non-finite feature.
fn check_finite(targets: &ImageTargets) -> Result<()> {
    let width = targets.width().max(1);
    match targets.values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(at) => Err(RouteError::mismatch(
            &targets.source,
            "values",
            "finite numbers",
            format!(
                "{} at row {} (image {}), column {}",
                targets.values[at],
                at / width,
                targets.ids[at / width],
                at % width
            ),
        )),
    }
}

/// How feature blocks become the design.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DesignOptions {
    /// z-score each block's columns (mean and std over the training images; constant columns
    /// become 0) and scale the block by 1/sqrt(width), so that every block has the same total
    /// variance and one alpha serves all of them.
    pub standardize: bool,
    /// Keep only the top K principal components of the training images.
    pub pca: Option<usize>,
}

/// What the reduction to the training images' span kept.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Reduction {
    /// Components kept (columns of the design).
    pub components: usize,
    /// Share of the training images' variance they carry (1 when lossless).
    pub variance_kept: f64,
    /// Whether every component with variance was kept (no `pca` truncation).
    pub lossless: bool,
}

/// Per-image design (n_images, width), rows following stimuli/ids.npy.
pub struct Design {
    /// The rows' 0-based 73k ids, ascending.
    pub ids: Vec<usize>,
    /// Columns of the design (after any reduction).
    pub width: usize,
    /// The design, row-major `[n_images, width]`.
    pub values: Vec<f32>,
    /// Columns of the joined blocks before any reduction.
    pub n_features: usize,
    /// What the reduction kept, when the blocks were wider than there are training images or
    /// `pca` asked for fewer columns.
    pub reduction: Option<Reduction>,
}

impl Design {
    /// Rows of the images `row_ids` (n_rows, width).
    pub fn gather(&self, row_ids: &[usize], source: &Path) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(row_ids.len() * self.width);
        for &id in row_ids {
            let row = self.ids.binary_search(&id).map_err(|_| {
                RouteError::mismatch(source, "images", format!("image {id}"), "missing")
            })?;
            out.extend_from_slice(&self.values[row * self.width..(row + 1) * self.width]);
        }
        Ok(out)
    }
}

/// Rows (positions in `ids`) of the training images.
fn train_rows(ids: &[usize], train_images: &[usize], source: &Path) -> Result<Vec<usize>> {
    train_images
        .iter()
        .map(|id| {
            ids.binary_search(id).map_err(|_| {
                RouteError::mismatch(source, "images", format!("image {id}"), "missing")
            })
        })
        .collect()
}

/// The design of `blocks` (all of one subject) for a model trained on `train_images`.
///
/// The blocks are never copied whole: standardisation and centring are applied on the fly,
/// column block by column block, so BLIP's image tokens of NSD (7 GB per layer) fit in memory.
pub fn build_design(
    blocks: &[&FeatureBlock],
    train_images: &[usize],
    options: DesignOptions,
) -> Result<Design> {
    let first = blocks
        .first()
        .ok_or_else(|| RouteError::Usage("--features: expected at least one feature set".into()))?;
    if options.pca == Some(0) {
        return Err(RouteError::Usage(
            "--pca: expected at least 1 component, found 0".into(),
        ));
    }
    let ids = first.targets.ids.clone();
    let rows = train_rows(&ids, train_images, &first.targets.source)?;
    let columns: Vec<Columns> = blocks
        .iter()
        .map(|b| Columns::new(b, &rows, options.standardize))
        .collect();
    let n_features: usize = columns.iter().map(|c| c.width).sum();
    let wide = n_features > rows.len();
    let wants_pca = options.pca.is_some_and(|k| k < n_features);
    if !wide && !wants_pca {
        return Ok(Design {
            values: materialize(&columns, ids.len(), options.standardize),
            ids,
            width: n_features,
            n_features,
            reduction: None,
        });
    }
    let (values, reduction) = reduce_to_train_span(&columns, ids.len(), &rows, options.pca)?;
    Ok(Design {
        ids,
        width: reduction.components,
        values,
        n_features,
        reduction: Some(reduction),
    })
}

/// One block's columns as the design sees them: `(v - mean) · scale`, with the mean over the
/// training images and, when standardising, scale = 1 / (std · sqrt(width)) (else 1).
struct Columns<'a> {
    values: &'a [f32],
    width: usize,
    mean: Vec<f64>,
    scale: Vec<f64>,
}

impl<'a> Columns<'a> {
    fn new(block: &'a FeatureBlock, train: &[usize], standardize: bool) -> Self {
        let (values, width) = (&block.targets.values[..], block.width());
        let mut mean = vec![0f64; width];
        let mut square = vec![0f64; width];
        for &r in train {
            for (j, &v) in values[r * width..(r + 1) * width].iter().enumerate() {
                mean[j] += v as f64;
                square[j] += v as f64 * v as f64;
            }
        }
        let n = train.len().max(1) as f64;
        mean.iter_mut().for_each(|m| *m /= n);
        let block_scale = 1.0 / (width as f64).sqrt();
        let scale = (0..width)
            .map(|j| {
                let var = (square[j] / n - mean[j] * mean[j]).max(0.0);
                if !standardize {
                    1.0
                } else if var > 1e-12 * (1.0 + mean[j] * mean[j]) {
                    block_scale / var.sqrt()
                } else {
                    // A constant column (BLIP's class token at the embeddings) carries nothing.
                    0.0
                }
            })
            .collect();
        Columns {
            values,
            width,
            mean,
            scale,
        }
    }

    /// Image `i`, column `j`, centred (and standardised when asked).
    fn centred(&self, i: usize, j: usize) -> f32 {
        ((self.values[i * self.width + j] as f64 - self.mean[j]) * self.scale[j]) as f32
    }
}

/// The blocks side by side (n, Σ width): standardised, or the values as they are (the
/// intercept absorbs any centring).
fn materialize(columns: &[Columns], n: usize, standardize: bool) -> Vec<f32> {
    let total: usize = columns.iter().map(|c| c.width).sum();
    let mut out = Vec::with_capacity(n * total);
    for i in 0..n {
        for c in columns {
            if standardize {
                out.extend((0..c.width).map(|j| c.centred(i, j)));
            } else {
                out.extend_from_slice(&c.values[i * c.width..(i + 1) * c.width]);
            }
        }
    }
    out
}

/// The standardised design of `blocks`, unreduced (for tests elsewhere in the crate).
#[cfg(test)]
pub(crate) fn standardized_for_tests(blocks: &[&FeatureBlock], train_images: &[usize]) -> Vec<f32> {
    let ids = &blocks[0].targets.ids;
    let rows = train_rows(ids, train_images, &blocks[0].targets.source).unwrap();
    let columns: Vec<Columns> = blocks
        .iter()
        .map(|b| Columns::new(b, &rows, true))
        .collect();
    materialize(&columns, ids.len(), true)
}

/// Principal-component scores (n, r) of the centred design, the components being those of
/// the `train` rows; all components with variance, or the top `keep`.
///
/// With the training images' Gram matrix `G = U Λ Uᵀ`, their scores are `U Λ^{1/2}` and any
/// other image's are `c U Λ^{-1/2}`, `c` its inner products with the training images.
fn reduce_to_train_span(
    columns: &[Columns],
    n: usize,
    train: &[usize],
    keep: Option<usize>,
) -> Result<(Vec<f32>, Reduction)> {
    let mut is_train = vec![false; n];
    train.iter().for_each(|&row| is_train[row] = true);
    let others: Vec<usize> = (0..n).filter(|&i| !is_train[i]).collect();
    let (gram, cross) = centred_grams(columns, train, &others);
    let m = train.len();
    let evd = gram.self_adjoint_eigen(Side::Lower).map_err(|_| {
        RouteError::Usage("the training images' Gram matrix did not decompose".into())
    })?;
    let s = evd.S().column_vector();
    let eigenvalues: Vec<f64> = (0..m).map(|k| s[k].max(0.0)).collect();
    let total: f64 = eigenvalues.iter().sum();
    let largest = eigenvalues.iter().copied().fold(0.0, f64::max);
    // Descending, above the rounding floor, at most `keep`.
    let mut order: Vec<usize> = (0..m)
        .rev()
        .filter(|&k| eigenvalues[k] > largest * RELATIVE_EIGENVALUE_FLOOR)
        .collect();
    let available = order.len();
    if let Some(k) = keep {
        order.truncate(k);
    }
    let (u, r) = (evd.U(), order.len());
    let scaled = |power: f64| {
        Mat::<f64>::from_fn(m, r, |i, c| {
            u[(i, order[c])] * eigenvalues[order[c]].powf(power)
        })
    };
    let mut other_scores = Mat::<f64>::zeros(others.len(), r);
    matmul(
        other_scores.as_mut(),
        Accum::Replace,
        cross.as_ref(),
        scaled(-0.5).as_ref(),
        1.0,
        faer::get_global_parallelism(),
    );
    let mut out = vec![0f32; n * r];
    for (rows, scores) in [(train, scaled(0.5)), (&others[..], other_scores)] {
        for (k, &row) in rows.iter().enumerate() {
            for c in 0..r {
                out[row * r + c] = scores[(k, c)] as f32;
            }
        }
    }
    let kept: f64 = order.iter().map(|&k| eigenvalues[k]).sum();
    let reduction = Reduction {
        components: r,
        variance_kept: if total > 0.0 { kept / total } else { 1.0 },
        lossless: r == available,
    };
    Ok((out, reduction))
}

/// Inner products of the centred design's rows, accumulated over blocks of columns (f32
/// products, summed in f64): the training rows' Gram matrix (m × m, lower triangle) and the
/// other rows' products with the training rows (n_others × m).
fn centred_grams(columns: &[Columns], train: &[usize], others: &[usize]) -> (Mat<f64>, Mat<f64>) {
    let m = train.len();
    let (mut gram, mut cross) = (Mat::<f64>::zeros(m, m), Mat::<f64>::zeros(others.len(), m));
    let mut gram32 = Mat::<f32>::zeros(m, m);
    let mut cross32 = Mat::<f32>::zeros(others.len(), m);
    let par = faer::get_global_parallelism();
    for c in columns {
        for start in (0..c.width).step_by(COLUMN_BLOCK) {
            let len = COLUMN_BLOCK.min(c.width - start);
            // Transposed (len × rows): each image's values are read contiguously.
            let rows_t = |rows: &[usize]| {
                Mat::<f32>::from_fn(len, rows.len(), |j, t| c.centred(rows[t], start + j))
            };
            let (train_t, others_t) = (rows_t(train), rows_t(others));
            // Only the lower triangle of the symmetric product: half the work of a GEMM.
            triangular::matmul(
                gram32.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Replace,
                train_t.transpose(),
                BlockStructure::Rectangular,
                train_t.as_ref(),
                BlockStructure::Rectangular,
                1.0,
                par,
            );
            matmul(
                cross32.as_mut(),
                Accum::Replace,
                others_t.transpose(),
                train_t.as_ref(),
                1.0,
                par,
            );
            for j in 0..m {
                for i in j..m {
                    gram[(i, j)] += gram32[(i, j)] as f64;
                }
                for i in 0..others.len() {
                    cross[(i, j)] += cross32[(i, j)] as f64;
                }
            }
        }
    }
    (gram, cross)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(n: usize, w: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * w).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
    }

    fn block(values: Vec<f32>, n: usize, w: usize) -> FeatureBlock {
        FeatureBlock {
            name: "test".into(),
            targets: ImageTargets {
                ids: (0..n).collect(),
                shape: vec![w],
                values: values.into(),
                source: "test.npy".into(),
                model: None,
                model_fingerprint: None,
            },
        }
    }

    /// Scores of the raw block `values` (n, w) reduced on the rows `train`.
    fn reduce(
        values: &[f32],
        n: usize,
        w: usize,
        train: &[usize],
        keep: Option<usize>,
    ) -> (Vec<f32>, Reduction) {
        let b = block(values.to_vec(), n, w);
        reduce_to_train_span(&[Columns::new(&b, train, false)], n, train, keep).unwrap()
    }

    /// Inner products of centred rows `a` and `b` (centred on the train mean).
    fn centred_dot(values: &[f32], w: usize, train: &[usize], a: usize, b: usize) -> f64 {
        let mean: Vec<f64> = (0..w)
            .map(|j| {
                train.iter().map(|&r| values[r * w + j] as f64).sum::<f64>() / train.len() as f64
            })
            .collect();
        (0..w)
            .map(|j| (values[a * w + j] as f64 - mean[j]) * (values[b * w + j] as f64 - mean[j]))
            .sum()
    }

    #[test]
    fn the_reduction_keeps_every_inner_product_with_training_images() {
        // 12 images of 50 columns, 8 of them training images: at most 7 components.
        let (n, w) = (12, 50);
        let values = random(n, w, 1);
        let train = [0, 2, 3, 5, 6, 8, 9, 11];
        let (scores, reduction) = reduce(&values, n, w, &train, None);
        assert!(
            reduction.lossless && reduction.components == 7,
            "{reduction:?}"
        );
        assert!((reduction.variance_kept - 1.0).abs() < 1e-6);
        let r = reduction.components;
        for a in 0..n {
            for &b in &train {
                let want = centred_dot(&values, w, &train, a, b);
                let got: f64 = (0..r)
                    .map(|c| scores[a * r + c] as f64 * scores[b * r + c] as f64)
                    .sum();
                assert!(
                    (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "({a}, {b}): {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn pca_keeps_the_largest_components_first() {
        let (n, w) = (30, 40);
        let mut values = random(n, w, 2);
        // One strong direction: column 0 scaled up.
        for i in 0..n {
            values[i * w] *= 20.0;
        }
        let train: Vec<usize> = (0..24).collect();
        let (scores, reduction) = reduce(&values, n, w, &train, Some(3));
        assert_eq!(reduction.components, 3);
        assert!(!reduction.lossless && reduction.variance_kept < 1.0);
        let variance = |c: usize| {
            train
                .iter()
                .map(|&i| (scores[i * 3 + c] as f64).powi(2))
                .sum::<f64>()
        };
        assert!(variance(0) > variance(1) && variance(1) >= variance(2));
        // The first component is column 0's direction: its scores follow that column.
        let corr = brainrecon_ridge::pearson_columns(
            &train.iter().map(|&i| scores[i * 3]).collect::<Vec<_>>(),
            &train.iter().map(|&i| values[i * w]).collect::<Vec<_>>(),
            train.len(),
            1,
        )
        .unwrap()[0];
        assert!(corr.abs() > 0.99, "{corr}");
    }

    #[test]
    fn standardized_blocks_have_unit_total_variance_and_constant_columns_vanish() {
        let (n, w) = (20, 5);
        let mut values = random(n, w, 3);
        for i in 0..n {
            values[i * w + 2] = 7.0;
            values[i * w + 4] = values[i * w + 4] * 300.0 + 40.0;
        }
        let train: Vec<usize> = (0..n).collect();
        let z = standardized_for_tests(&[&block(values, n, w)], &train);
        let total: f64 = z.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n as f64;
        // Four varying columns of variance 1/5 each.
        assert!((total - 0.8).abs() < 1e-5, "{total}");
        assert!((0..n).all(|i| z[i * w + 2] == 0.0));
    }

    #[test]
    fn blocks_join_side_by_side() {
        let a = block(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], 4, 2);
        let b = block(vec![9.0, 8.0, 7.0, 6.0], 4, 1);
        // 3 columns, 4 training images: no reduction, the values as they are.
        let design = build_design(&[&a, &b], &[0, 1, 2, 3], DesignOptions::default()).unwrap();
        assert_eq!((design.width, design.n_features), (3, 3));
        let want = [1.0, 2.0, 9.0, 3.0, 4.0, 8.0, 5.0, 6.0, 7.0, 7.0, 8.0, 6.0];
        assert_eq!(design.values, want);
        assert!(design.reduction.is_none());
    }
}
