//! Decoding as the paper does it: one ridge model per cortical ROI (alpha by K-fold CV over
//! clips), the `top` ROIs with the best CV score kept, their predictions averaged; and the
//! identification accuracy of the decoded embeddings.

pub use crate::decode::arrays::{identification, matrix, row_major};
use crate::error::{Result, RouteError};
use brainrecon_datasets::runs::RunSet;
use brainrecon_formats::nifti_io;
use brainrecon_ridge::{Cv, RidgeCv, RidgeModel, Scoring};
use faer::Mat;
use std::collections::BTreeMap;
use std::path::Path;

/// An atlas region: its label, name and the run set's columns inside it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Roi {
    /// The region's value in the atlas volume.
    pub label: i64,
    /// Its name from the label table.
    pub name: String,
    /// Columns of the run set's voxels in this ROI.
    pub columns: Vec<usize>,
}

/// `index<TAB>name` rows (BIDS dseg.tsv, FreeSurfer colour tables reduced to two columns).
fn read_label_names(path: &Path) -> Result<BTreeMap<i64, String>> {
    let text = brainrecon_core::text::read_text(path)?;
    let mut names = BTreeMap::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let mut cells = line.split('\t');
        let (Some(index), Some(name)) = (cells.next(), cells.next()) else {
            continue;
        };
        let label = index.trim().parse::<i64>().map_err(|_| {
            RouteError::mismatch(
                path,
                format!("row {} column index", i + 1),
                "an integer label",
                index,
            )
        })?;
        names.insert(label, name.trim().to_string());
    }
    Ok(names)
}

/// The atlas's labelled regions among the run set's voxels (label 0 is background), with at
/// least `min_voxels` voxels each. Names come from `names` or the atlas's `.tsv` sibling
/// (`…_dseg.nii.gz` → `…_dseg.tsv`), else `label N`.
pub fn atlas_rois(
    runs: &RunSet,
    atlas: &Path,
    names: Option<&Path>,
    min_voxels: usize,
) -> Result<Vec<Roi>> {
    let volume = nifti_io::read_volume(atlas)?;
    let runset = runs.root().join("runset.json");
    brainrecon_core::geometry::check_same_grid(
        brainrecon_core::geometry::Grid {
            path: atlas,
            shape: volume.shape,
            affine: &volume.affine,
        },
        brainrecon_core::geometry::Grid {
            path: &runset,
            shape: runs.volume_shape(),
            affine: runs.affine(),
        },
    )?;
    let sibling = {
        let name = atlas.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let stem = name.trim_end_matches(".gz").trim_end_matches(".nii");
        atlas.with_file_name(format!("{stem}.tsv"))
    };
    let names = match names {
        Some(path) => read_label_names(path)?,
        None if sibling.is_file() => read_label_names(&sibling)?,
        None => BTreeMap::new(),
    };
    let mut columns: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (c, &[i, j, k]) in runs.voxel_indices().iter().enumerate() {
        let label = volume.get(i, j, k).round() as i64;
        if label != 0 {
            columns.entry(label).or_default().push(c);
        }
    }
    let rois: Vec<Roi> = columns
        .into_iter()
        .filter(|(_, cols)| cols.len() >= min_voxels)
        .map(|(label, columns)| Roi {
            label,
            name: names
                .get(&label)
                .cloned()
                .unwrap_or_else(|| format!("label {label}")),
            columns,
        })
        .collect();
    if rois.is_empty() {
        return Err(RouteError::mismatch(
            atlas,
            "labels",
            format!("regions of at least {min_voxels} of the run set's voxels"),
            "none",
        ));
    }
    Ok(rois)
}

/// The columns `cols` of row-major (n, width) `data`: (n, cols).
pub fn select_columns(data: &[f32], width: usize, cols: &[usize]) -> Mat<f32> {
    let n = data.len() / width.max(1);
    Mat::from_fn(n, cols.len(), |r, c| data[r * width + cols[c]])
}

/// How each ROI's ridge is fitted.
#[derive(Debug, Clone)]
pub struct RoiRidge {
    /// The ridge penalty grid; each embedding dimension chooses its alpha by K-fold CV.
    pub alphas: Vec<f64>,
    /// K of the K-fold CV, grouped by clip.
    pub folds: usize,
}

/// One ROI's decoder and its CV score (mean over the embedding's dimensions of the best
/// alpha's K-fold R², himalaya's `r2_score`).
pub struct RoiDecoder {
    /// Index of its ROI in the list fitted.
    pub roi: usize,
    /// Ridge from the ROI's voxels to the embedding.
    pub model: RidgeModel,
    /// Mean over the embedding's dimensions of the best alpha's K-fold R².
    pub cv_score: f64,
}

