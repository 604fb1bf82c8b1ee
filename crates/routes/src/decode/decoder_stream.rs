//! `brainrecon fit` on many targets, a block of targets at a time. The CLIP text context c has
//! 59,136 values per image: on a full NSD subject its Y (24,980 × 59,136 float32) is 5.9 GB and
//! its weights (voxels × 59,136) several more. Here ridge decomposes the betas once
//! (`RidgeCv::fit_streamed`), each block's target columns are read from the memory-mapped
//! features, and each block's weights go into the model file as they come (`ModelWriter`), its
//! test predictions scored at once: the fit holds X, the decomposition and one block.

use crate::decode::decoders::{varying_columns, write_test_r, DecoderFit, ImageTargets};
use crate::error::Result;
use brainrecon_ridge::metrics::pearson_per_target;
use brainrecon_ridge::{ModelWriter, RidgeCv, RidgeModel};
use faer::MatRef;
use std::collections::BTreeMap;
use std::path::Path;

/// Y larger than this is fitted a block of targets at a time.
pub const STREAM_ABOVE_BYTES: usize = 1 << 30;

/// Targets per block when the size of Y chose streaming.
pub const DEFAULT_BLOCK: usize = 8192;

/// The block to stream with: the one asked for, or [`DEFAULT_BLOCK`] when Y (`rows` × `width`
/// float32) exceeds [`STREAM_ABOVE_BYTES`]; `None` fits all targets at once.
pub fn stream_block(asked: Option<usize>, rows: usize, width: usize) -> Option<usize> {
    asked.or_else(|| {
        (rows.saturating_mul(width).saturating_mul(4) > STREAM_ABOVE_BYTES).then_some(DEFAULT_BLOCK)
    })
}

/// Fits the decoder of `targets` from `x` (training rows `rows[0]` of the targets) a block at a
/// time, writes it to `out` with `metadata`, and scores each block on `x_test` (rows
/// `rows[1]`).
pub(crate) fn fit_streamed(
    estimator: &RidgeCv,
    [x, x_test]: [MatRef<'_, f32>; 2],
    [train_rows, test_rows]: [&[usize]; 2],
    targets: &ImageTargets,
    block: usize,
    (out, mut metadata): (&Path, BTreeMap<String, serde_json::Value>),
) -> Result<DecoderFit> {
    let width = targets.width();
    // blocks smaller than the estimator's chunk of targets are fitted as one chunk each
    let estimator = &RidgeCv {
        target_chunk: estimator.target_chunk.min(block),
        ..estimator.clone()
    };
    let mut writer = ModelWriter::create(out, x.ncols(), width, estimator.alphas.len())?;
    let mut fit = DecoderFit {
        alpha_grid: estimator.alphas.clone(),
        alphas: Vec::with_capacity(width),
        cv_best: Vec::with_capacity(width),
        test_r: Vec::with_capacity(width),
        varying: Vec::with_capacity(width),
    };
    let mut put = |model: RidgeModel| -> brainrecon_ridge::Result<()> {
        writer.put(&model)?;
        let range = model.target_range.start..model.target_range.end;
        let predicted = model.predict(x_test)?;
        let truth = targets.columns(test_rows, range);
        fit.test_r
            .extend(pearson_per_target(truth.as_ref(), predicted.as_ref())?);
        fit.alphas.extend_from_slice(&model.alphas);
        fit.cv_best
            .extend(model.best_cv_scores().iter().map(|&s| s as f64));
        Ok(())
    };
    let mut varying = Vec::with_capacity(width);
    let mut load = |range: std::ops::Range<usize>| -> brainrecon_ridge::Result<faer::Mat<f32>> {
        let first_read = range.start == varying.len();
        let y = targets.columns(train_rows, range);
        // K-fold reads each block once per fold and once more to refit
        if first_read {
            varying.extend(varying_columns(y.as_ref()));
        }
        Ok(y)
    };
    estimator.fit_streamed(x, width, block, &mut load, &mut put)?;
    fit.varying = varying;
    let (low, high) = fit.edge_shares();
    metadata.insert("alpha_at_edge".into(), serde_json::json!(low + high));
    metadata.insert("fitted_in_blocks_of".into(), serde_json::json!(block));
    writer.finish(metadata)?;
    write_test_r(out, &fit.test_r)?;
    Ok(fit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_targets_stream_and_small_ones_do_not() {
        assert_eq!(stream_block(None, 24_980, 59_136), Some(DEFAULT_BLOCK));
        assert_eq!(stream_block(None, 8_859, 16_384), None);
        assert_eq!(stream_block(Some(100), 10, 10), Some(100));
    }
}
