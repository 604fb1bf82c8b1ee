//! `group fit`: a space for the group, its pooled subject and the decoders fitted on it.

use super::data::{
    apply_map, column_means, feature_rows, feature_widths, scale_targets, split_rows,
    target_scaling, write_mat, write_pooled_features, write_space_subject, write_vec, Rows,
    SpaceSubject,
};
use super::{decoders_dir, space_dir, GroupMeta, SpaceMeta, SpaceMethod, SPACE_FORMAT};
use crate::decode::decoders::{fit_request, log_grid, DecoderSummary, FitRequest};
use crate::error::{Result, RouteError};
use brainrecon_align::shared_space::{fit_shared_space, gcv_alpha, SharedSpaceOptions};
use brainrecon_align::srm::{fit_det_srm, fit_srm, SrmOptions};
use brainrecon_core::fs::{write_json_atomic, OutputDir};
use brainrecon_datasets::prepared::{PreparedSubject, Split};
use faer::Mat;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `group fit` is asked.
#[derive(Debug, Clone)]
pub struct GroupFitRequest {
    /// The group folder.
    pub group: PathBuf,
    /// shared, srm or detsrm.
    pub method: String,
    /// The space's name (default: the method's).
    pub name: Option<String>,
    /// Dimensions of the space.
    pub k: usize,
    /// Iterations of SRM.
    pub n_iter: usize,
    /// Seed of the fit (SRM's initial maps, the shared space's randomized-SVD probes).
    pub seed: u64,
    /// Decoders to fit on the pooled subject (z, c).
    pub targets: Vec<String>,
    /// Cross-validation of those decoders (as `fit --cv`).
    pub cv: String,
}

/// What `group fit` did.
#[derive(Debug, Clone, Serialize)]
pub struct GroupFitReport {
    /// The space folder written, `GROUP/spaces/NAME`.
    pub space: PathBuf,
    /// How it was fitted (`shared`, `srm`, `detsrm`).
    pub method: String,
    /// Dimensions of the space.
    pub k: usize,
    /// Train rows of the pooled subject: every group subject's trials in the space.
    pub n_pooled_rows: usize,
    /// Wall time of the space's fit, in seconds.
    pub seconds_space: f64,
    /// The decoders fitted on the pooled subject.
    pub decoders: Vec<DecoderSummary>,
}

impl GroupFitReport {
    /// The lines the command prints.
    pub fn text(&self) -> String {
        let mut text = format!(
            "fitted space {} ({}, k = {}) in {:.1} s; pooled subject of {} rows\n",
            self.space.display(),
            self.method,
            self.k,
            self.seconds_space,
            self.n_pooled_rows
        );
        for d in &self.decoders {
            text.push_str(&format!(
                "  decoder {} from the space: test r mean {:.3} on {} images ({:.1} s) → {}\n",
                d.target,
                d.test_r_mean,
                d.n_test,
                d.seconds,
                d.model.display()
            ));
        }
        text
    }
}

/// The alpha grid of the maps into a space.
pub fn map_alphas() -> Vec<f64> {
    log_grid(-1.0, 7.0, 17)
}

/// Columns of `y` to choose an alpha on: all, or an even subsample of 512.
pub fn alpha_columns(y: &Mat<f64>) -> Mat<f64> {
    let d = y.ncols();
    let step = d.div_ceil(512).max(1);
    let cols: Vec<usize> = (0..d).step_by(step).collect();
    Mat::from_fn(y.nrows(), cols.len(), |i, j| y[(i, cols[j])])
}

/// One group subject's rows: train trials, align images, test-half images.
pub(crate) struct SubjectRows {
    pub subject: PreparedSubject,
    pub train: Rows,
    pub align: Rows,
    pub test: Rows,
}

pub(crate) fn load_subject_rows(group: &GroupMeta, index: usize) -> Result<SubjectRows> {
    let subject = PreparedSubject::open(&group.subjects[index].path)?;
    let roi = subject.roi(&group.roi)?;
    if roi.n_voxels != group.subjects[index].n_voxels {
        return Err(RouteError::mismatch(
            &subject.path("subject.json"),
            "voxels",
            format!(
                "{} voxels of {} as when the group was prepared",
                group.subjects[index].n_voxels, group.roi
            ),
            roi.n_voxels,
        ));
    }
    let train = split_rows(&subject, &roi, Split::Train)?;
    let tested = split_rows(&subject, &roi, Split::Test)?;
    let align = tested.select(|_, id| group.align_ids.binary_search(&id).is_ok());
    let test = tested.select(|_, id| group.test_ids.binary_search(&id).is_ok());
    Ok(SubjectRows {
        subject,
        train,
        align,
        test,
    })
}

