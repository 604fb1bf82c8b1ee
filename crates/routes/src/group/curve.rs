//! `group curve`: two-way identification of a new subject against its number of sessions, for
//! the within-subject route and each of a group's spaces, with the within-subject route on all
//! sessions as the ceiling.

use super::adapt::{adapt, AdaptRequest, MapFit, Via};
use super::{decoders_dir, GroupMeta, SpaceMeta};
use crate::decode::decoders::{fit_request, Decoder, FitRequest};
use crate::decode::features::{features_request, FeaturesRequest};
use crate::error::{Result, RouteError};
use brainrecon_core::fs::{write_bytes_atomic, write_json_atomic, OutputDir};
use brainrecon_datasets::nsd::prepare::{prepare, PrepareOptions};
use brainrecon_datasets::prepared::{PreparedSubject, Split};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What `group curve` is asked.
#[derive(Debug, Clone)]
pub struct CurveRequest {
    /// The group folder.
    pub group: PathBuf,
    /// Spaces of the group to adapt the new subject into, each `NAME[:VIA[:MAP]]` (see
    /// [`AdaptRequest`]'s `via` and `map`; default: the space's).
    pub spaces: Vec<String>,
    /// The NSD root holding the new subject (prepared here once per session count).
    pub nsd_root: PathBuf,
    /// 1-based NSD subject number of the new subject.
    pub subject: usize,
    /// Session counts; `None` is all of them.
    pub sessions: Vec<Option<usize>>,
    /// Decoder targets scored (z, c).
    pub targets: Vec<String>,
    /// The folder to write: `curve.json`, `curve.md`, `curve.svg` and the prepared subjects under
    /// `work/`.
    pub out: PathBuf,
    /// Whether the caller shows progress; the stages reach it through [`curve`]'s callback
    /// either way.
    pub progress: bool,
}

/// The session counts `--sessions` lists: each a count of at least 1, or `all` (`None`).
///
/// # Errors
/// [`RouteError::Usage`] naming the first entry that is neither.
pub fn parse_session_counts(entries: &[String]) -> Result<Vec<Option<usize>>> {
    let count = |entry: &str| match entry {
        "all" => Some(None),
        n => n.parse::<usize>().ok().filter(|&n| n > 0).map(Some),
    };
    entries
        .iter()
        .map(|entry| {
            count(entry).ok_or_else(|| {
                RouteError::Usage(format!(
                    "--sessions: expected counts ≥ 1 or all, found '{entry}'"
                ))
            })
        })
        .collect()
}

/// One point of the curve.
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    /// `within-subject` or the space's name.
    pub method: String,
    /// Sessions of the new subject used.
    pub sessions: usize,
    /// Whether those are all the subject has.
    pub all_sessions: bool,
    /// Train trials those sessions hold.
    pub n_train_trials: usize,
    /// Two-way identification of each decoded target on the test images (chance 0.5).
    pub two_way: Vec<(String, f64)>,
    /// Their mean.
    pub two_way_mean: f64,
    /// Test images scored (outside the group's align set).
    pub n_test: usize,
}

/// The curve.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    /// The group folder.
    pub group: PathBuf,
    /// The new subject.
    pub subject: String,
    /// One per method and session count.
    pub points: Vec<CurvePoint>,
    /// The within-subject route on all sessions.
    pub ceiling: f64,
}

