//! CLIP-S and RefCLIP-S (Hessel et al. 2021, "CLIPScore") over embeddings
//! the caller computed with a CLIP model, following `clipscore.py`
//! (github.com/jmhessel/clipscore; BrainHub's `metrics/clip_score.py` is the
//! same code):
//!
//! - embeddings are L2-normalised row by row (`x / sqrt(sum(x**2))`);
//! - CLIP-S per item = `2.5 * max(cos(image, caption), 0)`;
//! - the text side per item = the largest cosine between the caption and its
//!   references (the code does not clip it at 0, the paper's formula does;
//!   caption embeddings practically never have negative cosines);
//! - RefCLIP-S per item = harmonic mean `2ab / (a + b)` of CLIP-S and the text
//!   side;
//! - reported values are means over items.
//!
//! `clipscore.py` embeds every caption, references included, as
//! "A photo depicts " + caption (truncated to CLIP's context); callers
//! should do the same. It computes in the features' dtype (float32 on CPU);
//! this module computes in f64 from the f32 embeddings, which agrees to
//! about 1e-7.

use crate::error::{check_len, shape_len, MetricsError, Result};

/// clipscore.py's `w`.
pub const CLIP_S_WEIGHT: f64 = 2.5;

/// CLIP-S (and RefCLIP-S when references were given), on clipscore.py's
/// scale (0 to 2.5).
#[derive(Debug, Clone, PartialEq)]
pub struct ClipScores {
    /// Mean CLIP-S.
    pub clip_s: f64,
    /// CLIP-S per item, `(n,)`.
    pub clip_s_items: Vec<f64>,
    /// Mean RefCLIP-S.
    pub ref_clip_s: Option<f64>,
    /// RefCLIP-S per item, `(n,)`.
    pub ref_clip_s_items: Option<Vec<f64>>,
}

/// Reference embeddings: `embeddings` is `(sum(counts), dim)` row-major,
/// item `i` owning the next `counts[i]` rows.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceEmbeddings<'a> {
    /// All references' embeddings, `(sum(counts), dim)` row-major.
    pub embeddings: &'a [f32],
    /// Number of references of each item, `(n,)`.
    pub counts: &'a [usize],
}

fn unit_rows(x: &[f32], dim: usize, what: &'static str) -> Result<Vec<Vec<f64>>> {
    x.chunks(dim)
        .enumerate()
        .map(|(i, row)| {
            let norm = row
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt();
            if norm == 0.0 || !norm.is_finite() {
                return Err(MetricsError::InvalidArgument(format!(
                    "{what} row {i} has norm {norm}; CLIP embeddings must be finite and non-zero"
                )));
            }
            Ok(row.iter().map(|&v| f64::from(v) / norm).collect())
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// CLIP-S of `n` captions against their images, plus RefCLIP-S when
/// `references` is given.
///
/// Shapes: `images` and `captions` are `(n, dim)` row-major, `n >= 1`.
pub fn clip_scores(
    images: &[f32],
    captions: &[f32],
    dim: usize,
    references: Option<ReferenceEmbeddings>,
) -> Result<ClipScores> {
    if dim == 0 || images.is_empty() {
        return Err(MetricsError::Empty {
            what: "image embeddings",
            need: "at least one embedding of dimension >= 1 is required",
        });
    }
    let n = images.len() / dim;
    check_len(
        "image embeddings (n * dim values)",
        shape_len("images", &[n, dim])?,
        images.len(),
    )?;
    check_len(
        "caption embeddings (n * dim values)",
        n * dim,
        captions.len(),
    )?;
    let img = unit_rows(images, dim, "image embedding")?;
    let cap = unit_rows(captions, dim, "caption embedding")?;
    let clip_items: Vec<f64> = img
        .iter()
        .zip(&cap)
        .map(|(i, c)| CLIP_S_WEIGHT * dot(i, c).max(0.0))
        .collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mut out = ClipScores {
        clip_s: mean(&clip_items),
        clip_s_items: clip_items,
        ref_clip_s: None,
        ref_clip_s_items: None,
    };
    if let Some(refs) = references {
        let items = ref_clip_items(&cap, &out.clip_s_items, refs, dim)?;
        out.ref_clip_s = Some(mean(&items));
        out.ref_clip_s_items = Some(items);
    }
    Ok(out)
}

/// Harmonic mean of each item's CLIP-S and its best caption-reference
/// cosine. Where both are 0 (clipscore.py would divide 0 by 0) the item
/// scores 0.
fn ref_clip_items(
    cap: &[Vec<f64>],
    clip_items: &[f64],
    refs: ReferenceEmbeddings,
    dim: usize,
) -> Result<Vec<f64>> {
    check_len(
        "reference counts (one per caption)",
        cap.len(),
        refs.counts.len(),
    )?;
    let total: usize = refs.counts.iter().sum();
    check_len(
        "reference embeddings (sum(counts) * dim values)",
        shape_len("references", &[total, dim])?,
        refs.embeddings.len(),
    )?;
    let rows = unit_rows(refs.embeddings, dim, "reference embedding")?;
    let mut offset = 0;
    let mut items = Vec::with_capacity(cap.len());
    for (i, (&count, c)) in refs.counts.iter().zip(cap).enumerate() {
        if count == 0 {
            return Err(MetricsError::InvalidArgument(format!(
                "caption {i} has no reference embedding; RefCLIP-S needs at least one"
            )));
        }
        let text = rows[offset..offset + count]
            .iter()
            .map(|r| dot(c, r))
            .fold(f64::NEG_INFINITY, f64::max);
        offset += count;
        let a = clip_items[i];
        items.push(if a + text == 0.0 {
            0.0
        } else {
            2.0 * a * text / (a + text)
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_embeddings_score_the_weight() {
        let e = [0.3f32, -1.2, 0.5];
        let s = clip_scores(&e, &e, 3, None).unwrap();
        assert!((s.clip_s - CLIP_S_WEIGHT).abs() < 1e-12);
        let refs = ReferenceEmbeddings {
            embeddings: &e,
            counts: &[1],
        };
        let s = clip_scores(&e, &e, 3, Some(refs)).unwrap();
        // H(2.5, 1) = 5 / 3.5
        assert!((s.ref_clip_s.unwrap() - 5.0 / 3.5).abs() < 1e-12);
    }

    #[test]
    fn opposite_embeddings_clip_to_zero() {
        let s = clip_scores(&[1.0, 0.0], &[-1.0, 0.0], 2, None).unwrap();
        assert_eq!(s.clip_s, 0.0);
    }

    #[test]
    fn bad_shapes_and_zero_vectors_are_errors() {
        assert!(clip_scores(&[1.0, 0.0], &[1.0], 2, None).is_err());
        assert!(clip_scores(&[0.0, 0.0], &[1.0, 0.0], 2, None).is_err());
        let refs = ReferenceEmbeddings {
            embeddings: &[1.0, 0.0],
            counts: &[0],
        };
        assert!(clip_scores(&[1.0, 0.0], &[1.0, 0.0], 2, Some(refs)).is_err());
    }
}
