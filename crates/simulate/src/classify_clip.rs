//! A rule that reads a synthetic clip back from its frames: the scene's colour and shape (the
//! image rule, [`read_scene`], voted over the frames) and the direction the shape moves (the
//! straight-line fit of its mask's centroid over the frames), to score generated and
//! reconstructed clips against the clip that was shown.

use super::classify::{read_scene, shape_mask};
use super::scene::{BACKGROUNDS, COLOURS};
use brainrecon_formats::image::RgbImage;

/// What the rule read from a clip.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipReading {
    /// The background most frames show.
    pub background: usize,
    /// The colour most frames show (`None` when most show no shape).
    pub colour: Option<usize>,
    /// The shape most frames show (`None` when most show no shape).
    pub shape: Option<usize>,
    /// The centroid's velocity in image widths per frame, (x right, y down): the slope of a
    /// least-squares line through the frames' centroids. `None` when fewer than two frames show
    /// the shape.
    pub velocity: Option<[f32; 2]>,
}

/// The most frequent value (ties: the smallest), `None` when most frames read nothing.
fn vote(values: &[Option<usize>], n_values: usize) -> Option<usize> {
    let mut counts = vec![0usize; n_values + 1];
    for v in values {
        counts[v.map_or(n_values, |v| v)] += 1;
    }
    let best = (0..=n_values).max_by_key(|&i| (counts[i], usize::MAX - i))?;
    (best < n_values).then_some(best)
}

/// The least-squares slope of `values` against their frame numbers `frames`.
fn slope(frames: &[f32], values: &[f32]) -> f32 {
    let n = frames.len() as f32;
    let (mt, mv) = (
        frames.iter().sum::<f32>() / n,
        values.iter().sum::<f32>() / n,
    );
    let cov: f32 = frames
        .iter()
        .zip(values)
        .map(|(t, v)| (t - mt) * (v - mv))
        .sum();
    let var: f32 = frames.iter().map(|t| (t - mt).powi(2)).sum();
    cov / var
}

/// Reads a clip (frames in order, all of one size).
pub fn read_clip(frames: &[RgbImage]) -> ClipReading {
    assert!(!frames.is_empty(), "a clip has at least one frame");
    let readings: Vec<_> = frames.iter().map(read_scene).collect();
    let background = vote(
        &readings
            .iter()
            .map(|r| Some(r.background))
            .collect::<Vec<_>>(),
        BACKGROUNDS.len(),
    )
    .unwrap_or(0);
    let colour = vote(
        &readings.iter().map(|r| r.colour).collect::<Vec<_>>(),
        COLOURS.len(),
    );
    let shape = vote(
        &readings.iter().map(|r| r.shape).collect::<Vec<_>>(),
        super::scene::SHAPES.len(),
    );
    let velocity = colour.and_then(|colour| {
        let (mut t, mut xs, mut ys) = (Vec::new(), Vec::new(), Vec::new());
        for (i, frame) in frames.iter().enumerate() {
            let mask = shape_mask(frame, BACKGROUNDS[background].1, COLOURS[colour].1);
            if mask.len() < 4 {
                continue;
            }
            let n = mask.len() as f32;
            t.push(i as f32);
            xs.push(mask.iter().map(|p| p.0).sum::<f32>() / n / frame.width as f32);
            ys.push(mask.iter().map(|p| p.1).sum::<f32>() / n / frame.height as f32);
        }
        (t.len() >= 2).then(|| [slope(&t, &xs), slope(&t, &ys)])
    });
    ClipReading {
        background,
        colour,
        shape,
        velocity,
    }
}

/// The index of the unit direction in `directions` (x right, y down) closest in angle to
/// `velocity`, or `still` (when given) if the speed is below `min_speed` (image widths per
/// frame). `None` when nothing moves and no still class exists.
pub fn nearest_direction(
    velocity: [f32; 2],
    directions: &[[f32; 2]],
    still: Option<usize>,
    min_speed: f32,
) -> Option<usize> {
    let speed = velocity[0].hypot(velocity[1]);
    if speed < min_speed {
        return still;
    }
    (0..directions.len())
        .filter(|&i| Some(i) != still)
        .max_by(|&a, &b| {
            let dot = |d: [f32; 2]| d[0] * velocity[0] + d[1] * velocity[1];
            dot(directions[a]).total_cmp(&dot(directions[b]))
        })
}

#[cfg(test)]
mod tests {
    use super::super::scene::Scene;
    use super::*;

    /// A scene's frames with its shape shifted `step` pixels per frame along x then y.
    fn moving(scene: Scene, frames: usize, step: [i32; 2]) -> Vec<RgbImage> {
        let image = scene.render(64);
        let bg = BACKGROUNDS[scene.background].1;
        (0..frames as i32)
            .map(|f| {
                let mut pixels = bg.repeat(64 * 64);
                for y in 0..64i32 {
                    for x in 0..64i32 {
                        let (sx, sy) = (x - step[0] * f, y - step[1] * f);
                        if (0..64).contains(&sx) && (0..64).contains(&sy) {
                            let (src, dst) =
                                (((sy * 64 + sx) * 3) as usize, ((y * 64 + x) * 3) as usize);
                            pixels[dst..dst + 3].copy_from_slice(&image.pixels[src..src + 3]);
                        }
                    }
                }
                RgbImage::new(64, 64, pixels)
            })
            .collect()
    }

    const DIRECTIONS: [[f32; 2]; 5] =
        [[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0], [0.0, 0.0]];

    #[test]
    fn the_direction_of_motion_is_read_back() {
        let scene = Scene {
            shape: 2,
            colour: 1,
            background: 0,
            position: 4,
            size: 0,
        };
        for (expected, step) in [
            (0, [-2, 0]),
            (1, [2, 0]),
            (2, [0, -2]),
            (3, [0, 2]),
            (4, [0, 0]),
        ] {
            let reading = read_clip(&moving(scene, 6, step));
            assert_eq!(reading.colour, Some(1));
            assert_eq!(reading.shape, Some(2));
            let v = reading.velocity.unwrap();
            let direction = nearest_direction(v, &DIRECTIONS, Some(4), 0.01);
            assert_eq!(direction, Some(expected), "step {step:?}: velocity {v:?}");
            assert!((v[0] - step[0] as f32 / 64.0).abs() < 1e-3, "{v:?}");
        }
    }

    #[test]
    fn frames_without_a_shape_read_nothing() {
        let grey = RgbImage::new(16, 16, [128u8, 128, 128].repeat(256));
        let reading = read_clip(&[grey.clone(), grey]);
        assert_eq!(
            (reading.colour, reading.shape, reading.velocity),
            (None, None, None)
        );
        assert_eq!(
            nearest_direction([0.0, 0.0], &DIRECTIONS[..4], None, 0.01),
            None
        );
    }
}
