//! A simple rule that reads a synthetic scene's colour and shape back from pixels, to score
//! generated and reconstructed images against the scene that was shown.
//!
//! - Background: the palette background nearest to the median of the image's border pixels.
//! - Colour: the palette colour nearest to the per-channel median of the pixels farther than
//!   [`MASK_DISTANCE`] from that background colour (the farther half of them, so that edges
//!   blended with the background do not count).
//! - Shape mask: the pixels at least half-way from the background to that colour (projected on
//!   the line between the two), the outline a blur leaves in place.
//! - Shape, from the mask's moments: the share of its bounding box it fills (square ≈ 1,
//!   circle ≈ π/4, triangle ≈ 1/2, cross ≈ 5/9) and, to tell the triangle from the cross, how
//!   far its centroid sits below the box's centre (a triangle's is a sixth of the height lower;
//!   a cross's is central).

use super::scene::{Scene, BACKGROUNDS, COLOURS, SHAPES};
use brainrecon_formats::image::RgbImage;

/// RGB distance beyond which a pixel belongs to the foreground (about half the smallest
/// distance between a palette colour and a background).
pub const MASK_DISTANCE: f32 = 45.0;

/// What the rule read from an image (indices into the scene tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Index into [`BACKGROUNDS`]: the palette background nearest the image's border.
    pub background: usize,
    /// Index into [`COLOURS`]; `None` when no pixel stands out from the background.
    pub colour: Option<usize>,
    /// Index into [`SHAPES`]; `None` when no pixel stands out from the background.
    pub shape: Option<usize>,
}

fn distance(a: [f32; 3], b: [u8; 3]) -> f32 {
    (0..3)
        .map(|c| (a[c] - b[c] as f32).powi(2))
        .sum::<f32>()
        .sqrt()
}

fn nearest(colour: [f32; 3], palette: &[(&str, [u8; 3])]) -> usize {
    (0..palette.len())
        .min_by(|&i, &j| distance(colour, palette[i].1).total_cmp(&distance(colour, palette[j].1)))
        .expect("non-empty palette")
}

/// The upper median: the middle value, the later of the middle two for an even count (not
/// `numpy.median`'s mean of the two; the classifier's results are kept as they are).
fn median(values: &mut [f32]) -> f32 {
    values.sort_by(f32::total_cmp);
    values[values.len() / 2]
}

fn median_rgb(pixels: &[[f32; 3]]) -> [f32; 3] {
    let mut out = [0f32; 3];
    for (c, slot) in out.iter_mut().enumerate() {
        let mut channel: Vec<f32> = pixels.iter().map(|p| p[c]).collect();
        *slot = median(&mut channel);
    }
    out
}

/// The pixels (x, y) at least half-way from `bg` to `fg` along the line between the two
/// colours: the 50% contour of a shape of colour `fg` on `bg`, blurred or not.
pub fn shape_mask(image: &RgbImage, bg: [u8; 3], fg: [u8; 3]) -> Vec<(f32, f32)> {
    let axis: [f32; 3] = std::array::from_fn(|c| fg[c] as f32 - bg[c] as f32);
    let axis_norm2: f32 = axis.iter().map(|a| a * a).sum();
    let mut mask = Vec::new();
    for (i, p) in image.pixels.chunks_exact(3).enumerate() {
        let along: f32 = (0..3).map(|c| (p[c] as f32 - bg[c] as f32) * axis[c]).sum();
        if along > 0.5 * axis_norm2 {
            mask.push(((i % image.width) as f32, (i / image.width) as f32));
        }
    }
    mask
}

/// Reads background, colour and shape from an image of any size.
pub fn read_scene(image: &RgbImage) -> Reading {
    let (h, w) = (image.height, image.width);
    let pixel = |x: usize, y: usize| {
        let at = (y * w + x) * 3;
        let p = &image.pixels[at..at + 3];
        [p[0] as f32, p[1] as f32, p[2] as f32]
    };
    let mut border = Vec::with_capacity(2 * (h + w));
    for x in 0..w {
        border.push(pixel(x, 0));
        border.push(pixel(x, h - 1));
    }
    for y in 1..h.saturating_sub(1) {
        border.push(pixel(0, y));
        border.push(pixel(w - 1, y));
    }
    let background = nearest(median_rgb(&border), &BACKGROUNDS);
    let bg = BACKGROUNDS[background].1;

    let mut colours = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let p = pixel(x, y);
            if distance(p, bg) > MASK_DISTANCE {
                colours.push(p);
            }
        }
    }
    // A few stray pixels are noise, not a shape.
    if colours.len() < 4 {
        return Reading {
            background,
            colour: None,
            shape: None,
        };
    }
    // The farther half of them: the shape's inside, not its edge blended with the background.
    colours.sort_by(|a, b| distance(*b, bg).total_cmp(&distance(*a, bg)));
    colours.truncate(colours.len().div_ceil(2));
    let colour = nearest(median_rgb(&colours), &COLOURS);

    // The shape's outline: where a pixel is at least half-way from the background to the
    // shape's colour (the 50% contour), so that a blur or a faint halo neither grows nor
    // shrinks the shape.
    let mask = shape_mask(image, bg, COLOURS[colour].1);
    if mask.len() < 4 {
        return Reading {
            background,
            colour: Some(colour),
            shape: None,
        };
    }

    let n = mask.len() as f32;
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    let mut cy = 0.0;
    for &(x, y) in &mask {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
        cy += y;
    }
    cy /= n;
    let (box_w, box_h) = (x1 - x0 + 1.0, y1 - y0 + 1.0);
    let fill = n / (box_w * box_h);
    let drop = (cy - (y0 + y1) / 2.0) / box_h;
    let shape = if fill > 0.9 {
        "square"
    } else if fill > 0.68 {
        "circle"
    } else if drop > 0.08 {
        "triangle"
    } else {
        "cross"
    };
    Reading {
        background,
        colour: Some(colour),
        shape: SHAPES.iter().position(|&s| s == shape),
    }
}

