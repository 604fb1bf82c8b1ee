//! Image tokens as ridge decodes them from the synthetic subject: the subject's higher visual
//! voxels respond linearly to the scene's attributes (shape, colour, background, position,
//! size), so a ridge prediction of a scene's tokens is close to the *additive* part of the
//! tokens — the training mean plus one effect per attribute level — shrunk and noised. The
//! captioner's second stage learns to read that part, which holds the shape only as an
//! average over positions and sizes that its first stage never saw alone.
//!
//! The effects are the least-squares main effects of a factorial design, found by
//! backfitting over the training scenes (every combination of attributes except the held-out
//! tenth).

use brainrecon_language::blip::BlipForConditionalGeneration;
use brainrecon_nn::Result;
use brainrecon_simulate::scene::{Scene, BACKGROUNDS, COLOURS, POSITIONS, SHAPES, SIZES};
use brainrecon_vision::preprocess::blip_pixels;
use candle_core::{Device, Tensor};

/// Levels of each attribute, in [`attribute_levels`] order.
const LEVELS: [usize; 5] = [
    SHAPES.len(),
    COLOURS.len(),
    BACKGROUNDS.len(),
    POSITIONS.len(),
    SIZES.len(),
];

/// Backfitting sweeps: the design is a complete factorial less a tenth, so the effects settle
/// in a few sweeps (the test checks the fit on an exactly additive table).
const SWEEPS: usize = 30;

/// The attribute levels of `scene`: [shape, colour, background, position, size].
pub fn attribute_levels(scene: &Scene) -> [usize; 5] {
    [
        scene.shape,
        scene.colour,
        scene.background,
        scene.position,
        scene.size,
    ]
}

/// The additive model of image tokens: `mean + Σ_a effects[a][level_a]`, each [N·D] flat.
#[derive(Clone, Debug)]
pub struct AttributeTokens {
    /// (N tokens, D width) of one image.
    pub token_shape: (usize, usize),
    /// [N·D]: the mean tokens over the fitted scenes.
    pub mean: Vec<f32>,
    /// `effects[attribute][level]`: `[N·D]`
    pub effects: Vec<Vec<Vec<f32>>>,
}

impl AttributeTokens {
    /// Fits the main effects to `tokens` (S rows of N·D values, one per scene of `scenes`).
    pub fn fit(scenes: &[Scene], tokens: &[Vec<f32>], token_shape: (usize, usize)) -> Self {
        assert_eq!(scenes.len(), tokens.len(), "one token row per scene");
        let width = token_shape.0 * token_shape.1;
        assert!(
            tokens.iter().all(|t| t.len() == width),
            "rows of N·D values"
        );
        let mean = column_means(tokens.iter().map(Vec::as_slice), width);
        let mut residual: Vec<Vec<f32>> = tokens
            .iter()
            .map(|t| t.iter().zip(&mean).map(|(v, m)| v - m).collect())
            .collect();
        let mut effects: Vec<Vec<Vec<f32>>> =
            LEVELS.iter().map(|&n| vec![vec![0.0; width]; n]).collect();
        let levels: Vec<[usize; 5]> = scenes.iter().map(attribute_levels).collect();
        for _ in 0..SWEEPS {
            for (a, effect) in effects.iter_mut().enumerate() {
                refit_effect(a, effect, &mut residual, &levels);
            }
        }
        AttributeTokens {
            token_shape,
            mean,
            effects,
        }
    }

    /// [`Self::fit`] to image tokens [S, N, D] of `scenes` (from [`scene_tokens`]).
    pub fn of_tokens(scenes: &[Scene], tokens: &Tensor) -> Result<Self> {
        let (_, n, d) = tokens.dims3()?;
        let rows = tokens.flatten_from(1)?.to_vec2::<f32>()?;
        Ok(Self::fit(scenes, &rows, (n, d)))
    }

    /// The additive tokens of `scene`: [N·D].
    pub fn predict(&self, scene: &Scene) -> Vec<f32> {
        let mut out = self.mean.clone();
        for (a, &level) in attribute_levels(scene).iter().enumerate() {
            for (o, e) in out.iter_mut().zip(&self.effects[a][level]) {
                *o += e;
            }
        }
        out
    }

