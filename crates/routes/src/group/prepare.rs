//! `group prepare`: a group folder from prepared subjects.

use super::{GroupMeta, GroupSubject, GROUP_FORMAT};
use crate::decode::features::{load_features_mapped, FeatureKind};
use crate::error::{Result, RouteError};
use brainrecon_core::fs::{write_json_atomic, OutputDir};
use brainrecon_datasets::prepared::{PreparedSubject, Split};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// What `group prepare` is asked.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct GroupPrepareRequest {
    /// Prepared subjects, each with the same kinds of features from the same model.
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "subject",
            required = true,
            help = "A prepared subject with features (repeat for each subject)"
        )
    )]
    pub subjects: Vec<PathBuf>,
    /// The group folder to write.
    #[cfg_attr(feature = "cli", arg(long))]
    pub out: PathBuf,
    /// The ROI every map starts from.
    #[cfg_attr(feature = "cli", arg(long, default_value = "nsdgeneral"))]
    pub roi: String,
    /// Feature kinds (vae, clip-text).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value = "vae,clip-text",
            value_delimiter = ',',
            help = "Feature kinds the shared models target, comma-separated"
        )
    )]
    pub kinds: Vec<String>,
    /// Share of the shared images used to align (the rest are kept for testing).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 0.5,
            help = "Share of the images every subject saw that is used to align (the rest is for testing)"
        )
    )]
    pub align_share: f64,
    /// Seed of the shuffle that splits the shared images into align and test.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 0, help = "Seed of the align/test split")
    )]
    pub seed: u64,
}

/// What `group prepare` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct GroupPrepareReport {
    /// The group folder written.
    pub out: PathBuf,
    /// The subjects, in the order given.
    pub subjects: Vec<GroupSubject>,
    /// Test images every subject saw.
    pub n_shared: usize,
    /// Of those, images used to align.
    pub n_align: usize,
    /// Of those, images kept for testing.
    pub n_test: usize,
}

impl GroupPrepareReport {
    /// The lines the command prints.
    pub fn text(&self) -> String {
        let mut text = format!(
            "group of {} subjects at {}: {} images seen by all ({} to align, {} to test)\n",
            self.subjects.len(),
            self.out.display(),
            self.n_shared,
            self.n_align,
            self.n_test
        );
        for s in &self.subjects {
            text.push_str(&format!(
                "  {}: {} voxels, {} train trials, {} sessions\n",
                s.name,
                s.n_voxels,
                s.n_train_rows,
                s.sessions.len()
            ));
        }
        text
    }
}

/// The model and fingerprint of a subject's features of one kind.
fn feature_source(subject: &PreparedSubject, kind: &str) -> Result<(String, Option<String>)> {
    let kind = FeatureKind::parse(kind)?;
    let (meta, _) = load_features_mapped(subject, &subject.path("features"), kind)?;
    let fingerprint = meta
        .settings
        .get("model_fingerprint")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    Ok((meta.model, fingerprint))
}

/// Checks the subjects and writes `out/group.json`. Nothing is written when a check fails.
pub fn prepare_group(r: &GroupPrepareRequest) -> Result<GroupPrepareReport> {
    if r.subjects.len() < 2 {
        return Err(RouteError::Usage(format!(
            "--subject: a group needs at least 2 prepared subjects, found {}",
            r.subjects.len()
        )));
    }
    if !(r.align_share > 0.0 && r.align_share < 1.0) {
        return Err(RouteError::Usage(format!(
            "--align-share: expected a share between 0 and 1 (exclusive), found {}",
            r.align_share
        )));
    }
    if r.kinds.is_empty() {
        return Err(RouteError::Usage(
            "--kinds: expected at least one feature kind".into(),
        ));
    }
    let mut subjects = Vec::new();
    let mut seen_names = BTreeSet::new();
    let mut shared: Option<BTreeSet<usize>> = None;
    let mut reference: BTreeMap<String, (String, Option<String>, String)> = BTreeMap::new();
    for path in &r.subjects {
        let subject = PreparedSubject::open(path)?;
        let path =
            std::path::absolute(path).map_err(|e| brainrecon_core::DataError::io(path, e))?;
        let name = subject.meta.subject.clone();
        if !seen_names.insert(name.clone()) {
            return Err(RouteError::Usage(format!(
                "--subject: {name} is given twice ({}); a group holds each subject once",
                path.display()
            )));
        }
        let roi = subject.roi(&r.roi)?;
        for kind in &r.kinds {
            let (model, fingerprint) = feature_source(&subject, kind)?;
            match reference.get(kind) {
                None => {
                    reference.insert(kind.clone(), (model, fingerprint, name.clone()));
                }
                Some((m0, f0, first)) if *m0 != model || *f0 != fingerprint => {
                    return Err(RouteError::mismatch(
                        &subject.path(&format!("features/{kind}.json")),
                        "model",
                        format!(
                            "the model of {first}'s {kind} features: {m0} (fingerprint {})",
                            f0.as_deref().unwrap_or("none")
                        ),
                        format!(
                            "{model} (fingerprint {}): a group's subjects need features from one model",
                            fingerprint.as_deref().unwrap_or("none")
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let ids: BTreeSet<usize> = subject.stimulus_ids()?.into_iter().collect();
        let tested: BTreeSet<usize> = subject.row_ids(Split::Test)?.into_iter().collect();
        // Images every subject saw *and* holds averaged responses to (its test split).
        let seen: BTreeSet<usize> = ids.intersection(&tested).copied().collect();
        shared = Some(match shared {
            None => seen,
            Some(s) => s.intersection(&seen).copied().collect(),
        });
        subjects.push(GroupSubject {
            name,
            path,
            n_voxels: roi.n_voxels,
            n_train_rows: subject.meta.n_train_trials,
            sessions: subject.meta.sessions.clone(),
        });
    }
    let shared: Vec<usize> = shared.unwrap_or_default().into_iter().collect();
    let mut order = shared.clone();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(r.seed));
    let n_align = ((shared.len() as f64) * r.align_share).round() as usize;
    let mut align_ids = order[..n_align].to_vec();
    let mut test_ids = order[n_align..].to_vec();
    align_ids.sort_unstable();
    test_ids.sort_unstable();
    let first = &r.kinds[0];
    let meta = GroupMeta {
        format: GROUP_FORMAT.into(),
        format_version: 1,
        roi: r.roi.clone(),
        kinds: r.kinds.clone(),
        feature_model: reference[first].0.clone(),
        feature_fingerprints: reference
            .iter()
            .map(|(k, (_, f, _))| (k.clone(), f.clone()))
            .collect(),
        subjects: subjects.clone(),
        shared_ids: shared.clone(),
        align_ids: align_ids.clone(),
        test_ids: test_ids.clone(),
        seed: r.seed,
    };
    let out = OutputDir::create_empty(
        &r.out,
        ["a new or empty directory", "a non-empty directory"],
    )?;
    write_json_atomic(&out.path().join("group.json"), &meta)?;
    out.commit()?;
    Ok(GroupPrepareReport {
        out: r.out.clone(),
        subjects,
        n_shared: shared.len(),
        n_align: align_ids.len(),
        n_test: test_ids.len(),
    })
}