/// Fits a space, writes it with its pooled subject, then fits the decoders on that subject.
pub fn fit_group(r: &GroupFitRequest, progress: &mut dyn FnMut(String)) -> Result<GroupFitReport> {
    let group = GroupMeta::read(&r.group)?;
    let method = SpaceMethod::parse(&r.method)?;
    let name = r.name.clone().unwrap_or_else(|| method.name().to_string());
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(RouteError::Usage(format!(
            "--name: expected a folder name for the space, found '{name}'"
        )));
    }
    if r.k == 0 {
        return Err(RouteError::Usage(
            "--k: expected at least 1 dimension".into(),
        ));
    }
    if method.needs_shared_images() && group.align_ids.len() < 2 {
        return Err(RouteError::Usage(format!(
            "--method {}: aligns subjects on images every one of them saw, but {} holds {} such \
             images to align on; use --method shared, which needs none",
            method.name(),
            r.group.join("group.json").display(),
            group.align_ids.len()
        )));
    }
    if method.needs_shared_images() && r.k > group.align_ids.len() {
        return Err(RouteError::Usage(format!(
            "--k {}: SRM's space has at most as many dimensions as align images ({})",
            r.k,
            group.align_ids.len()
        )));
    }
    for target in &r.targets {
        crate::decode::decoders::Target::parse(target)?;
    }
    let started = Instant::now();
    progress(format!("reading {} subjects", group.subjects.len()));
    let rows: Vec<SubjectRows> = (0..group.subjects.len())
        .map(|i| load_subject_rows(&group, i))
        .collect::<Result<_>>()?;
    let widths = feature_widths(&rows[0].subject, &group.kinds)?;

    // Targets of every subject's fitting rows (train trials, then align images).
    let fitting: Vec<Rows> = rows.iter().map(|s| s.train.stack(&s.align)).collect();
    let raw_y: Vec<Mat<f64>> = rows
        .iter()
        .zip(&fitting)
        .map(|(s, f)| feature_rows(&s.subject, &group.kinds, &f.ids))
        .collect::<Result<_>>()?;
    let stacked = stack_rows(&raw_y);
    let (target_mean, blocks) = target_scaling(&stacked, &group.kinds, &widths);
    drop(stacked);
    let ys: Vec<Mat<f64>> = raw_y
        .iter()
        .map(|y| scale_targets(y, &target_mean, &blocks))
        .collect();

    progress(format!("fitting the {} space (k = {})", method.name(), r.k));
    let (maps, means, alphas, basis, template) = match method {
        SpaceMethod::Shared => {
            let means: Vec<Vec<f64>> = fitting.iter().map(|f| column_means(&f.x)).collect();
            let xs: Vec<Mat<f64>> = fitting
                .iter()
                .zip(&means)
                .map(|(f, m)| Mat::from_fn(f.x.nrows(), f.x.ncols(), |i, j| f.x[(i, j)] - m[j]))
                .collect();
            let grid = map_alphas();
            let alphas: Vec<f64> = xs
                .iter()
                .zip(&ys)
                .map(|(x, y)| Ok(gcv_alpha(x.as_ref(), alpha_columns(y).as_ref(), &grid)?))
                .collect::<Result<_>>()?;
            let opts = SharedSpaceOptions {
                k: r.k,
                seed: r.seed,
                ..SharedSpaceOptions::default()
            };
            let x_refs: Vec<_> = xs.iter().map(|x| x.as_ref()).collect();
            let y_refs: Vec<_> = ys.iter().map(|y| y.as_ref()).collect();
            progress(format!(
                "alphas {alphas:?} after {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            let space = fit_shared_space(&x_refs, &y_refs, &alphas, &opts)?;
            progress(format!(
                "space after {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            let template = mean_mapped(
                &rows.iter().map(|s| &s.align).collect::<Vec<_>>(),
                &means,
                &space.maps,
            );
            (
                space.maps,
                means,
                alphas.into_iter().map(Some).collect::<Vec<_>>(),
                Some(space.basis),
                template,
            )
        }
        SpaceMethod::Srm | SpaceMethod::Detsrm => {
            // BrainIAK's orientation: voxels × samples, the align images in one order.
            let data: Vec<Mat<f64>> = rows
                .iter()
                .map(|s| s.align.x.transpose().to_owned())
                .collect();
            let refs: Vec<_> = data.iter().map(|d| d.as_ref()).collect();
            let opts = SrmOptions {
                features: r.k,
                n_iter: r.n_iter,
                seed: r.seed,
            };
            let (w, s) = if method == SpaceMethod::Srm {
                let fitted = fit_srm(&refs, &opts)?;
                (fitted.w, fitted.s)
            } else {
                let fitted = fit_det_srm(&refs, &opts)?;
                (fitted.w, fitted.s)
            };
            let means: Vec<Vec<f64>> = rows.iter().map(|s| vec![0.0; s.train.x.ncols()]).collect();
            (
                w,
                means,
                vec![None; rows.len()],
                None,
                s.transpose().to_owned(),
            )
        }
    };
    let seconds_space = started.elapsed().as_secs_f64();

    // The pooled subject: every subject's fitting rows in the space; test images averaged
    // over subjects.
    let pooled_train = Rows {
        ids: fitting.iter().flat_map(|f| f.ids.iter().copied()).collect(),
        x: stack_rows(
            &fitting
                .iter()
                .zip(&means)
                .zip(&maps)
                .map(|((f, m), map)| apply_map(&f.x, m, map))
                .collect::<Vec<_>>(),
        ),
    };
    let pooled_sessions: Vec<usize> = fitting
        .iter()
        .enumerate()
        .flat_map(|(s, f)| std::iter::repeat_n(s + 1, f.ids.len()))
        .collect();
    let pooled_test = Rows {
        ids: group.test_ids.clone(),
        x: mean_mapped(
            &rows.iter().map(|s| &s.test).collect::<Vec<_>>(),
            &means,
            &maps,
        ),
    };
    let space_path = space_dir(&r.group, &name);
    let meta = SpaceMeta {
        format: SPACE_FORMAT.into(),
        format_version: 1,
        name: name.clone(),
        method,
        k: maps[0].ncols(),
        roi: group.roi.clone(),
        blocks: blocks.clone(),
        alphas,
        align_ids: group.align_ids.clone(),
        seed: r.seed,
        seconds: seconds_space,
    };
    let out = OutputDir::create(&space_path)?;
    let dir = out.path().to_path_buf();
    let mkdir =
        |p: &Path| std::fs::create_dir_all(p).map_err(|e| brainrecon_core::DataError::io(p, e));
    mkdir(&dir.join("maps"))?;
    for (i, (map, mean)) in maps.iter().zip(&means).enumerate() {
        write_mat(&dir.join(format!("maps/{i}.npy")), map)?;
        write_vec(&dir.join(format!("maps/{i}_mean.npy")), mean)?;
    }
    if let Some(basis) = &basis {
        write_mat(&dir.join("basis.npy"), basis)?;
    }
    write_vec(&dir.join("target_mean.npy"), &target_mean)?;
    write_mat(&dir.join("template.npy"), &template)?;
    progress(format!(
        "maps written after {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    write_encoder(
        &dir.join("encoder"),
        &pooled_train,
        &rows,
        &group,
        &target_mean,
        &blocks,
    )?;

    // Features of every image the pooled subject holds, from the subject that saw it.
    let mut source: BTreeMap<usize, usize> = BTreeMap::new();
    for (s, f) in fitting.iter().enumerate() {
        for &id in f.ids.iter().chain(&rows[s].test.ids) {
            source.entry(id).or_insert(s);
        }
    }
    let all_ids: Vec<usize> = source.keys().copied().collect();
    let mut pooled_y = Mat::zeros(all_ids.len(), widths.iter().sum());
    for (s, subject_rows) in rows.iter().enumerate() {
        let (positions, ids): (Vec<usize>, Vec<usize>) = all_ids
            .iter()
            .enumerate()
            .filter(|(_, id)| source[id] == s)
            .map(|(p, &id)| (p, id))
            .unzip();
        let y = feature_rows(&subject_rows.subject, &group.kinds, &ids)?;
        for (row, &p) in positions.iter().enumerate() {
            for j in 0..y.ncols() {
                pooled_y[(p, j)] = y[(row, j)];
            }
        }
    }
    let pooled_dir = dir.join("pooled");
    let mut pooled_meta = rows[0].subject.meta.clone();
    pooled_meta.subject = format!("group-{name}");
    pooled_meta.sessions = (1..=rows.len()).collect();
    write_space_subject(
        &pooled_dir,
        &SpaceSubject {
            meta: pooled_meta,
            train: &pooled_train,
            test: &pooled_test,
            train_sessions: pooled_sessions,
        },
        None,
    )?;
    write_pooled_features(
        &pooled_dir,
        &group.kinds,
        &all_ids,
        &pooled_y,
        &rows[0].subject,
        &format!("group-{name}"),
    )?;
    write_json_atomic(&dir.join("space.json"), &meta)?;
    out.commit()?;

    let mut decoders = Vec::new();
    for target in &r.targets {
        progress(format!("fitting decoder {target} on the pooled subject"));
        let summary = fit_request(
            &FitRequest {
                roi: Some(super::SHARED_ATLAS.into()),
                cv: r.cv.clone(),
                ..FitRequest::with_defaults(
                    space_path.join("pooled"),
                    target.clone(),
                    decoders_dir(&r.group, &name).join(target),
                )
            },
            &mut |w| progress(format!("warning: {w}")),
        )?;
        decoders.push(summary);
    }
    Ok(GroupFitReport {
        space: space_path,
        method: method.name().into(),
        k: meta.k,
        n_pooled_rows: pooled_train.ids.len(),
        seconds_space,
        decoders,
    })
}

/// Rows of several matrices with the same columns, one under another.
pub(crate) fn stack_rows(parts: &[Mat<f64>]) -> Mat<f64> {
    let cols = parts.first().map_or(0, |p| p.ncols());
    let n: usize = parts.iter().map(|p| p.nrows()).sum();
    let mut out = Mat::zeros(n, cols);
    let mut offset = 0;
    for p in parts {
        assert_eq!(p.ncols(), cols, "stacked parts' columns");
        for i in 0..p.nrows() {
            for j in 0..cols {
                out[(offset + i, j)] = p[(i, j)];
            }
        }
        offset += p.nrows();
    }
    out
}

/// The mean over subjects of their rows mapped into the space; every subject holds the same
/// ids in the same order (shared images).
fn mean_mapped(rows: &[&Rows], means: &[Vec<f64>], maps: &[Mat<f64>]) -> Mat<f64> {
    let k = maps[0].ncols();
    let n = rows[0].ids.len();
    let mut sum = Mat::<f64>::zeros(n, k);
    for ((r, m), map) in rows.iter().zip(means).zip(maps) {
        assert_eq!(r.ids, rows[0].ids, "shared images in one order");
        let mapped = apply_map(&r.x, m, map);
        for i in 0..n {
            for j in 0..k {
                sum[(i, j)] += mapped[(i, j)] / rows.len() as f64;
            }
        }
    }
    sum
}

/// A ridge from the scaled stimulus features to the space, fitted on the pooled rows: the
/// group's predicted response to any image, for aligning a subject without shared images.
fn write_encoder(
    dir: &Path,
    pooled: &Rows,
    rows: &[SubjectRows],
    group: &GroupMeta,
    target_mean: &[f64],
    blocks: &[super::TargetBlock],
) -> Result<()> {
    // Features of the pooled rows, gathered from each subject in the pooled order.
    let mut parts = Vec::new();
    for s in rows {
        let ids: Vec<usize> = s.train.ids.iter().chain(&s.align.ids).copied().collect();
        parts.push(scale_targets(
            &feature_rows(&s.subject, &group.kinds, &ids)?,
            target_mean,
            blocks,
        ));
    }
    let f = stack_rows(&parts);
    assert_eq!(f.nrows(), pooled.ids.len(), "encoder rows");
    let to_f32 = |m: &Mat<f64>| Mat::<f32>::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)] as f32);
    let estimator = brainrecon_ridge::RidgeCv {
        alphas: map_alphas(),
        cv: brainrecon_ridge::Cv::Gcv,
        ..brainrecon_ridge::RidgeCv::default()
    };
    let model = estimator.fit(to_f32(&f).as_ref(), to_f32(&pooled.x).as_ref())?;
    model.save(dir)?;
    Ok(())
}
