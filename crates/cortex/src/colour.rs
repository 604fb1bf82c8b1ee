//! Colour scales: how a vertex's value becomes a colour, or none (NaN, or under the threshold,
//! where the curvature underneath shows through).

/// A continuous colour map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colormap {
    /// Blue through white to red, for signed values (correlations, weights).
    Diverging,
    /// Dark red through orange to pale yellow, for values from `min` up (R², accuracy).
    Hot,
}

/// How a map's values are coloured.
#[derive(Clone, Debug, PartialEq)]
pub enum Scale {
    /// Values from `min` to `max` along `colormap`; values whose magnitude is under `threshold`
    /// are not drawn.
    Continuous {
        /// The colour map.
        colormap: Colormap,
        /// The value at the map's first colour (lower values take it too).
        min: f64,
        /// The value at the map's last colour (higher values take it too).
        max: f64,
        /// Magnitude under which a value is not drawn; None draws all.
        threshold: Option<f64>,
    },
    /// Whole values 0, 1, … name categories (`best layer`, `best band`), each its own colour.
    Categorical {
        /// The name of category `i` at index `i`.
        names: Vec<String>,
    },
}

/// Ten distinguishable colours (categories beyond ten repeat them, lighter).
const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [188, 189, 34],
    [23, 190, 207],
    [127, 127, 127],
];

/// Stops of [`Colormap::Diverging`] from min to max.
const DIVERGING: [[f64; 3]; 5] = [
    [5.0, 48.0, 97.0],
    [67.0, 147.0, 195.0],
    [247.0, 247.0, 247.0],
    [214.0, 96.0, 77.0],
    [103.0, 0.0, 31.0],
];

/// Stops of [`Colormap::Hot`] from min to max.
const HOT: [[f64; 3]; 5] = [
    [120.0, 0.0, 0.0],
    [200.0, 30.0, 0.0],
    [250.0, 120.0, 0.0],
    [255.0, 200.0, 40.0],
    [255.0, 255.0, 190.0],
];

/// The colour at `t` ∈ [0, 1] along evenly spaced stops.
fn along(stops: &[[f64; 3]], t: f64) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (t.floor() as usize).min(stops.len() - 2);
    let f = t - i as f64;
    let mut out = [0u8; 3];
    for (c, o) in out.iter_mut().enumerate() {
        *o = (stops[i][c] * (1.0 - f) + stops[i + 1][c] * f).round() as u8;
    }
    out
}

impl Colormap {
    /// The colour at `t` ∈ [0, 1].
    pub fn at(self, t: f64) -> [u8; 3] {
        match self {
            Colormap::Diverging => along(&DIVERGING, t),
            Colormap::Hot => along(&HOT, t),
        }
    }
}

/// The colour of category `i`.
pub fn category_colour(i: usize) -> [u8; 3] {
    let base = PALETTE[i % PALETTE.len()];
    let round = (i / PALETTE.len()) as u32;
    // Later rounds are mixed toward white so they differ from the first.
    let mix = |c: u8| -> u8 { (c as u32 + (255 - c as u32) * round.min(3) / 4) as u8 };
    [mix(base[0]), mix(base[1]), mix(base[2])]
}

impl Scale {
    /// A signed map from −m to m (m the largest finite magnitude), not drawn under `threshold`.
    pub fn symmetric(values: &[f64], threshold: Option<f64>) -> Scale {
        let m = values
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f64, |m, v| m.max(v.abs()));
        let m = if m > 0.0 { m } else { 1.0 };
        Scale::Continuous {
            colormap: Colormap::Diverging,
            min: -m,
            max: m,
            threshold,
        }
    }

    /// A map from 0 to its largest finite value (1 when none is positive), drawn in
    /// [`Colormap::Hot`], not drawn under `threshold`.
    pub fn positive(values: &[f64], threshold: Option<f64>) -> Scale {
        let m = values
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f64, |m, &v| m.max(v));
        Scale::Continuous {
            colormap: Colormap::Hot,
            min: 0.0,
            max: if m > 0.0 { m } else { 1.0 },
            threshold,
        }
    }

    /// The colour of `value`, or `None` where nothing is drawn (NaN, under the threshold, not a
    /// category).
    pub fn colour(&self, value: f64) -> Option<[u8; 3]> {
        if !value.is_finite() {
            return None;
        }
        match self {
            Scale::Continuous {
                colormap,
                min,
                max,
                threshold,
            } => {
                if threshold.is_some_and(|t| value.abs() < t) {
                    return None;
                }
                let span = max - min;
                let t = if span > 0.0 {
                    (value - min) / span
                } else {
                    0.5
                };
                Some(colormap.at(t))
            }
            Scale::Categorical { names } => {
                let i = value.round();
                if i < 0.0 || i as usize >= names.len() || (value - i).abs() > 1e-6 {
                    return None;
                }
                Some(category_colour(i as usize))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuous_ends_threshold_and_nan() {
        let s = Scale::symmetric(&[-2.0, 1.0, f64::NAN], Some(0.5));
        assert_eq!(s.colour(-2.0), Some([5, 48, 97]));
        assert_eq!(s.colour(2.0), Some([103, 0, 31]));
        assert_eq!(s.colour(0.0), None);
        assert_eq!(s.colour(0.4), None);
        assert_eq!(s.colour(f64::NAN), None);
    }

    #[test]
    fn categories_are_whole_values_in_range() {
        let s = Scale::Categorical {
            names: vec!["a".into(), "b".into()],
        };
        assert_eq!(s.colour(0.0), Some(PALETTE[0]));
        assert_eq!(s.colour(1.0), Some(PALETTE[1]));
        assert_eq!(s.colour(2.0), None);
        assert_eq!(s.colour(0.5), None);
        assert_ne!(category_colour(10), category_colour(0));
    }
}
