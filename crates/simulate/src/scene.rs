//! Procedural scenes: a shape of some colour, size and position on a background, with captions.

use brainrecon_formats::image::RgbImage;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Shape names.
pub const SHAPES: [&str; 4] = ["circle", "square", "triangle", "cross"];
/// Shape colours: name and sRGB value.
pub const COLOURS: [(&str, [u8; 3]); 6] = [
    ("red", [220, 40, 40]),
    ("green", [40, 170, 60]),
    ("blue", [40, 80, 220]),
    ("yellow", [235, 215, 40]),
    ("purple", [140, 50, 170]),
    ("orange", [240, 140, 30]),
];
/// Background colours: name and sRGB value.
pub const BACKGROUNDS: [(&str, [u8; 3]); 4] = [
    ("white", [245, 245, 245]),
    ("black", [15, 15, 15]),
    ("grey", [128, 128, 128]),
    ("beige", [225, 205, 165]),
];
/// Shape positions: name and centre (x, y) in image widths, y down.
pub const POSITIONS: [(&str, [f32; 2]); 5] = [
    ("left", [0.28, 0.5]),
    ("right", [0.72, 0.5]),
    ("top", [0.5, 0.28]),
    ("bottom", [0.5, 0.72]),
    ("centre", [0.5, 0.5]),
];
/// Shape sizes: name and radius in image widths.
pub const SIZES: [(&str, f32); 2] = [("small", 0.13), ("large", 0.23)];

/// Indices into the attribute tables above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scene {
    /// Index into [`SHAPES`].
    pub shape: usize,
    /// Index into [`COLOURS`].
    pub colour: usize,
    /// Index into [`BACKGROUNDS`].
    pub background: usize,
    /// Index into [`POSITIONS`].
    pub position: usize,
    /// Index into [`SIZES`].
    pub size: usize,
}

/// Number of one-hot semantic attributes (shape, colour, background, position, size).
pub const N_ATTRIBUTES: usize =
    SHAPES.len() + COLOURS.len() + BACKGROUNDS.len() + POSITIONS.len() + SIZES.len();

/// Number of distinct scenes (every combination of the attributes).
pub const N_SCENES: usize =
    SHAPES.len() * COLOURS.len() * BACKGROUNDS.len() * POSITIONS.len() * SIZES.len();

impl Scene {
    /// A number in `0..N_SCENES` that identifies the combination of attributes.
    pub fn id(&self) -> usize {
        (((self.shape * COLOURS.len() + self.colour) * BACKGROUNDS.len() + self.background)
            * POSITIONS.len()
            + self.position)
            * SIZES.len()
            + self.size
    }

    /// The scene with [`Scene::id`] `id`.
    pub fn from_id(id: usize) -> Self {
        assert!(id < N_SCENES, "scene id {id} out of range");
        let size = id % SIZES.len();
        let rest = id / SIZES.len();
        let position = rest % POSITIONS.len();
        let rest = rest / POSITIONS.len();
        let background = rest % BACKGROUNDS.len();
        let rest = rest / BACKGROUNDS.len();
        Scene {
            shape: rest / COLOURS.len(),
            colour: rest % COLOURS.len(),
            background,
            position,
            size,
        }
    }

    /// A scene with every attribute drawn uniformly.
    pub fn random(rng: &mut impl Rng) -> Self {
        let background = rng.gen_range(0..BACKGROUNDS.len());
        Scene {
            shape: rng.gen_range(0..SHAPES.len()),
            colour: rng.gen_range(0..COLOURS.len()),
            background,
            position: rng.gen_range(0..POSITIONS.len()),
            size: rng.gen_range(0..SIZES.len()),
        }
    }

    /// One-hot encoding of the attributes, length [`N_ATTRIBUTES`].
    pub fn one_hot(&self) -> Vec<f32> {
        let mut v = vec![0.0; N_ATTRIBUTES];
        let mut offset = 0;
        for (index, count) in [
            (self.shape, SHAPES.len()),
            (self.colour, COLOURS.len()),
            (self.background, BACKGROUNDS.len()),
            (self.position, POSITIONS.len()),
            (self.size, SIZES.len()),
        ] {
            v[offset + index] = 1.0;
            offset += count;
        }
        v
    }

    /// Whether (u, v) in [0, 1]² lies inside the shape centred at `centre`.
    fn inside(&self, u: f32, v: f32, [cx, cy]: [f32; 2]) -> bool {
        let r = SIZES[self.size].1;
        let (dx, dy) = (u - cx, v - cy);
        match SHAPES[self.shape] {
            "circle" => dx * dx + dy * dy <= r * r,
            "square" => dx.abs() <= 0.85 * r && dy.abs() <= 0.85 * r,
            "triangle" => dy >= -r && dy <= 0.8 * r && dx.abs() <= 0.6 * (dy + r),
            _ => (dx.abs() <= r / 3.0 && dy.abs() <= r) || (dy.abs() <= r / 3.0 && dx.abs() <= r),
        }
    }