/// Share of images whose colour, shape, and both, the rule reads as their scene's.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SceneAccuracy {
    /// Share whose colour is read right (0–1).
    pub colour: f64,
    /// Share whose shape is read right (0–1).
    pub shape: f64,
    /// Share whose colour and shape are both read right (0–1).
    pub both: f64,
}

impl SceneAccuracy {
    /// Chance level: a uniform guess of colour and shape.
    pub fn chance() -> Self {
        SceneAccuracy {
            colour: 1.0 / COLOURS.len() as f64,
            shape: 1.0 / SHAPES.len() as f64,
            both: 1.0 / (COLOURS.len() * SHAPES.len()) as f64,
        }
    }
}

/// Reads every image with [`read_scene`] and scores it against the scene shown
/// (`scenes[i]` ↔ `images[i]`).
pub fn scene_accuracy(scenes: &[Scene], images: &[RgbImage]) -> SceneAccuracy {
    assert_eq!(scenes.len(), images.len(), "one image per scene");
    let (mut colour, mut shape, mut both) = (0usize, 0usize, 0usize);
    for (scene, image) in scenes.iter().zip(images) {
        let reading = read_scene(image);
        let c = reading.colour == Some(scene.colour);
        let s = reading.shape == Some(scene.shape);
        colour += usize::from(c);
        shape += usize::from(s);
        both += usize::from(c && s);
    }
    let n = scenes.len().max(1) as f64;
    SceneAccuracy {
        colour: colour as f64 / n,
        shape: shape as f64 / n,
        both: both as f64 / n,
    }
}

#[cfg(test)]
mod tests {
    use super::super::scene::{Scene, N_SCENES, POSITIONS, SIZES};
    use super::*;

    #[test]
    fn scene_accuracy_counts_colour_and_shape_separately() {
        let red_circle = Scene {
            shape: 0,
            colour: 0,
            background: 0,
            position: 4,
            size: 1,
        };
        let blue_circle = Scene {
            colour: 2,
            ..red_circle
        };
        let red_square = Scene {
            shape: 1,
            ..red_circle
        };
        let images = vec![red_circle.render(64), red_circle.render(64)];
        let a = scene_accuracy(&[blue_circle, red_square], &images);
        assert_eq!((a.colour, a.shape, a.both), (0.5, 0.5, 0.0));
        let a = scene_accuracy(&[red_circle, red_circle], &images);
        assert_eq!((a.colour, a.shape, a.both), (1.0, 1.0, 1.0));
    }

    #[test]
    fn every_rendered_scene_is_read_back() {
        // At 64 px (the model's size) every scene; at 32 px the large ones (small shapes are
        // then 8 px wide, too few pixels for the moments).
        for (size, sizes) in [(64, 0..SIZES.len()), (32, 1..SIZES.len())] {
            let (mut total, mut right) = (0, 0);
            for shape in 0..SHAPES.len() {
                for colour in 0..COLOURS.len() {
                    for background in 0..BACKGROUNDS.len() {
                        for position in 0..POSITIONS.len() {
                            for s in sizes.clone() {
                                let scene = Scene {
                                    shape,
                                    colour,
                                    background,
                                    position,
                                    size: s,
                                };
                                let reading = read_scene(&scene.render(size));
                                total += 1;
                                assert_eq!(reading.background, background);
                                assert_eq!(reading.colour, Some(colour), "{scene:?}");
                                right += usize::from(reading.shape == Some(shape));
                            }
                        }
                    }
                }
            }
            let accuracy = right as f64 / total as f64;
            assert!(accuracy >= 0.99, "{size} px: shape accuracy {accuracy}");
        }
    }

    /// Each pixel replaced by the mean of its 3×3 neighbourhood (clamped at the border).
    fn box_blur(image: &RgbImage) -> RgbImage {
        let (h, w) = (image.height as isize, image.width as isize);
        let mut pixels = Vec::with_capacity(image.pixels.len());
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let mut sum = 0u32;
                    for dy in -1..=1 {
                        for dx in -1..=1 {
                            let (yy, xx) = ((y + dy).clamp(0, h - 1), (x + dx).clamp(0, w - 1));
                            sum += image.pixels[((yy * w + xx) * 3) as usize + c] as u32;
                        }
                    }
                    pixels.push(((sum as f32) / 9.0).round() as u8);
                }
            }
        }
        RgbImage::new(image.height, image.width, pixels)
    }

    #[test]
    fn a_blurred_scene_keeps_its_shape() {
        // A decoder's output is soft at the edges: the outline at half-way to the shape's
        // colour stays where it was.
        let (mut total, mut right) = (0, 0);
        for id in 0..N_SCENES {
            let scene = Scene::from_id(id);
            let reading = read_scene(&box_blur(&scene.render(64)));
            assert_eq!(reading.colour, Some(scene.colour), "{scene:?}");
            total += 1;
            right += usize::from(reading.shape == Some(scene.shape));
        }
        let accuracy = right as f64 / total as f64;
        assert!(
            accuracy >= 0.97,
            "shape accuracy after a 3×3 blur {accuracy}"
        );
    }

    #[test]
    fn a_plain_image_has_no_shape() {
        let image = RgbImage::new(16, 16, [128u8, 128, 128].repeat(256));
        let reading = read_scene(&image);
        assert_eq!(BACKGROUNDS[reading.background].0, "grey");
        assert_eq!(reading.colour, None);
        assert_eq!(reading.shape, None);
    }
}
