//! A simulated group of subjects in one NSD root: a set of shared images every subject sees,
//! each subject's other images from its own disjoint block of a larger pool, one
//! `masterordering` for all (as NSD). Tuning is drawn from a population (smooth fields over
//! normalised brain position) and mixed per voxel with an individual part:
//! `√(1−R)·shared(p + shift) + √R·individual`. Each subject has its own volume size, region
//! bounds, position shift and SNR factor, all drawn from its own random stream.
//!
//! Truth: `truth/group.json` ([`GroupTruth`]) and per subject `truth/subjNN/` with a single
//! subject's files (`signal.npy` rows are every pool id) plus `tuning_shared.npy`,
//! `tuning_individual.npy` (visual voxels, 21) float32 and `positions.npy` (visual voxels, 3)
//! float32, the shifted normalised position where the shared fields were read.

use crate::brain::{
    luminance_contrast, Brain, Population, SubjectTraits, TuningParts, FIELD_SIGMA,
};
use crate::scene::{Scene, N_ATTRIBUTES};
use crate::{
    coco_id, coco_split, default_shared, new_output_dir, subject_truth, write_betas, write_brick,
    write_captions, write_responses, write_rois, write_truth_arrays, OutputLayout, Signal,
    SimulateOptions, Simulated, Truth,
};
use brainrecon_core::error::{DataError, Result};
use brainrecon_core::fs::{write_atomic, write_json_atomic};
use brainrecon_datasets::nsd::prepare::{prepare, PrepareOptions};
use brainrecon_datasets::nsd::Layout;
use brainrecon_formats::npy;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// What the simulator knows about a group, saved as `truth/group.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupTruth {
    /// The seed it was made with.
    pub seed: u64,
    /// N
    pub n_subjects: usize,
    /// R: the variance share of each tuning value's individual part.
    pub individual_share: f64,
    /// Images each subject sees.
    pub n_images: usize,
    /// Distinct images over the group: shared + N × own.
    pub n_pool: usize,
    /// 0-based ids every subject sees (sorted).
    pub shared_ids: Vec<usize>,
    /// Each subject, in order (`subj01` …).
    pub subjects: Vec<GroupSubject>,
    /// Semantic prototypes: (48, 3) normalised centres.
    pub semantic_centres: Vec<[f32; 3]>,
    /// Semantic prototypes: (48, 21) attribute weights.
    pub semantic_weights: Vec<Vec<f32>>,
    /// Early-visual field: (24, 3) normalised centres.
    pub retinotopic_centres: Vec<[f32; 3]>,
    /// Early-visual field: (24, 3) values (luminance weight, u jitter, v jitter).
    pub retinotopic_values: Vec<Vec<f32>>,
    /// Width of the fields' Gaussian bumps in normalised units.
    pub field_sigma: f64,
}

/// One group subject in [`GroupTruth`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupSubject {
    /// `subjNN`.
    pub subject: String,
    /// (X, Y, Z)
    pub volume_shape: [usize; 3],
    /// Early, higher, ventral and lateral bounds in normalised position.
    pub thresholds: [f32; 4],
    /// Added to a voxel's normalised position before the shared fields are read.
    pub shift: [f32; 3],
    /// Multiplies every visual voxel's single-trial SNR.
    pub snr_factor: f32,
    /// Voxels per atlas and per `atlas/label`.
    pub rois: BTreeMap<String, usize>,
    /// Training trials the subject saw.
    pub n_train_trials: usize,
    /// Test trials the subject saw.
    pub n_test_trials: usize,
    /// 0-based ids this subject alone sees (sorted).
    pub own_ids: Vec<usize>,
}

/// Writes a group's NSD tree with `write_tree` in `opts.layout`: the tree itself, or each
/// subject prepared from it (the tree a scratch input, staged, read, then removed) with the truth
/// beside them. Shared by both group generators.
pub(crate) fn write_in_layout<T>(
    opts: &SimulateOptions,
    write_tree: impl FnOnce(&SimulateOptions, &Path) -> Result<(Vec<Truth>, T)>,
) -> Result<(Vec<Truth>, T)> {
    Ok(match opts.layout {
        OutputLayout::Nsd => new_output_dir(&opts.out)?.run(|staging| write_tree(opts, staging))?,
        OutputLayout::Prepared => {
            let out = new_output_dir(&opts.out)?;
            // The NSD tree is a scratch input of `prepare`: staged, read, then removed.
            let scratch = match new_output_dir(&opts.out.with_extension("nsd-source")) {
                Ok(scratch) => scratch,
                Err(e) => {
                    out.abort();
                    return Err(e);
                }
            };
            let source = scratch.path().to_path_buf();
            let result = out.run(|staging| {
                let written = write_tree(opts, &source)?;
                for truth in &written.0 {
                    let subject = brainrecon_datasets::nsd::parse_subject(&truth.subject)?;
                    prepare(&PrepareOptions {
                        progress: opts.progress,
                        ..PrepareOptions::defaults(&source, subject, &staging.join(&truth.subject))
                    })?;
                }
                let truth_dir = staging.join("truth");
                std::fs::rename(source.join("truth"), &truth_dir)
                    .map_err(|e| DataError::io(&truth_dir, e))?;
                Ok::<_, DataError>(written)
            });
            scratch.abort();
            result?
        }
    })
}

