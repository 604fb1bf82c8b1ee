//! `group adapt`: a new subject's own map into a group's space, from its few sessions.

use super::data::{
    apply_map, column_means, feature_rows, read_mat_shaped, read_vec_sized, scale_targets,
    split_rows, train_sessions, write_space_subject, Rows, SpaceSubject,
};
use super::fit::{alpha_columns, map_alphas, stack_rows};
use super::{space_dir, GroupMeta, SpaceMeta, SpaceMethod};
use crate::error::{Result, RouteError};
use brainrecon_align::encoding_map::{fit_encoding_map, DEFAULT_LAMBDAS, DEFAULT_MUS};
use brainrecon_align::procrustes::fit_procrustes;
use brainrecon_align::shared_space::{fit_subject_map, gcv_alpha};
use brainrecon_align::srm::transform_subject;
use brainrecon_core::fs::{write_json_atomic, OutputDir};
use brainrecon_datasets::prepared::{PreparedSubject, Split};
use faer::Mat;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// What the new subject's map is fitted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// The space's response predicted from the features of the subject's own images (no shared
    /// images needed).
    Features,
    /// The group's response to the align images the subject also saw.
    SharedImages,
    /// Both: its own trials onto the predicted response, the align images onto the group's.
    Both,
}

impl Via {
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

/// What `group adapt` is asked.
#[derive(Debug, Clone)]
pub struct AdaptRequest {
    pub group: PathBuf,
    pub space: String,
    /// The new subject as prepared from its few sessions.
    pub subject: PathBuf,
    /// Sessions of its train trials to use (default: all it holds).
    pub sessions: Option<Vec<usize>>,
    /// features (default), shared-images or both.
    pub via: Option<String>,
    /// encoding, ridge, procrustes or orthogonal (default: encoding via features; on shared
    /// images orthogonal for SRM, ridge for a shared space).
    pub map: Option<String>,
    /// The subject whose test images are scored (default: the new subject itself); the same
    /// person prepared from all its sessions, so the test set is that of the full data.
    pub eval_subject: Option<PathBuf>,
    pub out: PathBuf,
}

/// What `group adapt` did.
#[derive(Debug, Clone, Serialize)]
pub struct AdaptReport {
    pub out: PathBuf,
    pub space: String,
    pub via: Via,
    pub map: MapFit,
    pub sessions: Vec<usize>,
    pub n_rows: usize,
    pub n_train: usize,
    pub n_test: usize,
    /// The penalties chosen: ridge's `alpha`, or the encoding map's `lambda` and `mu` (relative
    /// units, see `brainrecon_align::encoding_map`).
    pub penalties: Vec<(String, f64)>,
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

fn parse_via(text: &str) -> Result<Via> {
    match text {
        "features" => Ok(Via::Features),
        "shared-images" => Ok(Via::SharedImages),
        "both" => Ok(Via::Both),
        other => Err(RouteError::Usage(format!(
            "--via: expected features, shared-images or both, found '{other}'"
        ))),
    }
}

fn parse_map(text: &str) -> Result<MapFit> {
    match text {
        "ridge" => Ok(MapFit::Ridge),
        "procrustes" => Ok(MapFit::Procrustes),
        "orthogonal" => Ok(MapFit::Orthogonal),
        "encoding" => Ok(MapFit::Encoding),
        other => Err(RouteError::Usage(format!(
            "--map: expected encoding, ridge, procrustes or orthogonal, found '{other}'"
        ))),
    }
}

/// Fits the new subject's map and writes it as a prepared subject in the space.
pub fn adapt(r: &AdaptRequest) -> Result<AdaptReport> {
    let started = Instant::now();
    let group = GroupMeta::read(&r.group)?;
    let space = SpaceMeta::read(&r.group, &r.space)?;
    let via = match &r.via {
        Some(v) => parse_via(v)?,
        None => Via::Features,
    };
    let map_fit = match &r.map {
        Some(m) => parse_map(m)?,
        None if via != Via::SharedImages => MapFit::Encoding,
        None if space.method != SpaceMethod::Shared => MapFit::Orthogonal,
        None => MapFit::Ridge,
    };
    let subject = PreparedSubject::open(&r.subject)?;
    let eval = match &r.eval_subject {
        Some(path) => PreparedSubject::open(path)?,
        None => PreparedSubject::open(&r.subject)?,
    };
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
    // The features must come from the group's model.
    for kind in &group.kinds {
        let feature_kind = crate::decode::features::FeatureKind::parse(kind)?;
        let (meta, _) = crate::decode::features::load_features_mapped(
            &subject,
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

    let all_train = split_rows(&subject, &roi, Split::Train)?;
    let sessions_of_rows = train_sessions(&subject)?;
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
    let sessions: Vec<usize> = match &r.sessions {
        Some(s) => {
            for session in s {
                if !subject.meta.sessions.contains(session) {
                    return Err(RouteError::Usage(format!(
                        "--sessions: {} holds sessions {:?}, not {session}",
                        subject.root.display(),
                        subject.meta.sessions
                    )));
                }
            }
            s.clone()
        }
        None => subject.meta.sessions.clone(),
    };
    let train = all_train.select(|row, _| sessions.contains(&sessions_of_rows[row]));
    let train_sessions_kept: Vec<usize> = (0..all_train.ids.len())
        .filter(|&row| sessions.contains(&sessions_of_rows[row]))
        .map(|row| sessions_of_rows[row])
        .collect();
    let tested = split_rows(&subject, &roi, Split::Test)?;
    let align = tested.select(|_, id| space.align_ids.binary_search(&id).is_ok());
    let dir = space_dir(&r.group, &space.name);

    // The rows the map is fitted on and their targets in the space.
    let template_targets = |rows: &Rows| -> Result<Mat<f64>> {
        let template = read_mat_shaped(
            &dir.join("template.npy"),
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
    };
    let feature_targets = |rows: &Rows| -> Result<Mat<f64>> {
        let mean = read_vec_sized(
            &dir.join("target_mean.npy"),
            space.target_width(),
            "one mean per target of space.json's blocks",
        )?;
        let raw = feature_rows(&subject, &group.kinds, &rows.ids)?;
        if raw.ncols() != space.target_width() {
            return Err(RouteError::mismatch(
                &dir.join("space.json"),
                "blocks",
                format!(
                    "widths adding up to {} (the subject's {} features)",
                    raw.ncols(),
                    group.kinds.join(" + ")
                ),
                space.target_width(),
            ));
        }
        let y = scale_targets(&raw, &mean, &space.blocks);
        Ok(if space.method == SpaceMethod::Shared {
            &y * &read_mat_shaped(
                &dir.join("basis.npy"),
                Some(space.target_width()),
                space.k,
                "the space's basis: targets × k of space.json",
            )?
        } else {
            let encoder = brainrecon_ridge::RidgeModel::load(dir.join("encoder"))?;
            let y32 = Mat::<f32>::from_fn(y.nrows(), y.ncols(), |i, j| y[(i, j)] as f32);
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
            let p = encoder.predict(y32.as_ref())?;
            Mat::from_fn(p.nrows(), p.ncols(), |i, j| p[(i, j)] as f64)
        })
    };
    if via != Via::Features && align.ids.is_empty() {
        return Err(RouteError::Usage(format!(
            "--via {}: {} holds responses to none of the group's {} align images (its test \
             images overlap none of them); show some of them, or use --via features, which \
             needs no shared images",
            via.name(),
            subject.root.display(),
            space.align_ids.len()
        )));
    }
    if via != Via::SharedImages && train.ids.is_empty() {
        return Err(RouteError::Usage(format!(
            "--sessions {sessions:?}: no train trials in {}",
            subject.root.display()
        )));
    }
    let (fit_rows, targets) = match via {
        Via::SharedImages => {
            let t = template_targets(&align)?;
            (align, t)
        }
        Via::Features => {
            let rows = train.stack(&align);
            let t = feature_targets(&rows)?;
            (rows, t)
        }
        Via::Both => {
            let t = stack_rows(&[feature_targets(&train)?, template_targets(&align)?]);
            (train.stack(&align), t)
        }
    };
    let (map, mean, penalties) = match map_fit {
        MapFit::Ridge => {
            let mean = column_means(&fit_rows.x);
            let xc = centred(&fit_rows.x, &mean);
            let alpha = gcv_alpha(xc.as_ref(), alpha_columns(&targets).as_ref(), &map_alphas())?;
            let identity = Mat::<f64>::identity(targets.ncols(), targets.ncols());
            let map = fit_subject_map(xc.as_ref(), targets.as_ref(), identity.as_ref(), alpha)?;
            (map, mean, vec![("alpha".to_string(), alpha)])
        }
        MapFit::Procrustes => {
            let mean = column_means(&fit_rows.x);
            let xc = centred(&fit_rows.x, &mean);
            let fitted = fit_procrustes(xc.as_ref(), targets.as_ref(), true)?;
            let map = Mat::from_fn(fitted.rotation.nrows(), fitted.rotation.ncols(), |i, j| {
                fitted.rotation[(i, j)] * fitted.scale
            });
            (map, mean, Vec::new())
        }
        MapFit::Encoding => {
            let fitted = fit_encoding_map(
                fit_rows.x.as_ref(),
                targets.as_ref(),
                &DEFAULT_LAMBDAS,
                &DEFAULT_MUS,
                5,
            )?;
            (
                fitted.map,
                column_means(&fit_rows.x),
                vec![
                    ("lambda".to_string(), fitted.lambda),
                    ("mu".to_string(), fitted.mu),
                ],
            )
        }
        MapFit::Orthogonal => {
            let w = transform_subject(fit_rows.x.transpose(), targets.transpose())?;
            (w, vec![0.0; fit_rows.x.ncols()], Vec::new())
        }
    };

    // The adapted subject: its train trials of the chosen sessions and the eval subject's
    // test images (the align images left out), both in the space.
    let eval_tested = split_rows(&eval, &eval_roi, Split::Test)?;
    let test = eval_tested.select(|_, id| space.align_ids.binary_search(&id).is_err());
    let mapped_train = Rows {
        ids: train.ids.clone(),
        x: apply_map(&train.x, &mean, &map),
    };
    let mapped_test = Rows {
        ids: test.ids.clone(),
        x: apply_map(&test.x, &mean, &map),
    };
    let mut meta = subject.meta.clone();
    meta.subject = format!("{}@{}", subject.meta.subject, space.name);
    meta.sessions = sessions.clone();
    let report = AdaptReport {
        out: r.out.clone(),
        space: space.name.clone(),
        via,
        map: map_fit,
        sessions,
        n_rows: fit_rows.ids.len(),
        n_train: mapped_train.ids.len(),
        n_test: mapped_test.ids.len(),
        penalties,
        seconds: started.elapsed().as_secs_f64(),
    };
    let out = OutputDir::create_empty(
        &r.out,
        ["a new or empty directory", "a non-empty directory"],
    )?;
    write_space_subject(
        out.path(),
        &SpaceSubject {
            meta,
            train: &mapped_train,
            test: &mapped_test,
            train_sessions: train_sessions_kept,
        },
        Some(&eval),
    )?;
    let map_dir = out.path().join("map");
    std::fs::create_dir_all(&map_dir).map_err(|e| brainrecon_core::DataError::io(&map_dir, e))?;
    super::data::write_mat(&map_dir.join("map.npy"), &map)?;
    super::data::write_vec(&map_dir.join("mean.npy"), &mean)?;
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
            "eval_subject": eval.root,
            "seconds": report.seconds,
        }),
    )?;
    out.commit()?;
    Ok(report)
}

fn centred(x: &Mat<f64>, mean: &[f64]) -> Mat<f64> {
    Mat::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] - mean[j])
}
