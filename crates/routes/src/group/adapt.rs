//! `group adapt`: a new subject's own map into a group's space, from its few sessions.

use super::data::{
    apply_map, column_means, feature_rows, read_mat_shaped, read_vec_sized, scale_targets,
    split_rows, times_basis, train_sessions, write_space_subject, Rows, SpaceSubject,
};
use super::fit::{alpha_columns, map_alphas, stack_rows};
use super::{space_dir, GroupMeta, SpaceMeta, SpaceMethod};
use crate::error::{Result, RouteError};
use brainrecon_align::encoding_map::{fit_encoding_map, DEFAULT_LAMBDAS, DEFAULT_MUS};
use brainrecon_align::procrustes::fit_procrustes;
use brainrecon_align::shared_space::{fit_subject_map, gcv_alpha};
use brainrecon_align::srm::transform_subject;
use brainrecon_core::fs::{write_json_atomic, OutputDir};
use brainrecon_datasets::prepared::{PreparedSubject, Roi, Split};
use faer::Mat;
use serde::Serialize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

/// What the new subject's map is fitted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// The space's response predicted from the features of the subject's own images (no shared
    /// images needed); the default.
    #[default]
    Features,
    /// The group's response to the align images the subject also saw.
    SharedImages,
    /// Both: its own trials onto the predicted response, the align images onto the group's.
    Both,
}

impl Via {
    /// Every choice, in the order `--via` names them.
    pub const ALL: [Via; 3] = [Via::Features, Via::SharedImages, Via::Both];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Via::Features => "features",
            Via::SharedImages => "shared-images",
            Via::Both => "both",
        }
    }
}

/// How the new subject's map is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MapFit {
    /// Ridge, one alpha by generalised cross-validation.
    Ridge,
    /// Scaled orthogonal Procrustes (fmralign).
    Procrustes,
    /// An orthonormal map as BrainIAK's `transform_subject`.
    Orthogonal,
    /// Per-voxel encoding models from the space, inverted by generalised least squares
    /// (Brain-IT's per-voxel embeddings, linear); penalties by 5-fold cross-validation.
    Encoding,
}

impl MapFit {
    /// Every choice, in the order `--map` names them.
    pub const ALL: [MapFit; 4] = [
        MapFit::Encoding,
        MapFit::Ridge,
        MapFit::Procrustes,
        MapFit::Orthogonal,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MapFit::Ridge => "ridge",
            MapFit::Procrustes => "procrustes",
            MapFit::Orthogonal => "orthogonal",
            MapFit::Encoding => "encoding",
        }
    }

    /// The map fitted when none is asked: encoding unless only shared images are used; on
    /// them, orthogonal for an SRM, ridge for a shared space.
    pub fn default_for(via: Via, method: SpaceMethod) -> Self {
        match (via, method) {
            (Via::Features | Via::Both, _) => MapFit::Encoding,
            (Via::SharedImages, SpaceMethod::Shared) => MapFit::Ridge,
            (Via::SharedImages, _) => MapFit::Orthogonal,
        }
    }
}

impl FromStr for Via {
    type Err = String;

    /// `features`, `shared-images` or `both`.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.name() == text)
            .ok_or_else(|| format!("expected features, shared-images or both, found '{text}'"))
    }
}

impl FromStr for MapFit {
    type Err = String;

    /// `encoding`, `ridge`, `procrustes` or `orthogonal`.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == text)
            .ok_or_else(|| {
                format!("expected encoding, ridge, procrustes or orthogonal, found '{text}'")
            })
    }
}

/// What `group adapt` is asked.
#[derive(Debug, Clone)]
pub struct AdaptRequest {
    /// The group folder.
    pub group: PathBuf,
    /// The space's name (a folder under `GROUP/spaces/`).
    pub space: String,
    /// The new subject as prepared from its few sessions.
    pub subject: PathBuf,
    /// Sessions of its train trials to use (default: all it holds).
    pub sessions: Option<Vec<usize>>,
    /// What the map is fitted against (default: features).
    pub via: Via,
    /// How the map is fitted (default: [`MapFit::default_for`] the space).
    pub map: Option<MapFit>,
    /// The subject whose test images are scored (default: the new subject itself); the same
    /// person prepared from all its sessions, so the test set is that of the full data.
    pub eval_subject: Option<PathBuf>,
    /// The adapted subject to write: a prepared subject whose one atlas is
    /// [`crate::group::SHARED_ATLAS`].
    pub out: PathBuf,
}