/// Writes a group (`opts.subjects` > 1); checked by [`crate::simulate`].
pub(crate) fn simulate_group(opts: &SimulateOptions) -> Result<Simulated> {
    let (truths, group) = write_in_layout(opts, write_tree)?;
    Ok(Simulated {
        out: opts.out.clone(),
        truth: truths[0].clone(),
        group: Some(group),
        population: None,
    })
}

/// The group's design: `subject_images` has NSD's 8 rows of `n_images` 0-based ids, shared
/// images first; rows past `n_subjects` repeat earlier subjects' images.
pub(crate) fn group_design(
    n_images: usize,
    n_shared: usize,
    n_subjects: usize,
    rng: &mut impl Rng,
) -> (crate::Design, Vec<Vec<usize>>) {
    let n_own = n_images - n_shared;
    let mut pool: Vec<usize> = (0..n_shared + n_subjects * n_own).collect();
    pool.shuffle(rng);
    let shared: Vec<usize> = pool[..n_shared].to_vec();
    let own: Vec<Vec<usize>> = (0..n_subjects)
        .map(|s| pool[n_shared + s * n_own..n_shared + (s + 1) * n_own].to_vec())
        .collect();
    let subject_images = (0..8)
        .map(|s| {
            let mut rest = own[s % n_subjects].clone();
            rest.shuffle(rng);
            shared.iter().copied().chain(rest).collect()
        })
        .collect();
    let mut master_ordering: Vec<usize> = (0..3).flat_map(|_| 0..n_images).collect();
    master_ordering.shuffle(rng);
    (
        crate::Design {
            shared,
            subject_images,
            master_ordering,
        },
        own,
    )
}

/// Subject `s`'s (0-based) random stream: the group's seed on its own ChaCha stream.
fn subject_rng(seed: u64, s: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(s as u64 + 1);
    rng
}

fn write_tree(opts: &SimulateOptions, root: &Path) -> Result<(Vec<Truth>, GroupTruth)> {
    let n_subjects = opts.subjects;
    let n_shared = opts
        .shared_images
        .unwrap_or_else(|| default_shared(opts.n_images));
    let n_pool = n_shared + n_subjects * (opts.n_images - n_shared);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let population = Population::new(&mut rng);
    let scenes: Vec<Scene> = (0..n_pool).map(|_| Scene::random(&mut rng)).collect();
    let captions: Vec<Vec<String>> = scenes.iter().map(|s| s.captions(&mut rng)).collect();
    let (design, own) = group_design(opts.n_images, n_shared, n_subjects, &mut rng);
    let n_trials = design.master_ordering.len();
    let per_session = n_trials.div_ceil(opts.sessions);
    let sessions: Vec<usize> = (1..=n_trials.div_ceil(per_session)).collect();
    let trial_session: Vec<usize> = (0..n_trials).map(|t| t / per_session + 1).collect();

    let grid = 24;
    let images: Vec<_> = scenes.iter().map(|s| s.render(opts.image_size)).collect();
    let maps: Vec<_> = images
        .iter()
        .map(|im| luminance_contrast(im, grid))
        .collect();
    let first = Layout::new(root, 1);
    design.write_expdesign(&first, opts.n_images)?;
    write_captions(&first, &captions)?;
    write_brick(&first, &images, opts.image_size)?;

    let mut truths = Vec::with_capacity(n_subjects);
    let mut subjects = Vec::with_capacity(n_subjects);
    let mut trial_ids_of = Vec::with_capacity(n_subjects);
    for s in 0..n_subjects {
        let mut rng = subject_rng(opts.seed, s);
        let traits = SubjectTraits::random(opts.individual_share as f32, &mut rng);
        let shape = opts
            .volume_shape
            .map(|d| ((d as f32 * rng.gen_range(0.9f32..1.1)).round() as usize).max(8));
        let (brain, parts) = Brain::group_member(shape, &population, &traits, &mut rng);
        let layout = Layout::new(root, s + 1);
        let sub_opts = SimulateOptions {
            subject: s + 1,
            volume_shape: shape,
            ..opts.clone()
        };
        let visual: Vec<usize> = (0..brain.voxels.len())
            .filter(|&v| brain.nsdgeneral[brain.index(brain.voxels[v].coord)] > 0)
            .collect();
        let signal = Signal::new(&brain, &visual, &scenes, &maps, grid);
        let trial_ids: Vec<usize> = design
            .master_ordering
            .iter()
            .map(|&c| design.subject_images[s][c])
            .collect();
        let truth_dir = root.join("truth").join(layout.subject_name());
        std::fs::create_dir_all(&truth_dir).map_err(|e| DataError::io(&truth_dir, e))?;
        write_betas(
            &sub_opts,
            &layout,
            &brain,
            &signal,
            &visual,
            &trial_ids,
            &trial_session,
            &sessions,
            &truth_dir,
            &mut rng,
        )?;
        write_responses(&layout, &trial_ids, &trial_session, per_session)?;
        let rois = write_rois(&layout, &brain)?;
        let truth = subject_truth(
            &sub_opts,
            &layout,
            &design.shared,
            &trial_ids,
            &trial_session,
            &sessions,
            rois.clone(),
            &scenes,
        );
        write_json_atomic(&truth_dir.join("truth.json"), &truth)?;
        write_truth_arrays(
            &truth_dir,
            &trial_ids,
            &trial_session,
            &signal,
            &visual,
            &brain,
            n_pool,
        )?;
        let visual_parts: Vec<&TuningParts> =
            visual.iter().filter_map(|&v| parts[v].as_ref()).collect();
        write_tuning(&truth_dir, &visual_parts)?;
        let mut own_ids = own[s].clone();
        own_ids.sort_unstable();
        subjects.push(GroupSubject {
            subject: layout.subject_name(),
            volume_shape: shape,
            thresholds: traits.thresholds,
            shift: traits.shift,
            snr_factor: traits.snr_factor,
            rois,
            n_train_trials: truth.n_train_trials,
            n_test_trials: truth.n_test_trials,
            own_ids,
        });
        truths.push(truth);
        trial_ids_of.push(trial_ids);
    }
    write_stim_info(&first, &design, n_pool, &trial_ids_of)?;
    let mut shared_ids = design.shared.clone();
    shared_ids.sort_unstable();
    let group = GroupTruth {
        seed: opts.seed,
        n_subjects,
        individual_share: opts.individual_share,
        n_images: opts.n_images,
        n_pool,
        shared_ids,
        subjects,
        semantic_centres: population.semantic.centres.clone(),
        semantic_weights: population.semantic.values.clone(),
        retinotopic_centres: population.retinotopic.centres.clone(),
        retinotopic_values: population.retinotopic.values.clone(),
        field_sigma: FIELD_SIGMA as f64,
    };
    write_json_atomic(&root.join("truth").join("group.json"), &group)?;
    Ok((truths, group))
}

