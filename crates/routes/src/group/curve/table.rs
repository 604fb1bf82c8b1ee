//! The curve's result: its points with per-seed scores, the Markdown table, the printed lines
//! and the SVG.

use super::axis::{mean_sd, nsd_minutes, trials_label, SeedSplit};
use serde::Serialize;
use std::path::PathBuf;

/// The within-subject route's method name.
pub const WITHIN_SUBJECT: &str = "within-subject";
/// The row of the group method chosen on the validation images, per point and seed.
pub const BEST_GROUP_METHOD: &str = "best group method (chosen on validation)";

/// One seed's scores of a method at a point.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeedScore {
    /// The seed of the validation/test split.
    pub seed: u64,
    /// Two-way identification of each decoded target on the seed's test images (chance 0.5).
    pub two_way: Vec<(String, f64)>,
    /// Their mean.
    pub two_way_mean: f64,
    /// The same mean on the seed's validation images.
    pub validation_mean: f64,
    /// For the best group method: the space chosen on the validation images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen: Option<String>,
}

/// One point of the curve: a method at a number of the new subject's trials.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CurvePoint {
    /// [`WITHIN_SUBJECT`], a `--space` entry, or [`BEST_GROUP_METHOD`].
    pub method: String,
    /// The new subject's train trials used: its first ones in acquisition order.
    pub trials: usize,
    /// Whether those are all the subject has.
    pub all_trials: bool,
    /// Minutes those trials take at NSD's pace (4 s a trial).
    pub minutes: f64,
    /// Sessions those trials span (its align images come from these).
    pub sessions: usize,
    /// Align-image rows of the new subject in those sessions (one per image, repeats averaged).
    pub n_align_rows: usize,
    /// Rows of the new subject the method was fitted on: for the within-subject baseline, the
    /// train trials and the align rows; for a space, what `group adapt` fitted its map on.
    pub n_rows: usize,
    /// Per seed, in seed order.
    pub per_seed: Vec<SeedScore>,
    /// Mean over seeds of the test two-way mean.
    pub two_way_mean: f64,
    /// Its sample standard deviation over seeds (n − 1).
    pub two_way_sd: f64,
    /// `two_way_mean` over the ceiling's, unrounded.
    pub ratio_to_ceiling: f64,
}

impl CurvePoint {
    /// A point from its per-seed scores (the ratio is set once the ceiling is known).
    pub fn new(
        method: &str,
        (trials, all_trials, sessions): (usize, bool, usize),
        (n_align_rows, n_rows): (usize, usize),
        per_seed: Vec<SeedScore>,
    ) -> Self {
        let (two_way_mean, two_way_sd) =
            mean_sd(&per_seed.iter().map(|s| s.two_way_mean).collect::<Vec<_>>());
        CurvePoint {
            method: method.to_string(),
            trials,
            all_trials,
            minutes: nsd_minutes(trials),
            sessions,
            n_align_rows,
            n_rows,
            per_seed,
            two_way_mean,
            two_way_sd,
            ratio_to_ceiling: f64::NAN,
        }
    }
}

/// The curve.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    /// The group folder.
    pub group: PathBuf,
    /// The new subject.
    pub subject: String,
    /// The decoded targets scored.
    pub targets: Vec<String>,
    /// The validation/test split of each seed.
    pub seeds: Vec<SeedSplit>,
    /// One per method and trial count.
    pub points: Vec<CurvePoint>,
    /// The within-subject route on all trials: mean over seeds.
    pub ceiling: f64,
    /// Its s.d. over seeds.
    pub ceiling_sd: f64,
}

impl Curve {
    /// Sets every point's ratio to the ceiling (the within-subject point on all trials).
    pub fn with_ratios(mut self) -> Self {
        let (ceiling, sd) = self
            .points
            .iter()
            .find(|p| p.method == WITHIN_SUBJECT && p.all_trials)
            .map_or((f64::NAN, f64::NAN), |p| (p.two_way_mean, p.two_way_sd));
        self.ceiling = ceiling;
        self.ceiling_sd = sd;
        for p in &mut self.points {
            p.ratio_to_ceiling = p.two_way_mean / ceiling;
        }
        self
    }