impl Curve {
    /// The table as Markdown: one row per method, one column per session count.
    pub fn markdown(&self) -> String {
        let mut counts: Vec<(usize, bool)> = self
            .points
            .iter()
            .map(|p| (p.sessions, p.all_sessions))
            .collect();
        counts.sort_unstable();
        counts.dedup();
        let mut methods: Vec<String> = Vec::new();
        for p in &self.points {
            if !methods.contains(&p.method) {
                methods.push(p.method.clone());
            }
        }
        let label = |(n, all): (usize, bool)| {
            if all {
                format!("all ({n})")
            } else {
                n.to_string()
            }
        };
        let mut text = String::from("| method | ");
        text.push_str(
            &counts
                .iter()
                .map(|&c| format!("{} session{}", label(c), if c.0 == 1 { "" } else { "s" }))
                .collect::<Vec<_>>()
                .join(" | "),
        );
        text.push_str(" |\n|---|");
        text.push_str(&"---|".repeat(counts.len()));
        text.push('\n');
        for m in &methods {
            text.push_str(&format!("| {m} |"));
            for &c in &counts {
                let cell = self
                    .points
                    .iter()
                    .find(|p| &p.method == m && (p.sessions, p.all_sessions) == c)
                    .map(|p| {
                        format!(
                            " {:.3} ({:.0} %) |",
                            p.two_way_mean,
                            100.0 * p.two_way_mean / self.ceiling
                        )
                    })
                    .unwrap_or_else(|| " – |".into());
                text.push_str(&cell);
            }
            text.push('\n');
        }
        text.push_str(&format!(
            "\nTwo-way identification of the decoded targets ({}), mean over targets, on {} test \
             images of {}; in brackets, the share of the within-subject route on all sessions \
             ({:.3}).\n",
            self.points
                .first()
                .map(|p| p
                    .two_way
                    .iter()
                    .map(|t| t.0.clone())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            self.points.first().map_or(0, |p| p.n_test),
            self.subject,
            self.ceiling
        ));
        text
    }

    /// The best adapted method at the fewest sessions: (method, two-way, share of ceiling).
    pub fn best_at_fewest(&self) -> Option<(String, f64, f64)> {
        let fewest = self.points.iter().map(|p| p.sessions).min()?;
        self.points
            .iter()
            .filter(|p| p.sessions == fewest && p.method != "within-subject")
            .max_by(|a, b| a.two_way_mean.total_cmp(&b.two_way_mean))
            .map(|p| {
                (
                    p.method.clone(),
                    p.two_way_mean,
                    p.two_way_mean / self.ceiling,
                )
            })
    }

    /// The lines the command prints.
    pub fn text(&self) -> String {
        let mut text = self.markdown();
        if let Some((m, v, share)) = self.best_at_fewest() {
            text.push_str(&format!(
                "best at the fewest sessions: {m}, {v:.3} = {:.0} % of the ceiling\n",
                100.0 * share
            ));
        }
        text
    }
}

/// Prepares the new subject from its first `n` sessions (all with `None`) and computes its
/// features.
fn prepare_sessions(
    r: &CurveRequest,
    group: &GroupMeta,
    n: Option<usize>,
    out: &Path,
) -> Result<PreparedSubject> {
    if !out.join("subject.json").exists() {
        prepare(&PrepareOptions {
            sessions: n.map(|n| (1..=n).collect()),
            ..PrepareOptions::defaults(&r.nsd_root, r.subject, out)
        })?;
    }
    for kind in &group.kinds {
        features_request::<RouteError>(
            &FeaturesRequest {
                subject: out.to_path_buf(),
                kind: kind.clone(),
                model: Some(group.feature_model.clone()),
                layer: "last".into(),
                normalize: false,
                out: None,
                size: None,
                sample: false,
                seed: 0,
                batch: 16,
                device: brainrecon_core::Device::Cpu,
                dtype: brainrecon_diffusion::pipeline::DType::F32,
                progress: false,
            },
            |_, _| Ok(()),
        )?;
    }
    Ok(PreparedSubject::open(out)?)
}

/// Two-way identification of decoded rows (row-major, `ids.len()` × d) against `eval`'s
/// features of `target`, both centred on the mean over its train images.
pub fn two_way(
    eval: &PreparedSubject,
    target: &str,
    ids: &[usize],
    decoded: &[f32],
) -> Result<f64> {
    let truth = crate::decode::decoders::image_targets(
        eval,
        &crate::decode::decoders::Target::parse(target)?,
        &eval.path("features"),
    )?;
    let d = truth.width();
    let train_ids = eval.train_image_ids()?;
    let mut centre = vec![0f64; d];
    for row in truth.gather(&train_ids)?.chunks(d) {
        for (c, v) in centre.iter_mut().zip(row) {
            *c += f64::from(*v);
        }
    }
    let n_train = train_ids.len().max(1) as f64;
    let centred = |rows: &[f32]| -> Vec<f32> {
        rows.iter()
            .enumerate()
            .map(|(k, v)| v - (centre[k % d] / n_train) as f32)
            .collect()
    };
    let truth_rows = truth.gather(ids)?;
    Ok(brainrecon_metrics::identification::two_way_identification(
        &centred(decoded),
        &centred(&truth_rows),
        ids.len(),
        d,
    )?)
}

/// Runs the curve and writes `curve.json`, `curve.md` and `curve.svg` into `out`.
pub fn curve(r: &CurveRequest, progress: &mut dyn FnMut(String)) -> Result<Curve> {
    let group = GroupMeta::read(&r.group)?;
    let spaces: Vec<(String, SpaceMeta, Via, Option<MapFit>)> = r
        .spaces
        .iter()
        .map(|spec| {
            let mut parts = spec.split(':');
            let name = parts.next().unwrap_or_default();
            let via = parts.next().filter(|v| !v.is_empty());
            let map = parts.next().filter(|m| !m.is_empty());
            let space = SpaceMeta::read(&r.group, name)?;
            let via: Via = match via {
                Some(v) => v
                    .parse()
                    .map_err(|e| RouteError::Usage(format!("--via: {e}")))?,
                None => Via::default(),
            };
            let map: Option<MapFit> = map
                .map(|m| {
                    m.parse()
                        .map_err(|e| RouteError::Usage(format!("--map: {e}")))
                })
                .transpose()?;
            Ok((spec.clone(), space, via, map))
        })
        .collect::<Result<_>>()?;
    if r.sessions.is_empty() {
        return Err(RouteError::Usage(
            "--sessions: expected at least one session count".into(),
        ));
    }
    let out = OutputDir::create(&r.out)?;
    let work = out.path().join("work");
    std::fs::create_dir_all(&work).map_err(|e| brainrecon_core::DataError::io(&work, e))?;
    progress("preparing the new subject from all its sessions".into());
    let full = prepare_sessions(r, &group, None, &work.join("all"))?;
    let n_all = full.meta.sessions.len();
    let roi = full.roi(&group.roi)?;
    let test_ids: Vec<usize> = full
        .row_ids(Split::Test)?
        .into_iter()
        .filter(|id| group.align_ids.binary_search(id).is_err())
        .collect();
    if test_ids.len() < 2 {
        return Err(RouteError::Usage(format!(
            "{}: {} test images outside the group's align set; the curve needs at least 2",
            full.root.display(),
            test_ids.len()
        )));
    }
    let mut points = Vec::new();
    let mut counts: Vec<(usize, bool)> = r
        .sessions
        .iter()
        .map(|s| match s {
            Some(n) => (*n, *n >= n_all),
            None => (n_all, true),
        })
        .collect();
    counts.push((n_all, true));
    counts.sort_unstable();
    counts.dedup();
    for &(n, all) in &counts {
        let n = n.min(n_all);
        if n == 0 {
            return Err(RouteError::Usage(
                "--sessions: expected counts of at least 1".into(),
            ));
        }
        progress(format!("{n} session{}", if n == 1 { "" } else { "s" }));
        let subject = if all {
            PreparedSubject::open(&full.root)?
        } else {
            prepare_sessions(r, &group, Some(n), &work.join(format!("s{n}")))?
        };
        // Within-subject: its own decoders from these sessions.
        let mut scores = Vec::new();
        for target in &r.targets {
            let dir = work.join(format!("within-s{n}")).join(target);
            fit_request(
                &FitRequest {
                    roi: Some(group.roi.clone()),
                    ..FitRequest::with_defaults(subject.root.clone(), target.clone(), dir.clone())
                },
                &mut |_| {},
            )?;
            let decoder = Decoder::load(&dir)?;
            let tested = super::data::split_rows(&full, &roi, Split::Test)?
                .select(|_, id| test_ids.binary_search(&id).is_ok());
            let x: Vec<f32> = (0..tested.x.nrows())
                .flat_map(|i| (0..tested.x.ncols()).map(move |j| (i, j)))
                .map(|(i, j)| tested.x[(i, j)] as f32)
                .collect();
            let decoded = decoder
                .model
                .predict_row_major(&x, (tested.x.nrows(), tested.x.ncols()))?;
            scores.push((
                target.clone(),
                two_way(&full, target, &tested.ids, &decoded)?,
            ));
        }
        points.push(point(
            "within-subject",
            n,
            all,
            subject.meta.n_train_trials,
            scores,
            test_ids.len(),
        ));
        for (i, (label, space, via, map)) in spaces.iter().enumerate() {
            let adapted = work.join(format!("{}-{i}-s{n}", space.name));
            brainrecon_core::fs::remove_dir_atomic(&adapted)?;
            adapt(&AdaptRequest {
                group: r.group.clone(),
                space: space.name.clone(),
                subject: subject.root.clone(),
                sessions: None,
                via: *via,
                map: *map,
                eval_subject: Some(full.root.clone()),
                out: adapted.clone(),
            })?;
            let adapted = PreparedSubject::open(&adapted)?;
            let mut scores = Vec::new();
            for target in &r.targets {
                let decoder = Decoder::load(&decoders_dir(&r.group, &space.name).join(target))?;
                let (ids, decoded) = decoder.predict_test(&adapted)?;
                scores.push((target.clone(), two_way(&full, target, &ids, &decoded)?));
            }
            points.push(point(
                label,
                n,
                all,
                subject.meta.n_train_trials,
                scores,
                test_ids.len(),
            ));
        }
    }
    let ceiling = points
        .iter()
        .find(|p| p.method == "within-subject" && p.all_sessions)
        .map_or(f64::NAN, |p| p.two_way_mean);
    let curve = Curve {
        group: r.group.clone(),
        subject: full.meta.subject.clone(),
        points,
        ceiling,
    };
    write_json_atomic(&out.path().join("curve.json"), &curve)?;
    write_bytes_atomic(&out.path().join("curve.md"), curve.markdown().as_bytes())?;
    write_bytes_atomic(&out.path().join("curve.svg"), curve_svg(&curve).as_bytes())?;
    out.commit()?;
    Ok(curve)
}

fn point(
    method: &str,
    sessions: usize,
    all: bool,
    n_train_trials: usize,
    two_way: Vec<(String, f64)>,
    n_test: usize,
) -> CurvePoint {
    let mean = two_way.iter().map(|t| t.1).sum::<f64>() / two_way.len().max(1) as f64;
    CurvePoint {
        method: method.into(),
        sessions,
        all_sessions: all,
        n_train_trials,
        two_way,
        two_way_mean: mean,
        n_test,
    }
}

/// The curve as an SVG: sessions on a log axis, one line per method, the ceiling dashed.
pub fn curve_svg(curve: &Curve) -> String {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 400)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let max_sessions = curve
            .points
            .iter()
            .map(|p| p.sessions)
            .max()
            .unwrap_or(1)
            .max(2) as f64;
        let lo = curve
            .points
            .iter()
            .map(|p| p.two_way_mean)
            .fold(1.0f64, f64::min)
            .min(0.5);
        let chart = ChartBuilder::on(&root)
            .caption(
                "new subject: two-way identification vs sessions",
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(
                (0.9f64..max_sessions * 1.1).log_scale(),
                (lo - 0.02)..1.0f64,
            );
        let Ok(mut chart) = chart else {
            return String::new();
        };
        let _ = chart
            .configure_mesh()
            .x_desc("sessions of the new subject")
            .y_desc("two-way identification")
            .draw();
        let mut methods: Vec<String> = Vec::new();
        for p in &curve.points {
            if !methods.contains(&p.method) {
                methods.push(p.method.clone());
            }
        }
        for (i, m) in methods.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let series: Vec<(f64, f64)> = curve
                .points
                .iter()
                .filter(|p| &p.method == m)
                .map(|p| (p.sessions as f64, p.two_way_mean))
                .collect();
            if let Ok(drawn) =
                chart.draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
            {
                drawn
                    .label(m.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            }
            let _ = chart.draw_series(
                series
                    .into_iter()
                    .map(|(x, y)| Circle::new((x, y), 3, color.filled())),
            );
        }
        if curve.ceiling.is_finite() {
            let dashes: Vec<(f64, f64)> = (0..40)
                .map(|i| 0.9 * (max_sessions * 1.1 / 0.9).powf(i as f64 / 39.0))
                .map(|x| (x, curve.ceiling))
                .collect();
            let _ = chart.draw_series(
                dashes
                    .chunks(2)
                    .map(|c| PathElement::new(c.to_vec(), BLACK.stroke_width(1))),
            );
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
