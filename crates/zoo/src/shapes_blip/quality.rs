//! How well a captioner of the synthetic scenes names what it sees: on the held-out tenth of
//! the scenes (never shown in training), the share of captions that name the shape's colour,
//! its kind, both, and the background (two of the five caption templates leave the background
//! out, so a caption may rightly not name it: naming a wrong one is counted apart). Measured
//! during training at every checkpoint and by the quality test of the shipped shapes-blip.

use super::data::PROMPT;
use crate::shapes_ldm::held_out_scenes;
use brainrecon_language::blip::BlipForConditionalGeneration;
use brainrecon_language::generate::{beam_search, BeamSearchConfig};
use brainrecon_nn::Result;
use brainrecon_simulate::scene::{Scene, BACKGROUNDS, COLOURS, SHAPES};
use brainrecon_vision::preprocess::blip_pixels;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Shares (0–1) of held-out scenes whose caption names each attribute.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SceneNaming {
    /// Held-out scenes captioned.
    pub scenes: usize,
    /// Captions naming the shape's colour.
    pub colour: f64,
    /// Captions naming the shape (or a synonym, [`shape_words`]).
    pub shape: f64,
    /// The right colour and the right shape.
    pub colour_and_shape: f64,
    /// Captions naming the scene's background.
    pub background: f64,
    /// A background other than the scene's named.
    pub wrong_background: f64,
}

impl SceneNaming {
    /// The shares as percentages, in one line for people.
    pub fn text(&self) -> String {
        format!(
            "colour {:.0}%, shape {:.0}%, both {:.0}%, background {:.0}% (a wrong one {:.0}%)",
            100.0 * self.colour,
            100.0 * self.shape,
            100.0 * self.colour_and_shape,
            100.0 * self.background,
            100.0 * self.wrong_background
        )
    }
}

/// The words a caption may use for `shape` (the scenes' captions use these synonyms).
pub fn shape_words(shape: &str) -> &'static [&'static str] {
    match shape {
        "circle" => &["circle", "round", "disc"],
        "square" => &["square", "box"],
        "triangle" => &["triangle", "triangular"],
        _ => &["cross", "plus"],
    }
}

/// Whether `caption` names the scene's [colour, shape, background], and another background.
pub fn names_scene(scene: &Scene, caption: &str) -> ([bool; 3], bool) {
    let words: Vec<&str> = caption.split_whitespace().collect();
    let wrong_background = BACKGROUNDS
        .iter()
        .enumerate()
        .any(|(b, (name, _))| b != scene.background && words.contains(name));
    let named = [
        words.contains(&COLOURS[scene.colour].0),
        shape_words(SHAPES[scene.shape])
            .iter()
            .any(|w| words.contains(w)),
        words.contains(&BACKGROUNDS[scene.background].0),
    ];
    (named, wrong_background)
}

/// Captions of the held-out scenes (published beam search, prompt stripped), one per scene of
/// [`held_out_scenes`]. `tokens` is the vocabulary in id order (every word one token).
pub fn held_out_captions(
    model: &BlipForConditionalGeneration,
    tokens: &[String],
    device: &Device,
) -> Result<Vec<String>> {
    let size = model.vision_model.config.image_size;
    let images: Vec<_> = held_out_scenes().iter().map(|s| s.render(size)).collect();
    let image_tokens = model
        .vision_model
        .forward(&blip_pixels(&images, size, false, device)?)?;
    captions_of_tokens(model, tokens, &image_tokens)
}

/// Captions (published beam search, prompt stripped) of image tokens [S, N, D], one per row.
pub fn captions_of_tokens(
    model: &BlipForConditionalGeneration,
    tokens: &[String],
    image_tokens: &Tensor,
) -> Result<Vec<String>> {
    let id = |t: &str| tokens.iter().position(|x| x == t).map(|i| i as u32);
    let mut prompt: Vec<u32> = vec![id("[DEC]").expect("the vocabulary has [DEC]")];
    prompt.extend(PROMPT.split_whitespace().filter_map(id));
    let search = BeamSearchConfig::published();
    let mut captions = Vec::with_capacity(image_tokens.dim(0)?);
    for i in 0..image_tokens.dim(0)? {
        let mut session = model.caption_session(&image_tokens.narrow(0, i, 1)?)?;
        let best = beam_search(&mut session, &prompt, &search)?;
        let words: Vec<&str> = best.best().tokens[prompt.len()..]
            .iter()
            .map(|&t| tokens[t as usize].as_str())
            .filter(|w| !w.starts_with('['))
            .collect();
        captions.push(words.join(" "));
    }
    Ok(captions)
}

/// [`SceneNaming`] of `captions`, one per held-out scene.
pub fn scene_naming(captions: &[String]) -> SceneNaming {
    let scenes = held_out_scenes();
    assert_eq!(
        captions.len(),
        scenes.len(),
        "one caption per held-out scene"
    );
    let mut hits = [0usize; 5];
    for (scene, caption) in scenes.iter().zip(captions) {
        let (named, wrong_background) = names_scene(scene, caption);
        for (hit, &n) in hits.iter_mut().zip(&named) {
            *hit += n as usize;
        }
        hits[3] += (named[0] && named[1]) as usize;
        hits[4] += wrong_background as usize;
    }
    let share = |h: usize| h as f64 / scenes.len() as f64;
    SceneNaming {
        scenes: scenes.len(),
        colour: share(hits[0]),
        shape: share(hits[1]),
        colour_and_shape: share(hits[3]),
        background: share(hits[2]),
        wrong_background: share(hits[4]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synonyms_and_colours_count_as_named() {
        let scene = Scene {
            shape: 0,
            colour: 0,
            background: 1,
            position: 0,
            size: 0,
        };
        assert_eq!(
            names_scene(&scene, "a red disc on a black background"),
            ([true, true, true], false)
        );
        assert_eq!(
            names_scene(&scene, "a blue box against white"),
            ([false, false, false], true)
        );
        assert_eq!(
            names_scene(&scene, "reddish round"),
            ([false, true, false], false)
        );
    }
}