/// What `group adapt` did.
#[derive(Debug, Clone, Serialize)]
pub struct AdaptReport {
    /// The adapted subject written.
    pub out: PathBuf,
    /// The space adapted into.
    pub space: String,
    /// What the map was fitted against.
    pub via: Via,
    /// How it was fitted.
    pub map: MapFit,
    /// The new subject's sessions used (1-based).
    pub sessions: Vec<usize>,
    /// Rows the map was fitted on (train trials, align images, or both).
    pub n_rows: usize,
    /// Train trials written in the space.
    pub n_train: usize,
    /// Test images written in the space.
    pub n_test: usize,
    /// The penalties chosen: ridge's `alpha`, or the encoding map's `lambda` and `mu` (relative
    /// units, see `brainrecon_align::encoding_map`).
    pub penalties: Vec<(String, f64)>,
    /// Wall time, in seconds.
    pub seconds: f64,
}

impl AdaptReport {
    /// The lines the command prints.
    pub fn text(&self) -> String {
        format!(
            "adapted into space {} ({:?}, {:?} map) from {} rows of sessions {:?} in {:.1} s\n\
             wrote {}: {} train trials, {} test images in the space\n",
            self.space,
            self.via,
            self.map,
            self.n_rows,
            self.sessions,
            self.seconds,
            self.out.display(),
            self.n_train,
            self.n_test
        )
    }
}

/// Fits the new subject's map and writes it as a prepared subject in the space.
pub fn adapt(r: &AdaptRequest) -> Result<AdaptReport> {
    let started = Instant::now();
    let group = GroupMeta::read(&r.group)?;
    let space = SpaceMeta::read(&r.group, &r.space)?;
    let map_fit = r
        .map
        .unwrap_or_else(|| MapFit::default_for(r.via, space.method));
    let subjects = Subjects::open(r, &group)?;
    check_feature_model(&subjects.subject, &group)?;
    let rows = NewRows::read(&subjects, r.sessions.as_ref(), &space)?;
    rows.check_for(r.via, &subjects.subject, &space)?;
    let targets = SpaceTargets {
        dir: space_dir(&r.group, &space.name),
        group: &group,
        space: &space,
        subject: &subjects.subject,
    };
    let NewRows {
        sessions,
        train,
        train_sessions,
        align,
    } = rows;
    let (fit_rows, y) = match r.via {
        Via::SharedImages => {
            let y = targets.template(&align)?;
            (align, y)
        }
        Via::Features => {
            let fit_rows = train.stack(&align);
            let y = targets.predicted(&fit_rows)?;
            (fit_rows, y)
        }
        Via::Both => {
            let y = stack_rows(&[targets.predicted(&train)?, targets.template(&align)?]);
            (train.stack(&align), y)
        }
    };
    let map = SubjectMap::fit(map_fit, &fit_rows.x, &y)?;
    let (train, test) = map.apply(&train, &subjects, &space)?;
    let report = AdaptReport {
        out: r.out.clone(),
        space: space.name.clone(),
        via: r.via,
        map: map_fit,
        sessions,
        n_rows: fit_rows.ids.len(),
        n_train: train.ids.len(),
        n_test: test.ids.len(),
        penalties: map.penalties.clone(),
        seconds: started.elapsed().as_secs_f64(),
    };
    write_adapted(
        r,
        &subjects,
        &space,
        train_sessions,
        (&train, &test),
        &map,
        &report,
    )?;
    Ok(report)
}

/// The new subject and the subject its test images are scored on (the same person prepared
/// from all its sessions, or itself), each with the group's ROI.
struct Subjects {
    subject: PreparedSubject,
    roi: Roi,
    eval: PreparedSubject,
    eval_roi: Roi,
}