    /// The trial points, sorted: (trials, all).
    pub fn trial_points(&self) -> Vec<(usize, bool)> {
        let mut points: Vec<(usize, bool)> = self
            .points
            .iter()
            .map(|p| (p.trials, p.all_trials))
            .collect();
        points.sort_unstable();
        points.dedup();
        points
    }

    /// The methods, in the order first met.
    pub fn methods(&self) -> Vec<String> {
        let mut methods: Vec<String> = Vec::new();
        for p in &self.points {
            if !methods.contains(&p.method) {
                methods.push(p.method.clone());
            }
        }
        methods
    }

    /// The point of `method` at `(trials, all)`.
    pub fn point(&self, method: &str, (trials, all): (usize, bool)) -> Option<&CurvePoint> {
        self.points
            .iter()
            .find(|p| p.method == method && (p.trials, p.all_trials) == (trials, all))
    }

    /// The table as Markdown: one row per method, one column per trial count; each cell the
    /// mean ± s.d. over seeds and, in brackets, the unrounded ratio to the ceiling.
    pub fn markdown(&self) -> String {
        let columns = self.trial_points();
        let mut text = String::from("| method | ");
        text.push_str(
            &columns
                .iter()
                .map(|&(n, all)| trials_label(n, all))
                .collect::<Vec<_>>()
                .join(" | "),
        );
        text.push_str(" |\n|---|");
        text.push_str(&"---|".repeat(columns.len()));
        text.push('\n');
        for m in self.methods() {
            text.push_str(&format!("| {m} |"));
            for &c in &columns {
                let cell = self
                    .point(&m, c)
                    .map(|p| {
                        format!(
                            " {:.3} ± {:.3} ({}) |",
                            p.two_way_mean, p.two_way_sd, p.ratio_to_ceiling
                        )
                    })
                    .unwrap_or_else(|| " – |".into());
                text.push_str(&cell);
            }
            text.push('\n');
        }
        let first = self.seeds.first();
        text.push_str(&format!(
            "\nTwo-way identification of the decoded targets ({}), mean over targets, on {} test \
             images of {}; mean ± s.d. over {} seeds, each a different split of the {} held-out \
             images (the subject's test images outside the group's align set) into {} \
             validation and {} test images; in brackets, the ratio to the within-subject route \
             on all trials ({}), unrounded. Trials are the subject's first train trials in \
             acquisition order; minutes at NSD's pace, 4 s a trial (3 s on, 1 s off). The \
             within-subject baseline is fitted on those trials and the subject's align-image \
             rows of the same sessions, the rows the group methods see. The best group method \
             is chosen per seed and trial count on the validation images only.\n",
            self.targets.join(", "),
            first.map_or(0, |s| s.test_ids.len()),
            self.subject,
            self.seeds.len(),
            first.map_or(0, |s| s.validation_ids.len() + s.test_ids.len()),
            first.map_or(0, |s| s.validation_ids.len()),
            first.map_or(0, |s| s.test_ids.len()),
            self.ceiling
        ));
        text.push_str("\nRows of the new subject at each point (train trials + align rows):");
        for &c in &columns {
            if let Some(p) = self.point(WITHIN_SUBJECT, c) {
                text.push_str(&format!(
                    " {} + {} = {};",
                    p.trials, p.n_align_rows, p.n_rows
                ));
            }
        }
        text.pop();
        text.push_str(".\n");
        let chosen: Vec<String> = columns
            .iter()
            .filter_map(|&c| self.point(BEST_GROUP_METHOD, c))
            .map(|p| {
                format!(
                    "{}: {}",
                    p.trials,
                    p.per_seed
                        .iter()
                        .map(|s| s.chosen.clone().unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        if !chosen.is_empty() {
            text.push_str(&format!(
                "Chosen on validation (per trial count, seed by seed): {}.\n",
                chosen.join("; ")
            ));
        }
        text
    }

    /// The best group method (chosen on validation) and the within-subject baseline at the
    /// fewest trials: (trials, best, baseline).
    pub fn at_fewest(&self) -> Option<(usize, &CurvePoint, &CurvePoint)> {
        let fewest = *self.trial_points().first()?;
        Some((
            fewest.0,
            self.point(BEST_GROUP_METHOD, fewest)?,
            self.point(WITHIN_SUBJECT, fewest)?,
        ))
    }

    /// The lines the command prints.
    pub fn text(&self) -> String {
        let mut text = self.markdown();
        if let Some((n, best, own)) = self.at_fewest() {
            text.push_str(&format!(
                "at {n} trials: best group method {:.3} ± {:.3} ({} of the ceiling), \
                 within-subject {:.3} ± {:.3} ({})\n",
                best.two_way_mean,
                best.two_way_sd,
                best.ratio_to_ceiling,
                own.two_way_mean,
                own.two_way_sd,
                own.ratio_to_ceiling
            ));
        }
        text
    }
}

/// The curve as an SVG: trials on a log axis labelled with NSD's minutes, one line per method
/// with ±1 s.d. bars over seeds, the within-subject baseline among them, the ceiling dashed.
pub fn curve_svg(curve: &Curve) -> String {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 440)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let points = curve.trial_points();
        let (lo_x, hi_x) = (
            points.first().map_or(1, |p| p.0).max(1) as f64,
            points.last().map_or(2, |p| p.0).max(2) as f64,
        );
        let lo = curve
            .points
            .iter()
            .map(|p| p.two_way_mean - p.two_way_sd)
            .filter(|v| v.is_finite())
            .fold(1.0f64, f64::min)
            .min(0.5);
        let chart = ChartBuilder::on(&root)
            .caption(
                "new subject: two-way identification vs trials",
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d((lo_x * 0.8..hi_x * 1.25).log_scale(), (lo - 0.02)..1.0f64);
        let Ok(mut chart) = chart else {
            return String::new();
        };
        let _ = chart
            .configure_mesh()
            .x_desc("trials of the new subject (minutes at NSD's 4 s a trial)")
            .y_desc("two-way identification")
            .x_label_formatter(&|x| format!("{x:.0} ({:.0} min)", nsd_minutes(*x as usize)))
            .draw();
        for (i, m) in curve.methods().iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let width = if m == BEST_GROUP_METHOD || m == WITHIN_SUBJECT {
                3
            } else {
                1
            };
            let series: Vec<&CurvePoint> = curve.points.iter().filter(|p| &p.method == m).collect();
            let line: Vec<(f64, f64)> = series
                .iter()
                .map(|p| (p.trials as f64, p.two_way_mean))
                .collect();
            if let Ok(drawn) = chart.draw_series(LineSeries::new(line, color.stroke_width(width))) {
                drawn
                    .label(m.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            }
            // ±1 s.d. bars: a vertical stroke with short caps (caps 4 % wide on the log axis).
            let _ = chart.draw_series(series.iter().flat_map(|p| {
                let (x, lo, hi) = (
                    p.trials as f64,
                    p.two_way_mean - p.two_way_sd,
                    p.two_way_mean + p.two_way_sd,
                );
                let (left, right) = (x / 1.04, x * 1.04);
                [
                    PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(1)),
                    PathElement::new(vec![(left, lo), (right, lo)], color.stroke_width(1)),
                    PathElement::new(vec![(left, hi), (right, hi)], color.stroke_width(1)),
                ]
            }));
            let _ = chart.draw_series(
                series
                    .iter()
                    .map(|p| Circle::new((p.trials as f64, p.two_way_mean), 3, color.filled())),
            );
        }
        if curve.ceiling.is_finite() {
            let dashes: Vec<(f64, f64)> = (0..40)
                .map(|i| lo_x * 0.8 * (hi_x * 1.25 / (lo_x * 0.8)).powf(i as f64 / 39.0))
                .map(|x| (x, curve.ceiling))
                .collect();
            if let Ok(drawn) = chart.draw_series(
                dashes
                    .chunks(2)
                    .map(|c| PathElement::new(c.to_vec(), BLACK.stroke_width(1))),
            ) {
                drawn
                    .label("ceiling: within-subject, all trials")
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK));
            }
        }
        let _ = chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw();
        let _ = root.present();
    }
    svg
}