    /// The additive tokens of `scenes`: [S, N, D].
    pub fn predict_batch(&self, scenes: &[Scene], device: &Device) -> Result<Tensor> {
        let (n, d) = self.token_shape;
        let values: Vec<f32> = scenes.iter().flat_map(|s| self.predict(s)).collect();
        Ok(Tensor::from_vec(values, (scenes.len(), n, d), device)?)
    }
}

/// Refits attribute `a`'s effects on the residual with its current effects added back, and
/// leaves the residual without the new ones.
fn refit_effect(
    a: usize,
    effect: &mut [Vec<f32>],
    residual: &mut [Vec<f32>],
    levels: &[[usize; 5]],
) {
    for (row, lv) in residual.iter_mut().zip(levels) {
        for (r, e) in row.iter_mut().zip(&effect[lv[a]]) {
            *r += e;
        }
    }
    for (level, slot) in effect.iter_mut().enumerate() {
        let rows = residual
            .iter()
            .zip(levels)
            .filter(|(_, lv)| lv[a] == level)
            .map(|(r, _)| r.as_slice());
        *slot = column_means(rows, slot.len());
    }
    for (row, lv) in residual.iter_mut().zip(levels) {
        for (r, e) in row.iter_mut().zip(&effect[lv[a]]) {
            *r -= e;
        }
    }
}

/// Column means of `rows` (each `width` long); zeros when there are none.
fn column_means<'a>(rows: impl Iterator<Item = &'a [f32]>, width: usize) -> Vec<f32> {
    let mut sum = vec![0.0f64; width];
    let mut count = 0usize;
    for row in rows {
        for (s, &v) in sum.iter_mut().zip(row) {
            *s += v as f64;
        }
        count += 1;
    }
    sum.iter()
        .map(|s| (s / count.max(1) as f64) as f32)
        .collect()
}

/// The image tower's tokens of the rendered `scenes`, detached: [S, N, D].
pub fn scene_tokens(
    model: &BlipForConditionalGeneration,
    scenes: &[Scene],
    device: &Device,
) -> Result<Tensor> {
    let size = model.vision_model.config.image_size;
    let mut parts = Vec::new();
    for chunk in scenes.chunks(64) {
        let images: Vec<_> = chunk.iter().map(|s| s.render(size)).collect();
        let pixels = blip_pixels(&images, size, false, device)?;
        parts.push(model.vision_model.forward(&pixels)?.detach());
    }
    Ok(Tensor::cat(&parts, 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes_blip::data::training_scenes;
    use brainrecon_simulate::scene::N_SCENES;

    /// An exactly additive table (plus nothing else) is recovered: every scene's prediction
    /// equals its row, held-out scenes included.
    #[test]
    fn additive_tables_are_recovered_for_unseen_combinations() {
        let width = 3;
        let value = |a: usize, level: usize, k: usize| ((a * 7 + level * 3 + k) as f32).sin();
        let row = |s: &Scene| -> Vec<f32> {
            (0..width)
                .map(|k| {
                    0.5 + attribute_levels(s)
                        .iter()
                        .enumerate()
                        .map(|(a, &l)| value(a, l, k))
                        .sum::<f32>()
                })
                .collect()
        };
        let scenes = training_scenes();
        assert_eq!(scenes.len(), N_SCENES - N_SCENES / 10);
        let rows: Vec<Vec<f32>> = scenes.iter().map(row).collect();
        let model = AttributeTokens::fit(&scenes, &rows, (1, width));
        for id in 0..N_SCENES {
            let scene = Scene::from_id(id);
            for (p, t) in model.predict(&scene).iter().zip(row(&scene)) {
                assert!((p - t).abs() < 1e-4, "scene {id}: {p} vs {t}");
            }
        }
    }

    /// An interaction is not additive: the fit returns the additive part, not the row.
    #[test]
    fn interactions_are_left_out() {
        let scenes = training_scenes();
        let rows: Vec<Vec<f32>> = scenes
            .iter()
            .map(|s| vec![(s.shape == 0 && s.position == 0) as u8 as f32])
            .collect();
        let model = AttributeTokens::fit(&scenes, &rows, (1, 1));
        let hit = Scene::from_id(0);
        assert_eq!((hit.shape, hit.position), (0, 0));
        let p = model.predict(&hit)[0];
        assert!(p > 0.1 && p < 0.9, "additive part of a single cell: {p}");
    }
}