impl Subjects {
    /// Opens both; refused when their ROIs differ in voxels.
    fn open(r: &AdaptRequest, group: &GroupMeta) -> Result<Self> {
        let subject = PreparedSubject::open(&r.subject)?;
        let eval = PreparedSubject::open(r.eval_subject.as_ref().unwrap_or(&r.subject))?;
        let roi = subject.roi(&group.roi)?;
        let eval_roi = eval.roi(&group.roi)?;
        if eval_roi.n_voxels != roi.n_voxels {
            return Err(RouteError::mismatch(
                &eval.path("subject.json"),
                "voxels",
                format!(
                    "{} voxels of {} as in {} (the same person, prepared from all its sessions)",
                    roi.n_voxels,
                    group.roi,
                    subject.root.display()
                ),
                eval_roi.n_voxels,
            ));
        }
        Ok(Subjects {
            subject,
            roi,
            eval,
            eval_roi,
        })
    }
}

/// The subject's features must come from the group's model (name and fingerprint).
fn check_feature_model(subject: &PreparedSubject, group: &GroupMeta) -> Result<()> {
    for kind in &group.kinds {
        let feature_kind = crate::decode::features::FeatureKind::parse(kind)?;
        let (meta, _) = crate::decode::features::load_features_mapped(
            subject,
            &subject.path("features"),
            feature_kind,
        )?;
        let fingerprint = meta
            .settings
            .get("model_fingerprint")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let expected = group.feature_fingerprints.get(kind).cloned().flatten();
        if meta.model != group.feature_model || fingerprint != expected {
            return Err(RouteError::mismatch(
                &subject.path(&format!("features/{kind}.json")),
                "model",
                format!(
                    "the group's model {} (fingerprint {})",
                    group.feature_model,
                    expected.as_deref().unwrap_or("none")
                ),
                format!(
                    "{} (fingerprint {})",
                    meta.model,
                    fingerprint.as_deref().unwrap_or("none")
                ),
            ));
        }
    }
    Ok(())
}

/// The new subject's rows a map can be fitted on.
struct NewRows {
    /// The sessions used.
    sessions: Vec<usize>,
    /// Its train trials of those sessions.
    train: Rows,
    /// The session of each of `train`'s rows.
    train_sessions: Vec<usize>,
    /// Its responses to the space's align images (among its test images).
    align: Rows,
}

impl NewRows {
    /// Reads the train rows of `sessions` (default: all the subject holds; each must be one of
    /// them) and the align rows.
    fn read(subjects: &Subjects, sessions: Option<&Vec<usize>>, space: &SpaceMeta) -> Result<Self> {
        let subject = &subjects.subject;
        let all_train = split_rows(subject, &subjects.roi, Split::Train)?;
        let sessions_of_rows = train_sessions(subject)?;
        if sessions_of_rows.len() != all_train.ids.len() {
            return Err(RouteError::mismatch(
                &subject.path("trials.tsv"),
                "train rows",
                format!(
                    "{} train rows, as train_stimulus_ids.npy",
                    all_train.ids.len()
                ),
                sessions_of_rows.len(),
            ));
        }
        let sessions = match sessions {
            Some(asked) => {
                if let Some(session) = asked.iter().find(|s| !subject.meta.sessions.contains(s)) {
                    return Err(RouteError::Usage(format!(
                        "--sessions: {} holds sessions {:?}, not {session}",
                        subject.root.display(),
                        subject.meta.sessions
                    )));
                }
                asked.clone()
            }
            None => subject.meta.sessions.clone(),
        };
        let train = all_train.select(|row, _| sessions.contains(&sessions_of_rows[row]));
        let train_sessions = sessions_of_rows
            .iter()
            .copied()
            .filter(|session| sessions.contains(session))
            .collect();
        let tested = split_rows(subject, &subjects.roi, Split::Test)?;
        let align = tested.select(|_, id| space.align_ids.binary_search(&id).is_ok());
        Ok(NewRows {
            sessions,
            train,
            train_sessions,
            align,
        })
    }

