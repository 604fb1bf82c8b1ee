//! A simulated group: one NSD root with several subjects who share some images and tuning.

use brainrecon_datasets::nsd::prepare::{prepare, PrepareOptions, ZScore};
use brainrecon_datasets::nsd::{ExpDesign, Layout};
use brainrecon_datasets::prepared::{PreparedSubject, Split};
use brainrecon_formats::npy;
use brainrecon_simulate::group::GroupTruth;
use brainrecon_simulate::{simulate, OutputLayout, SimulateOptions, Truth};
use brainrecon_testkit::files_with_bytes;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn small(out: &Path, subjects: usize, share: f64) -> SimulateOptions {
    let mut opts = SimulateOptions::new(out);
    opts.n_images = 40;
    opts.image_size = 24;
    opts.sessions = 3;
    opts.volume_shape = [14, 18, 12];
    opts.seed = 5;
    opts.subjects = subjects;
    opts.individual_share = share;
    opts
}

fn read_group(root: &Path) -> GroupTruth {
    serde_json::from_slice(&std::fs::read(root.join("truth/group.json")).unwrap()).unwrap()
}

fn fnv1a(files: &[(String, Vec<u8>)]) -> u64 {
    let mut h = 0xcbf29ce484222325u64;
    let mut update = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    };
    for (name, bytes) in files {
        update(name.as_bytes());
        update(&[0]);
        update(bytes);
    }
    h
}

#[test]
fn one_subject_is_written_as_before_groups() {
    // The digest of this tree as the simulator wrote it before groups existed.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nsd");
    let simulated = simulate(&small(&root, 1, 0.3)).unwrap();
    assert!(simulated.group.is_none());
    let tree = files_with_bytes(&root);
    assert_eq!(tree.len(), 21);
    assert_eq!(fnv1a(&tree), 0x9d49f476ff181e31);
}

