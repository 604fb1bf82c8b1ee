//! `group curve`: two-way identification of a new subject against the trials it was scanned
//! for, for the within-subject route, each of a group's spaces and the group method chosen on
//! validation images, with the within-subject route on all trials as the ceiling.
//!
//! How it stays honest (issue 80):
//! - the x axis is the new subject's **first N train trials in acquisition order** (sessions
//!   in order, trials in order within them), what a lab scans first, labelled with NSD's
//!   minutes (4 s a trial: 3 s on, 1 s off), so 750 trials is NSD's one session;
//! - the align-image rows at a point are those of the sessions the N trials span (prepared
//!   from those sessions, repeats averaged), and the **within-subject baseline is fitted on
//!   the same rows** the group methods see: the N trials and those align rows;
//! - the held-out images (the subject's test images outside the group's align set) are split,
//!   per seed, into validation and test halves; with several spaces, the best group method is
//!   chosen per seed and point on the **validation images only**, and scored on the test ones.
//!   Alphas and penalties are chosen by cross-validation on the fitting rows (decoders,
//!   `group adapt`), never on held-out images. The fits do not depend on the seed (the trials
//!   are the first N), so each is made once and scored on every seed's split;
//! - every point reports mean ± s.d. over seeds and its unrounded ratio to the ceiling;
//! - a new subject that is one of the group's subjects is refused.

mod axis;
mod rows;
mod table;

pub use axis::{
    mean_sd, nsd_minutes, parse_trial_count, parse_trial_counts, seed_splits, trial_points,
    trials_label, SeedSplit, DEFAULT_TRIALS, NSD_SECONDS_PER_TRIAL,
};
pub use table::{curve_svg, Curve, CurvePoint, SeedScore, BEST_GROUP_METHOD, WITHIN_SUBJECT};

use super::adapt::{adapt, AdaptRequest, MapFit, Via};
use super::data::{split_rows, train_sessions};
use super::{decoders_dir, GroupMeta, SpaceMeta};
use crate::decode::decoders::{fit_request, Decoder, FitRequest};
use crate::decode::features::{features_request, FeaturesRequest};
use crate::error::{Result, RouteError};
use brainrecon_core::fs::{write_bytes_atomic, write_json_atomic, OutputDir};
use brainrecon_datasets::nsd::prepare::{prepare, PrepareOptions};
use brainrecon_datasets::prepared::{PreparedSubject, Split};
use rows::{write_subject, AtlasRows};
use std::path::{Path, PathBuf};

/// What `group curve` is asked.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct CurveRequest {
    /// The group folder.
    #[cfg_attr(feature = "cli", arg(long, help = "The group folder"))]
    pub group: PathBuf,
    /// Spaces of the group to adapt the new subject into, each `NAME[:VIA[:MAP]]` (see
    /// [`AdaptRequest`]'s `via` and `map`; default: the space's).
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "space",
            required = true,
            help = "Spaces to adapt into (repeat), each NAME[:VIA[:MAP]] (e.g. srm:features:encoding)"
        )
    )]
    pub spaces: Vec<String>,
    /// The NSD root holding the new subject (prepared here from all its sessions, and from the
    /// sessions each point's trials span).
    #[cfg_attr(feature = "cli", arg(long, help = "NSD root of the new subject"))]
    pub nsd_root: PathBuf,
    /// 1-based NSD subject number of the new subject; it must not be one of the group's.
    #[cfg_attr(feature = "cli", arg(long, help = "The new subject, not one of the group's: subj01 … subj08", value_parser = brainrecon_datasets::nsd::parse_subject))]
    pub subject: usize,
    /// Train-trial counts of the new subject (its first ones in acquisition order); `None` is
    /// all of them. Counts at or above the subject's trials become the all-trials point.
    #[cfg_attr(feature = "cli", arg(long, default_value = "100,250,500,750,1500,all", value_delimiter = ',', help = "Train-trial counts of the new subject (its first trials in acquisition order), comma-separated; `all` for every trial", value_parser = parse_trial_count))]
    pub trials: Vec<Option<usize>>,
    /// Seeds of the validation/test split of the held-out images (at least 1).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 3,
            help = "Seeds: each a different validation/test split of the held-out images"
        )
    )]
    pub seeds: usize,
    /// Decoder targets scored (z, c).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value = "z,c",
            value_delimiter = ',',
            help = "Decoder targets scored, comma-separated"
        )
    )]
    pub targets: Vec<String>,
    /// The folder to write: `curve.json`, `curve.md`, `curve.svg` and the prepared subjects,
    /// decoders and adapted subjects under `work/`.
    #[cfg_attr(feature = "cli", arg(long, help = "Output folder"))]
    pub out: PathBuf,
    /// Whether the caller shows progress; the stages reach it through [`curve`]'s callback
    /// either way.
    #[cfg_attr(feature = "cli", arg(skip))]
    pub progress: bool,
}