    /// Refused when `via` needs rows the subject lacks: align images, or train trials.
    fn check_for(&self, via: Via, subject: &PreparedSubject, space: &SpaceMeta) -> Result<()> {
        if via != Via::Features && self.align.ids.is_empty() {
            return Err(RouteError::Usage(format!(
                "--via {}: {} holds responses to none of the group's {} align images (its test \
                 images overlap none of them); show some of them, or use --via features, which \
                 needs no shared images",
                via.name(),
                subject.root.display(),
                space.align_ids.len()
            )));
        }
        if via != Via::SharedImages && self.train.ids.is_empty() {
            return Err(RouteError::Usage(format!(
                "--sessions {:?}: no train trials in {}",
                self.sessions,
                subject.root.display()
            )));
        }
        Ok(())
    }
}

/// Where a new subject's rows go in the space: the targets its map is fitted to.
struct SpaceTargets<'a> {
    /// GROUP/spaces/NAME.
    dir: PathBuf,
    group: &'a GroupMeta,
    space: &'a SpaceMeta,
    subject: &'a PreparedSubject,
}

impl SpaceTargets<'_> {
    /// The group's response to each of `rows`' images, all align images (template.npy).
    fn template(&self, rows: &Rows) -> Result<Mat<f64>> {
        let space = self.space;
        let template = read_mat_shaped(
            &self.dir.join("template.npy"),
            Some(space.align_ids.len()),
            space.k,
            "the group's response to each align image of space.json",
        )?;
        Ok(Mat::from_fn(rows.ids.len(), template.ncols(), |i, j| {
            let row = space
                .align_ids
                .binary_search(&rows.ids[i])
                .expect("align id");
            template[(row, j)]
        }))
    }

    /// The space's response predicted from the features of `rows`' images: the scaled
    /// targets times the basis (a shared space), or the group's encoder's prediction (SRM).
    fn predicted(&self, rows: &Rows) -> Result<Mat<f64>> {
        let (dir, space) = (&self.dir, self.space);
        let mean = read_vec_sized(
            &dir.join("target_mean.npy"),
            space.target_width(),
            "one mean per target of space.json's blocks",
        )?;
        let raw = feature_rows(self.subject, &self.group.kinds, &rows.ids)?;
        if raw.ncols() != space.target_width() {
            return Err(RouteError::mismatch(
                &dir.join("space.json"),
                "blocks",
                format!(
                    "widths adding up to {} (the subject's {} features)",
                    raw.ncols(),
                    self.group.kinds.join(" + ")
                ),
                space.target_width(),
            ));
        }
        let y = scale_targets(&raw, &mean, &space.blocks);
        if space.method == SpaceMethod::Shared {
            // P by blocks of rows: at k = 4,096 it alone would be 2.5 GB in float64.
            return times_basis(
                &y,
                &dir.join("basis.npy"),
                space.k,
                "the space's basis: targets × k of space.json",
            );
        }
        let encoder = brainrecon_ridge::RidgeModel::load(dir.join("encoder"))?;
        if encoder.n_features() != y.ncols() || encoder.n_targets() != space.k {
            return Err(RouteError::mismatch(
                &dir.join("encoder").join(brainrecon_ridge::MODEL_FILE),
                "shape",
                format!(
                    "{} features → {} coordinates (space.json)",
                    y.ncols(),
                    space.k
                ),
                format!("{} → {}", encoder.n_features(), encoder.n_targets()),
            ));
        }
        let y32 = Mat::<f32>::from_fn(y.nrows(), y.ncols(), |i, j| y[(i, j)] as f32);
        let p = encoder.predict(y32.as_ref())?;
        Ok(Mat::from_fn(p.nrows(), p.ncols(), |i, j| p[(i, j)] as f64))
    }
}

/// A new subject's map into the space: coordinates = (x − mean) · map.
struct SubjectMap {
    /// voxels × k.
    map: Mat<f64>,
    /// One per voxel.
    mean: Vec<f64>,
    /// The penalties chosen, by name.
    penalties: Vec<(String, f64)>,
}