#[test]
fn group_subjects_share_images_and_differ_in_size() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nsd");
    let simulated = simulate(&small(&root, 3, 0.3)).unwrap();
    let group = read_group(&root);
    assert_eq!(simulated.group.as_ref(), Some(&group));
    assert_eq!(group.n_subjects, 3);
    assert_eq!(group.shared_ids.len(), 4);
    assert_eq!(group.n_pool, 4 + 3 * 36);

    // Voxel counts and volumes differ across subjects.
    let counts: BTreeSet<usize> = group
        .subjects
        .iter()
        .map(|s| s.rois["nsdgeneral"])
        .collect();
    assert_eq!(counts.len(), 3, "{counts:?}");

    // Shared ids are the same for all; own ids are disjoint and outside the shared set.
    let shared: BTreeSet<usize> = group.shared_ids.iter().copied().collect();
    let design = ExpDesign::read(&Layout::new(&root, 1).expdesign()).unwrap();
    assert_eq!(design.subject_images.len(), 8);
    let mut seen_own = BTreeSet::new();
    for (s, subject) in group.subjects.iter().enumerate() {
        let truth: Truth = serde_json::from_slice(
            &std::fs::read(root.join("truth").join(&subject.subject).join("truth.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(truth.shared_ids, group.shared_ids);
        assert_eq!(truth.scenes.len(), group.n_pool);
        let row: BTreeSet<usize> = design.subject_images[s].iter().copied().collect();
        assert_eq!(row.len(), 40);
        assert!(shared.is_subset(&row));
        let own: BTreeSet<usize> = row.difference(&shared).copied().collect();
        assert_eq!(own.iter().copied().collect::<Vec<_>>(), subject.own_ids);
        assert!(own.iter().all(|id| seen_own.insert(*id)), "own ids overlap");
        let n_visual = npy::read_f32(
            &root
                .join("truth")
                .join(&subject.subject)
                .join("tuning_shared.npy"),
        )
        .unwrap()
        .shape;
        assert_eq!(n_visual, vec![subject.rois["nsdgeneral"], 21]);
    }

    // Each subject prepares from the one root; its test images are the shared ones.
    for subject in [2, 3] {
        let out = dir.path().join(format!("subj{subject:02}"));
        prepare(&PrepareOptions {
            nsd_root: root.clone(),
            subject,
            out: out.clone(),
            sessions: None,
            atlases: vec!["nsdgeneral".into(), "streams".into()],
            zscore: ZScore::Session,
            average_train: false,
            image_size: None,
            progress: false,
        })
        .unwrap();
        let prepared = PreparedSubject::open(&out).unwrap();
        let test: BTreeSet<usize> = prepared.row_ids(Split::Test).unwrap().into_iter().collect();
        assert_eq!(test, shared);
    }
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    simulate(&small(&a, 2, 0.3)).unwrap();
    simulate(&small(&b, 2, 0.3)).unwrap();
    let (fa, fb) = (files_with_bytes(&a), files_with_bytes(&b));
    assert_eq!(fa.len(), fb.len());
    for ((na, ba), (nb, bb)) in fa.iter().zip(&fb) {
        assert_eq!(na, nb);
        assert!(ba == bb, "{na} differs");
    }
}

fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().map(|&x| x as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&x| x as f64).sum::<f64>() / n;
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt()
}

/// Per subject: (positions (n, 3), shared (n, 21), individual (n, 21)) of semantic voxels.
fn semantic_tuning(root: &Path, subject: &str) -> (Vec<[f32; 3]>, Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let dir = root.join("truth").join(subject);
    let positions = npy::read_f32(&dir.join("positions.npy")).unwrap().data;
    let shared = npy::read_f32(&dir.join("tuning_shared.npy")).unwrap().data;
    let individual = npy::read_f32(&dir.join("tuning_individual.npy"))
        .unwrap()
        .data;
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for v in 0..positions.len() / 3 {
        let s = &shared[v * 21..(v + 1) * 21];
        // pRF rows hold three values and zeros.
        if s[3..].iter().all(|&x| x == 0.0) {
            continue;
        }
        out.0
            .push([positions[3 * v], positions[3 * v + 1], positions[3 * v + 2]]);
        out.1.push(s.to_vec());
        out.2.push(individual[v * 21..(v + 1) * 21].to_vec());
    }
    out
}

#[test]
fn shared_tuning_agrees_across_subjects_at_matched_positions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nsd");
    simulate(&small(&root, 2, 0.0)).unwrap();
    let (pa, sa, ia) = semantic_tuning(&root, "subj01");
    let (pb, sb, ib) = semantic_tuning(&root, "subj02");
    assert!(pa.len() > 50 && pb.len() > 50);
    // Each of subject 1's voxels against subject 2's voxel nearest in shifted position.
    let (mut shared_a, mut shared_b, mut own_a, mut own_b) = (vec![], vec![], vec![], vec![]);
    for (v, p) in pa.iter().enumerate() {
        let d2 = |q: &[f32; 3]| (0..3).map(|k| (p[k] - q[k]).powi(2)).sum::<f32>();
        let w = (0..pb.len())
            .min_by(|&x, &y| d2(&pb[x]).total_cmp(&d2(&pb[y])))
            .unwrap();
        shared_a.extend_from_slice(&sa[v]);
        shared_b.extend_from_slice(&sb[w]);
        own_a.extend_from_slice(&ia[v]);
        own_b.extend_from_slice(&ib[w]);
    }
    let r_shared = pearson(&shared_a, &shared_b);
    let r_own = pearson(&own_a, &own_b);
    assert!(r_shared > 0.8, "shared {r_shared}");
    assert!(r_own.abs() < 0.2, "individual {r_own}");
}

#[test]
fn a_prepared_group_holds_each_subject_and_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("group");
    let mut opts = small(&out, 2, 0.3);
    opts.layout = OutputLayout::Prepared;
    opts.shared_images = Some(6);
    let simulated = simulate(&opts).unwrap();
    assert_eq!(simulated.group.as_ref().unwrap().shared_ids.len(), 6);
    for subject in ["subj01", "subj02"] {
        let prepared = PreparedSubject::open(&out.join(subject)).unwrap();
        assert_eq!(prepared.row_ids(Split::Test).unwrap().len(), 6);
        assert!(out
            .join("truth")
            .join(subject)
            .join("tuning_shared.npy")
            .is_file());
    }
    assert!(out.join("truth/group.json").is_file());
    assert!(!PathBuf::from(format!("{}.nsd-source", out.display())).exists());
    assert!(!dir.path().join("group.nsd-source").exists());
}