/// Prepares the new subject from its `sessions` (all with `None`), with features when asked
/// (the subject prepared from all sessions holds them for every image).
fn prepare_sessions(
    r: &CurveRequest,
    group: &GroupMeta,
    sessions: Option<Vec<usize>>,
    out: &Path,
    with_features: bool,
) -> Result<PreparedSubject> {
    if !out.join("subject.json").exists() {
        prepare(&PrepareOptions {
            sessions,
            ..PrepareOptions::defaults(&r.nsd_root, r.subject, out)
        })?;
    }
    for kind in group.kinds.iter().filter(|_| with_features) {
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

/// Refuses a new subject that is one of the group's subjects (by its NSD name): its trials
/// shaped the space and the group's decoders, so the curve would flatter the group.
fn refuse_member(r: &CurveRequest, group: &GroupMeta) -> Result<()> {
    let name = format!("subj{:02}", r.subject);
    match group.subjects.iter().find(|s| s.name == name) {
        Some(member) => Err(RouteError::Usage(format!(
            "--subject {name}: {} lists {name} among the group's subjects (prepared at {}); the \
             curve needs a new subject, one outside the group: pick another --subject, or \
             prepare a group without {name}",
            r.group.join("group.json").display(),
            member.path.display()
        ))),
        None => Ok(()),
    }
}

/// The `--space` entries, read: (the entry, its space, via, map).
fn read_spaces(r: &CurveRequest) -> Result<Vec<(String, SpaceMeta, Via, Option<MapFit>)>> {
    r.spaces
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
        .collect()
}

/// One method's decoded held-out images: per target, `ids.len()` rows, row-major.
struct Decoded {
    ids: Vec<usize>,
    per_target: Vec<(String, Vec<f32>)>,
}

impl Decoded {
    /// Per seed: two-way identification on its test images (per target and mean) and the mean
    /// on its validation images.
    fn scores(&self, full: &PreparedSubject, splits: &[SeedSplit]) -> Result<Vec<SeedScore>> {
        let mean_on = |ids: &[usize]| -> Result<(Vec<(String, f64)>, f64)> {
            let mut scores = Vec::new();
            for (target, rows) in &self.per_target {
                let picked = self.rows_of(rows, ids)?;
                scores.push((target.clone(), two_way(full, target, ids, &picked)?));
            }
            let mean = scores.iter().map(|s| s.1).sum::<f64>() / scores.len().max(1) as f64;
            Ok((scores, mean))
        };
        splits
            .iter()
            .map(|split| {
                let (two_way, two_way_mean) = mean_on(&split.test_ids)?;
                let (_, validation_mean) = mean_on(&split.validation_ids)?;
                Ok(SeedScore {
                    seed: split.seed,
                    two_way,
                    two_way_mean,
                    validation_mean,
                    chosen: None,
                })
            })
            .collect()
    }

    /// The rows of `ids` (each must be decoded).
    fn rows_of(&self, rows: &[f32], ids: &[usize]) -> Result<Vec<f32>> {
        let d = rows.len() / self.ids.len().max(1);
        ids.iter()
            .map(|id| {
                self.ids
                    .iter()
                    .position(|x| x == id)
                    .map(|at| &rows[at * d..(at + 1) * d])
                    .ok_or_else(|| {
                        RouteError::Usage(format!(
                            "image {id} is held out but was not decoded (decoded: {} images)",
                            self.ids.len()
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()
            .map(|rows| rows.concat())
    }
}

/// For each seed, the space with the best validation mean, scored on that seed's test images.
fn best_on_validation(spaces: &[(String, Vec<SeedScore>)]) -> Vec<SeedScore> {
    let n_seeds = spaces.first().map_or(0, |s| s.1.len());
    (0..n_seeds)
        .filter_map(|i| {
            spaces
                .iter()
                .max_by(|a, b| a.1[i].validation_mean.total_cmp(&b.1[i].validation_mean))
                .map(|(name, scores)| SeedScore {
                    chosen: Some(name.clone()),
                    ..scores[i].clone()
                })
        })
        .collect()
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
///
/// # Errors
/// [`RouteError::Usage`] for a new subject that is one of the group's (naming `group.json`),
/// no trial counts, no seeds, or fewer than 4 held-out images; the errors of preparing, fitting
/// and adapting otherwise.
pub fn curve(r: &CurveRequest, progress: &mut dyn FnMut(String)) -> Result<Curve> {
    let group = GroupMeta::read(&r.group)?;
    refuse_member(r, &group)?;
    if r.trials.is_empty() {
        return Err(RouteError::Usage(
            "--trials: expected at least one trial count".into(),
        ));
    }
    if r.seeds == 0 {
        return Err(RouteError::Usage(
            "--seeds: expected at least 1 seed".into(),
        ));
    }
    let spaces = read_spaces(r)?;
    let out = OutputDir::create(&r.out)?;
    let work = out.path().join("work");
    std::fs::create_dir_all(&work).map_err(|e| brainrecon_core::DataError::io(&work, e))?;
    progress("preparing the new subject from all its sessions".into());
    let full = prepare_sessions(r, &group, None, &work.join("all"), true)?;
    let roi = full.roi(&group.roi)?;
    let held_out: Vec<usize> = full
        .row_ids(Split::Test)?
        .into_iter()
        .filter(|id| group.align_ids.binary_search(id).is_err())
        .collect();
    let splits = seed_splits(&held_out, r.seeds)?;
    let sessions_of_trials = train_sessions(&full)?;
    if sessions_of_trials.windows(2).any(|w| w[1] < w[0]) || sessions_of_trials.is_empty() {
        return Err(RouteError::mismatch(
            &full.path("trials.tsv"),
            "train rows",
            "train trials in acquisition order (sessions ascending), at least one",
            format!("{} rows", sessions_of_trials.len()),
        ));
    }
    let held_rows =
        split_rows(&full, &roi, Split::Test)?.select(|_, id| held_out.binary_search(&id).is_ok());
    let mut points = Vec::new();
    for (n, all) in trial_points(&r.trials, sessions_of_trials.len()) {
        // The sessions the first n trials span: their align images are the subject's there.
        let last = sessions_of_trials[n - 1];
        let spanned: Vec<usize> = full
            .meta
            .sessions
            .iter()
            .copied()
            .filter(|&s| s <= last)
            .collect();
        progress(format!("{} (sessions {:?})", trials_label(n, all), spanned));
        let partial = if spanned == full.meta.sessions {
            PreparedSubject::open(&full.root)?
        } else {
            prepare_sessions(
                r,
                &group,
                Some(spanned.clone()),
                &work.join(format!("sessions-{last}")),
                false,
            )?
        };
        let train = AtlasRows::read(&partial, &roi.atlas, Split::Train)?.select(|row, _| row < n);
        let tested = AtlasRows::read(&partial, &roi.atlas, Split::Test)?;
        let align = tested.select(|_, id| group.align_ids.binary_search(&id).is_ok());
        let here = work.join(format!("trials-{n}"));
        let at = (n, all, spanned.len());

        // The within-subject baseline, on the rows the group methods see: trials and align rows.
        let baseline = write_subject(
            &here.join("within-subject"),
            &partial,
            &roi.atlas,
            (&train.stack(&align), &tested),
            &full,
        )?;
        let mut decoded = Decoded {
            ids: held_rows.ids.clone(),
            per_target: Vec::new(),
        };
        let mut n_rows = 0;
        for target in &r.targets {
            let dir = here.join("within-subject-decoders").join(target);
            let summary = fit_request(
                &FitRequest {
                    roi: Some(group.roi.clone()),
                    ..FitRequest::with_defaults(baseline.root.clone(), target.clone(), dir.clone())
                },
                &mut |_| {},
            )?;
            n_rows = summary.n_train_rows;
            let decoder = Decoder::load(&dir)?;
            let x: Vec<f32> = (0..held_rows.x.nrows())
                .flat_map(|i| (0..held_rows.x.ncols()).map(move |j| (i, j)))
                .map(|(i, j)| held_rows.x[(i, j)] as f32)
                .collect();
            let rows = decoder
                .model
                .predict_row_major(&x, (held_rows.x.nrows(), held_rows.x.ncols()))?;
            decoded.per_target.push((target.clone(), rows));
        }
        points.push(CurvePoint::new(
            WITHIN_SUBJECT,
            at,
            (align.ids.len(), n_rows),
            decoded.scores(&full, &splits)?,
        ));

        // Each space: the subject's first n trials (and align rows) adapted into it.
        let subject = write_subject(
            &here.join("subject"),
            &partial,
            &roi.atlas,
            (&train, &tested),
            &full,
        )?;
        let mut by_space = Vec::new();
        for (i, (label, space, via, map)) in spaces.iter().enumerate() {
            let adapted = here.join(format!("{}-{i}", space.name));
            brainrecon_core::fs::remove_dir_atomic(&adapted)?;
            let report = adapt(&AdaptRequest {
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
            let mut decoded = Decoded {
                ids: Vec::new(),
                per_target: Vec::new(),
            };
            for target in &r.targets {
                let decoder = Decoder::load(&decoders_dir(&r.group, &space.name).join(target))?;
                let (ids, rows) = decoder.predict_test(&adapted)?;
                decoded.ids = ids;
                decoded.per_target.push((target.clone(), rows));
            }
            let scores = decoded.scores(&full, &splits)?;
            points.push(CurvePoint::new(
                label,
                at,
                (align.ids.len(), report.n_rows),
                scores.clone(),
            ));
            by_space.push((label.clone(), scores, report.n_rows));
        }
        if !by_space.is_empty() {
            let n_rows = by_space.iter().map(|s| s.2).max().unwrap_or(0);
            let scored: Vec<(String, Vec<SeedScore>)> =
                by_space.into_iter().map(|(l, s, _)| (l, s)).collect();
            points.push(CurvePoint::new(
                BEST_GROUP_METHOD,
                at,
                (align.ids.len(), n_rows),
                best_on_validation(&scored),
            ));
        }
    }
    let curve = Curve {
        group: r.group.clone(),
        subject: full.meta.subject.clone(),
        targets: r.targets.clone(),
        seeds: splits,
        points,
        ceiling: f64::NAN,
        ceiling_sd: f64::NAN,
    }
    .with_ratios();
    write_json_atomic(&out.path().join("curve.json"), &curve)?;
    write_bytes_atomic(&out.path().join("curve.md"), curve.markdown().as_bytes())?;
    write_bytes_atomic(&out.path().join("curve.svg"), curve_svg(&curve).as_bytes())?;
    out.commit()?;
    Ok(curve)
}