impl SubjectMap {
    /// Fits x (rows × voxels) → y (rows × k) as `how` says.
    fn fit(how: MapFit, x: &Mat<f64>, y: &Mat<f64>) -> Result<Self> {
        Ok(match how {
            MapFit::Ridge => {
                let mean = column_means(x);
                let xc = centred(x, &mean);
                let alpha = gcv_alpha(xc.as_ref(), alpha_columns(y).as_ref(), &map_alphas())?;
                let identity = Mat::<f64>::identity(y.ncols(), y.ncols());
                let map = fit_subject_map(xc.as_ref(), y.as_ref(), identity.as_ref(), alpha)?;
                SubjectMap {
                    map,
                    mean,
                    penalties: vec![("alpha".to_string(), alpha)],
                }
            }
            MapFit::Procrustes => {
                let mean = column_means(x);
                let xc = centred(x, &mean);
                let fitted = fit_procrustes(xc.as_ref(), y.as_ref(), true)?;
                let (rotation, scale) = (&fitted.rotation, fitted.scale);
                SubjectMap {
                    map: Mat::from_fn(rotation.nrows(), rotation.ncols(), |i, j| {
                        rotation[(i, j)] * scale
                    }),
                    mean,
                    penalties: Vec::new(),
                }
            }
            MapFit::Encoding => {
                let fitted =
                    fit_encoding_map(x.as_ref(), y.as_ref(), &DEFAULT_LAMBDAS, &DEFAULT_MUS, 5)?;
                SubjectMap {
                    map: fitted.map,
                    mean: column_means(x),
                    penalties: vec![
                        ("lambda".to_string(), fitted.lambda),
                        ("mu".to_string(), fitted.mu),
                    ],
                }
            }
            MapFit::Orthogonal => SubjectMap {
                map: transform_subject(x.transpose(), y.transpose())?,
                mean: vec![0.0; x.ncols()],
                penalties: Vec::new(),
            },
        })
    }

    /// The adapted subject's rows in the space: `train` and the eval subject's test images,
    /// the align images left out.
    fn apply(&self, train: &Rows, subjects: &Subjects, space: &SpaceMeta) -> Result<(Rows, Rows)> {
        let eval_tested = split_rows(&subjects.eval, &subjects.eval_roi, Split::Test)?;
        let test = eval_tested.select(|_, id| space.align_ids.binary_search(&id).is_err());
        let mapped = |rows: &Rows| Rows {
            ids: rows.ids.clone(),
            x: apply_map(&rows.x, &self.mean, &self.map),
        };
        Ok((mapped(train), mapped(&test)))
    }
}

/// Writes OUT: the adapted subject (its train trials of the chosen sessions and the eval
/// subject's test images, both in the space), its map (map/map.npy, map/mean.npy) and
/// adapt.json; nothing is left when a write fails.
fn write_adapted(
    r: &AdaptRequest,
    subjects: &Subjects,
    space: &SpaceMeta,
    train_sessions: Vec<usize>,
    (train, test): (&Rows, &Rows),
    map: &SubjectMap,
    report: &AdaptReport,
) -> Result<()> {
    let subject = &subjects.subject;
    let mut meta = subject.meta.clone();
    meta.subject = format!("{}@{}", subject.meta.subject, space.name);
    meta.sessions = report.sessions.clone();
    let out = OutputDir::create_empty(
        &r.out,
        ["a new or empty directory", "a non-empty directory"],
    )?;
    write_space_subject(
        out.path(),
        &SpaceSubject {
            meta,
            train,
            test,
            train_sessions,
        },
        Some(&subjects.eval),
    )?;
    let map_dir = out.path().join("map");
    std::fs::create_dir_all(&map_dir).map_err(|e| brainrecon_core::DataError::io(&map_dir, e))?;
    super::data::write_mat(&map_dir.join("map.npy"), &map.map)?;
    super::data::write_vec(&map_dir.join("mean.npy"), &map.mean)?;
    write_json_atomic(
        &out.path().join("adapt.json"),
        &serde_json::json!({
            "group": std::path::absolute(&r.group).unwrap_or(r.group.clone()),
            "space": space.name,
            "method": space.method,
            "via": report.via,
            "map": report.map,
            "sessions": report.sessions,
            "n_rows": report.n_rows,
            "penalties": report.penalties,
            "subject": subject.root,
            "eval_subject": subjects.eval.root,
            "seconds": report.seconds,
        }),
    )?;
    out.commit()?;
    Ok(())
}

fn centred(x: &Mat<f64>, mean: &[f64]) -> Mat<f64> {
    Mat::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] - mean[j])
}
