//! The population simulator (`simulate --generator population`): deterministic, each subject
//! with its own grid, noise at the requested ncsnr as NSD measures it, profiles in an order of
//! each subject's own.

use brainrecon_datasets::nsd::prepare::{prepare, PrepareOptions};
use brainrecon_datasets::prepared::{PreparedSubject, Split};
use brainrecon_formats::npy;
use brainrecon_simulate::population::PopulationTruth;
use brainrecon_simulate::{simulate, Generator, SimulateOptions};
use brainrecon_testkit::files_with_bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn options(out: &Path, subjects: usize, n_images: usize, sessions: usize) -> SimulateOptions {
    let mut opts = SimulateOptions::new(out);
    opts.generator = Generator::Population;
    opts.subjects = subjects;
    opts.n_images = n_images;
    opts.sessions = sessions;
    opts.image_size = 24;
    opts.volume_shape = [16, 20, 14];
    opts.seed = 3;
    opts
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_other_betas() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let mut small = options(&a, 2, 40, 2);
    small.volume_shape = [12, 14, 10];
    simulate(&small).unwrap();
    simulate(&SimulateOptions {
        out: b.clone(),
        ..small.clone()
    })
    .unwrap();
    simulate(&SimulateOptions {
        out: c.clone(),
        seed: 4,
        ..small
    })
    .unwrap();
    let (fa, fb, fc) = (
        files_with_bytes(&a),
        files_with_bytes(&b),
        files_with_bytes(&c),
    );
    assert_eq!(fa.len(), fb.len());
    for ((na, ba), (nb, bb)) in fa.iter().zip(&fb) {
        assert_eq!(na, nb);
        assert!(ba == bb, "{na} differs");
    }
    let betas =
        "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session01.hdf5";
    let of = |tree: &[(String, Vec<u8>)]| tree.iter().find(|(n, _)| n == betas).unwrap().1.clone();
    assert!(of(&fa) != of(&fc), "seed 4 wrote seed 3's betas");
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

/// NSD's ncsnr of the average voxel from betas z-scored per session: the noise variance is
/// the mean over images (with 3 repeats) and voxels of the variance across repeats (ddof 1);
/// the signal variance is 1 minus it.
fn measured_ncsnr(prepared: &Path) -> f64 {
    let subject = PreparedSubject::open(prepared).unwrap();
    let roi = subject.roi("nsdgeneral").unwrap();
    let betas = subject.betas(&roi, Split::Train).unwrap();
    let ids = subject.row_ids(Split::Train).unwrap();
    let mut rows_of: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (row, id) in ids.into_iter().enumerate() {
        rows_of.entry(id).or_default().push(row);
    }
    let (mut noise, mut count) = (0.0f64, 0usize);
    for rows in rows_of.values().filter(|r| r.len() == 3) {
        for v in 0..betas.voxels {
            let x: Vec<f64> = rows
                .iter()
                .map(|&r| betas.values[r * betas.voxels + v] as f64)
                .collect();
            let mean = x.iter().sum::<f64>() / 3.0;
            noise += x.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 2.0;
            count += 1;
        }
    }
    assert!(count > 1000, "{count} image-voxel pairs with 3 repeats");
    let noise = noise / count as f64;
    ((1.0 - noise).max(0.0) / noise).sqrt()
}

#[test]
fn subjects_differ_in_grid_and_noise_and_share_profiles_only_functionally() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nsd");
    // 2 sessions of NSD's 750 trials; targets drawn from 0.2 to 0.3.
    let mut opts = options(&root, 3, 500, 2);
    opts.shared_images = Some(100);
    opts.ncsnr = [0.2, 0.3];
    let simulated = simulate(&opts).unwrap();
    let truth: PopulationTruth =
        serde_json::from_slice(&std::fs::read(root.join("truth/population.json")).unwrap())
            .unwrap();
    assert_eq!(simulated.population.as_deref(), Some(&truth));
    assert!(simulated.group.is_none());
    assert_eq!((truth.sessions, truth.trials_per_session), (2, 750));
    assert_eq!(truth.shared_ids.len(), 100);

    // Per-subject grids, voxel counts and ROI extents.
    let shapes: BTreeSet<[usize; 3]> = truth.subjects.iter().map(|s| s.volume_shape).collect();
    assert_eq!(shapes.len(), 3, "{shapes:?}");
    let counts: BTreeSet<usize> = truth
        .subjects
        .iter()
        .map(|s| s.rois["nsdgeneral"])
        .collect();
    assert_eq!(counts.len(), 3, "{counts:?}");
    let early: BTreeSet<usize> = truth
        .subjects
        .iter()
        .map(|s| s.rois["streams/early"])
        .collect();
    assert_eq!(early.len(), 3, "{early:?}");

    // The ncsnr measured from the repeats, as NSD defines it, is the requested one.
    for (s, subject) in truth.subjects.iter().enumerate() {
        assert!((0.2..=0.3).contains(&subject.ncsnr), "{}", subject.ncsnr);
        let out = dir.path().join(&subject.subject);
        prepare(&PrepareOptions::defaults(&root, s + 1, &out)).unwrap();
        let measured = measured_ncsnr(&out);
        eprintln!(
            "{}: ncsnr measured {measured:.4}, requested {:.4}",
            subject.subject, subject.ncsnr
        );
        assert!(
            (measured - subject.ncsnr).abs() < 0.12 * subject.ncsnr,
            "{}: measured ncsnr {measured}, requested {}",
            subject.subject,
            subject.ncsnr
        );
    }

    // Voxel i of one subject is not voxel i of another; the voxel with the same profile is.
    let read = |subject: &str| {
        let dir = root.join("truth").join(subject);
        let signal = npy::read_f32(&dir.join("signal_shared.npy")).unwrap();
        let profile = npy::read_i64(&dir.join("profile.npy")).unwrap().data;
        let (images, voxels) = (signal.shape[0], signal.shape[1]);
        let columns: Vec<Vec<f32>> = (0..voxels)
            .map(|v| (0..images).map(|i| signal.data[i * voxels + v]).collect())
            .collect();
        (columns, profile)
    };
    let (a, profile_a) = read("subj01");
    let (b, profile_b) = read("subj02");
    let n = a.len().min(b.len());
    let same_index = (0..n).map(|i| pearson(&a[i], &b[i])).sum::<f64>() / n as f64;
    let mut first_of = BTreeMap::new();
    for (j, &p) in profile_b.iter().enumerate() {
        first_of.entry(p).or_insert(j);
    }
    let matched = (0..n)
        .map(|i| pearson(&a[i], &b[first_of[&profile_a[i]]]))
        .sum::<f64>()
        / n as f64;
    eprintln!("signal r across subjects: same index {same_index:.4}, same profile {matched:.4}");
    assert!(same_index.abs() < 0.05, "same index: r {same_index}");
    // 70 % of each voxel's variance is its profile's: r ≈ 0.7 between matched voxels.
    assert!((0.6..0.8).contains(&matched), "same profile: r {matched}");
}