/// Fits one decoder per ROI. `x`: (n, voxels) row-major; `y`: (n, width); `groups`: the clip of
/// each row, so a clip's overlapping windows stay in one fold.
pub fn fit_rois(
    rois: &[Roi],
    (x, n_voxels): (&[f32], usize),
    y: &Mat<f32>,
    groups: &[i64],
    ridge: &RoiRidge,
    progress: &dyn Fn(usize),
) -> Result<Vec<RoiDecoder>> {
    let cv = RidgeCv {
        alphas: ridge.alphas.clone(),
        cv: Cv::KFold {
            n_folds: ridge.folds,
            groups: Some(groups.to_vec()),
        },
        scoring: Scoring::R2,
        ..RidgeCv::default()
    };
    let mut out = Vec::with_capacity(rois.len());
    for (i, roi) in rois.iter().enumerate() {
        let xr = select_columns(x, n_voxels, &roi.columns);
        let model = cv.fit(xr.as_ref(), y.as_ref())?;
        let scores = model.best_cv_scores();
        let cv_score = scores.iter().map(|&s| s as f64).sum::<f64>() / scores.len().max(1) as f64;
        out.push(RoiDecoder {
            roi: i,
            model,
            cv_score,
        });
        progress(i + 1);
    }
    Ok(out)
}

/// Indices into `decoders` of the `top` best CV scores, best first (ties: lower index first).
pub fn top_decoders(decoders: &[RoiDecoder], top: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..decoders.len()).collect();
    order.sort_by(|&a, &b| {
        decoders[b]
            .cv_score
            .total_cmp(&decoders[a].cv_score)
            .then(a.cmp(&b))
    });
    order.truncate(top.max(1));
    order
}

/// One decoder's prediction for `x` (n, voxels) row-major.
pub fn predict_roi(
    decoder: &RoiDecoder,
    roi: &Roi,
    (x, n_voxels): (&[f32], usize),
) -> Result<Mat<f32>> {
    Ok(decoder
        .model
        .predict(select_columns(x, n_voxels, &roi.columns).as_ref())?)
}

/// The mean of predictions of equal shape.
pub fn mean_prediction(predictions: &[Mat<f32>]) -> Mat<f32> {
    let (n, d) = (predictions[0].nrows(), predictions[0].ncols());
    let k = predictions.len() as f32;
    Mat::from_fn(n, d, |r, c| {
        predictions.iter().map(|p| p[(r, c)]).sum::<f32>() / k
    })
}

/// Rows averaged within groups: `groups[r]` in `0..k` → (k, d).
pub fn group_means(m: &Mat<f32>, groups: &[usize], k: usize) -> Mat<f32> {
    let mut sums = vec![0f64; k * m.ncols()];
    let mut counts = vec![0usize; k];
    for (r, &g) in groups.iter().enumerate() {
        counts[g] += 1;
        for c in 0..m.ncols() {
            sums[g * m.ncols() + c] += m[(r, c)] as f64;
        }
    }
    Mat::from_fn(k, m.ncols(), |g, c| {
        (sums[g * m.ncols() + c] / counts[g].max(1) as f64) as f32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identification_counts_the_others_that_correlate_less() {
        // Item 0 predicted perfectly; item 1's prediction is item 2's truth; item 2 in between.
        let truth = Mat::from_fn(3, 4, |r, c| {
            [[1., 2., 3., 4.], [4., 1., 3., 2.], [2., 4., 1., 3.]][r][c]
        });
        let pred = Mat::from_fn(3, 4, |r, c| {
            [[1., 2., 3., 4.], [2., 4., 1., 3.], [2., 4., 1.5, 3.]][r][c]
        });
        let (mean, items) = identification(&pred, &truth).unwrap();
        assert_eq!(items[0], 1.0);
        // r(pred1, truth1) = -0.6 is below both others (0.0 and 1.0).
        assert_eq!(items[1], 0.0);
        assert_eq!(items[2], 1.0);
        assert!((mean - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn the_best_scores_are_kept_in_order() {
        let decoder = |roi, cv_score| RoiDecoder {
            roi,
            model: RidgeCv {
                alphas: vec![1.0],
                ..RidgeCv::default()
            }
            .fit(
                Mat::<f32>::from_fn(4, 1, |r, _| r as f32).as_ref(),
                Mat::<f32>::zeros(4, 1).as_ref(),
            )
            .unwrap(),
            cv_score,
        };
        let decoders = vec![
            decoder(0, 0.1),
            decoder(1, 0.5),
            decoder(2, -0.2),
            decoder(3, 0.5),
        ];
        assert_eq!(top_decoders(&decoders, 3), vec![1, 3, 0]);
    }
}