/// `tuning_shared.npy`, `tuning_individual.npy` (visual voxels, 21) and `positions.npy`
/// (visual voxels, 3), float32.
fn write_tuning(truth_dir: &Path, parts: &[&TuningParts]) -> Result<()> {
    let n = parts.len();
    let shared: Vec<f32> = parts.iter().flat_map(|p| p.shared.clone()).collect();
    let individual: Vec<f32> = parts.iter().flat_map(|p| p.individual.clone()).collect();
    let positions: Vec<f32> = parts.iter().flat_map(|p| p.position).collect();
    npy::write(
        &truth_dir.join("tuning_shared.npy"),
        &[n, N_ATTRIBUTES],
        &shared,
    )?;
    npy::write(
        &truth_dir.join("tuning_individual.npy"),
        &[n, N_ATTRIBUTES],
        &individual,
    )?;
    npy::write(&truth_dir.join("positions.npy"), &[n, 3], &positions)
}

/// NSD's merged stimulus table over the pool: `subjectK` is 1 where subject K saw the image,
/// `subjectK_repR` the 1-based trial of its R-th showing (0 if none), for the written subjects.
pub(crate) fn write_stim_info(
    layout: &Layout,
    design: &crate::Design,
    n_pool: usize,
    trial_ids: &[Vec<usize>],
) -> Result<()> {
    let n_subjects = trial_ids.len();
    let mut header =
        String::from(",cocoId,cocoSplit,cropBox,loss,nsdId,flagged,BOLD5000,shared1000");
    for s in 1..=8 {
        header.push_str(&format!(",subject{s}"));
    }
    for s in 1..=n_subjects {
        for r in 0..3 {
            header.push_str(&format!(",subject{s}_rep{r}"));
        }
    }
    let mut text = header + "\n";
    let shared: std::collections::HashSet<usize> = design.shared.iter().copied().collect();
    // id → 1-based trials per subject.
    let mut reps = vec![vec![Vec::new(); n_subjects]; n_pool];
    for (s, ids) in trial_ids.iter().enumerate() {
        for (t, &id) in ids.iter().enumerate() {
            reps[id][s].push(t + 1);
        }
    }
    for (id, reps) in reps.iter().enumerate() {
        text.push_str(&format!(
            "{id},{},{},\"(0, 0, 0.125, 0.125)\",0.0,{id},False,False,{}",
            coco_id(id),
            coco_split(id),
            if shared.contains(&id) {
                "True"
            } else {
                "False"
            }
        ));
        for s in 0..8 {
            let seen = s < n_subjects && !reps[s].is_empty();
            text.push_str(if seen { ",1" } else { ",0" });
        }
        for trials in reps {
            for r in 0..3 {
                text.push_str(&format!(",{}", trials.get(r).copied().unwrap_or(0)));
            }
        }
        text.push('\n');
    }
    write_atomic(&layout.stim_info(), |w| w.write_all(text.as_bytes()))
}