    /// Share of each pixel the shape covers at `size`×`size` (row-major, 3×3 supersampling):
    /// 0 on the background, 1 inside, fractions on the edge.
    pub fn coverage(&self, size: usize) -> Vec<f32> {
        self.coverage_at(POSITIONS[self.position].1, size)
    }

    /// As [`Scene::coverage`] with the shape centred at `centre` (x, y in [0, 1]) instead of
    /// its position's centre: moving shapes are drawn this way.
    pub fn coverage_at(&self, centre: [f32; 2], size: usize) -> Vec<f32> {
        let mut coverage = Vec::with_capacity(size * size);
        for y in 0..size {
            for x in 0..size {
                let mut hits = 0;
                for sy in 0..3 {
                    for sx in 0..3 {
                        let u = (x as f32 + (sx as f32 + 0.5) / 3.0) / size as f32;
                        let v = (y as f32 + (sy as f32 + 0.5) / 3.0) / size as f32;
                        hits += self.inside(u, v, centre) as u32;
                    }
                }
                coverage.push(hits as f32 / 9.0);
            }
        }
        coverage
    }

    /// Renders the scene at `size`×`size`, anti-aliased by 3×3 supersampling.
    pub fn render(&self, size: usize) -> RgbImage {
        self.render_at(POSITIONS[self.position].1, size)
    }

    /// As [`Scene::render`] with the shape centred at `centre` (x, y in [0, 1]).
    pub fn render_at(&self, centre: [f32; 2], size: usize) -> RgbImage {
        let fg = COLOURS[self.colour].1;
        let bg = BACKGROUNDS[self.background].1;
        let mut pixels = Vec::with_capacity(size * size * 3);
        for a in self.coverage_at(centre, size) {
            for c in 0..3 {
                pixels.push((a * fg[c] as f32 + (1.0 - a) * bg[c] as f32).round() as u8);
            }
        }
        RgbImage::new(size, size, pixels)
    }

    /// Five different captions that describe the scene.
    pub fn captions(&self, rng: &mut impl Rng) -> Vec<String> {
        let shape = SHAPES[self.shape];
        let colour = COLOURS[self.colour].0;
        let background = BACKGROUNDS[self.background].0;
        let size = SIZES[self.size].0;
        let (side, at) = match POSITIONS[self.position].0 {
            "left" => ("left side", "on the left"),
            "right" => ("right side", "on the right"),
            "top" => ("top", "at the top"),
            "bottom" => ("bottom", "at the bottom"),
            _ => ("centre", "in the middle"),
        };
        let synonym = match shape {
            "circle" => ["round shape", "disc"],
            "square" => ["box", "square shape"],
            "triangle" => ["triangular shape", "triangle"],
            _ => ["plus sign", "cross shape"],
        };
        let big = if size == "small" {
            ["small", "little"]
        } else {
            ["large", "big"]
        };
        let mut captions = vec![
            format!("a {size} {colour} {shape} on a {background} background"),
            format!("a {colour} {shape} in the {side} of the picture"),
            format!(
                "there is a {colour} {} {at} against {background}",
                synonym.choose(rng).unwrap()
            ),
            format!(
                "a {background} image with a {} {colour} {shape}",
                big.choose(rng).unwrap()
            ),
            format!(
                "{} {colour} {} placed {at}",
                big.choose(rng).unwrap(),
                synonym.choose(rng).unwrap()
            ),
        ];
        captions[4] = format!("a {}", captions[4]);
        captions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn rendering_puts_the_shape_where_the_caption_says() {
        let scene = Scene {
            shape: 0,
            colour: 0,
            background: 0,
            position: 0,
            size: 1,
        };
        let image = scene.render(40);
        let at = |x: usize, y: usize| &image.pixels[(y * 40 + x) * 3..(y * 40 + x) * 3 + 3];
        assert_eq!(at(11, 20), &COLOURS[0].1); // left centre is red
        assert_eq!(at(35, 20), &BACKGROUNDS[0].1); // right edge is background
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let captions = scene.captions(&mut rng);
        assert_eq!(captions.len(), 5);
        assert!(captions.iter().all(|c| c.contains("red")));
        assert!(captions[1].contains("left"));
    }
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn ids_enumerate_every_scene_once() {
        let mut seen = vec![false; N_SCENES];
        for id in 0..N_SCENES {
            let scene = Scene::from_id(id);
            assert_eq!(scene.id(), id);
            assert!(!seen[id]);
            seen[id] = true;
            assert!(scene.shape < SHAPES.len() && scene.colour < COLOURS.len());
        }
        assert_eq!(N_SCENES, 960);
    }
}
