//! Compares the encoding statistics with statsmodels (BH FDR), scipy (Pearson r) and a numpy
//! transcription of the permutation test, from fixtures written by
//! tools/fixtures/stats_fixtures.py.

use brainrecon_ridge::stats::{
    bh_fdr, block_permutation, correlate_columns, pearson_columns, permutation_null,
    permutation_p_values, permutation_test, Standardized,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/stats/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let json: Value = serde_json::from_str(&text).unwrap();
    json["cases"].as_array().unwrap().clone()
}

/// Floats of `key`; JSON null (NaN in numpy) becomes NaN.
fn floats(case: &Value, key: &str) -> Vec<f64> {
    case[key]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no {key}", case["name"]))
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn f32s(case: &Value, key: &str) -> Vec<f32> {
    floats(case, key).into_iter().map(|v| v as f32).collect()
}

fn size(case: &Value, key: &str) -> usize {
    case[key].as_u64().unwrap() as usize
}

fn name(case: &Value) -> &str {
    case["name"].as_str().unwrap()
}

/// Equal within `tol`, NaN only where the reference is NaN.
fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else {
            (g - w).abs() <= tol
        };
        assert!(ok, "{what}[{i}]: got {g:e}, reference {w:e}");
    }
}

#[test]
fn bh_matches_statsmodels_fdrcorrection() {
    let cases = load("bh");
    assert!(cases.len() >= 10);
    for case in &cases {
        let p = floats(case, "p");
        let alpha = case["alpha"].as_f64().unwrap();
        let (q, reject) = bh_fdr(&p, alpha).unwrap();
        // Same float operations as statsmodels: the adjusted p-values agree exactly.
        assert_eq!(q, floats(case, "q"), "{}: q", name(case));
        let want: Vec<bool> = case["reject"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_bool().unwrap())
            .collect();
        assert_eq!(reject, want, "{}: reject", name(case));
        assert!(q.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }
}

#[test]
fn bh_q_is_monotone_in_p() {
    let case = load("bh")
        .into_iter()
        .find(|c| name(c) == "n1000_continuous")
        .unwrap();
    let p = floats(&case, "p");
    let (q, _) = bh_fdr(&p, 0.05).unwrap();
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    assert!(order.windows(2).all(|w| q[w[0]] <= q[w[1]]));
}

#[test]
fn pearson_matches_scipy() {
    for case in &load("pearson") {
        let (n, t) = (size(case, "n"), size(case, "t"));
        let r = pearson_columns(&f32s(case, "a"), &f32s(case, "b"), n, t).unwrap();
        assert_close(name(case), &r, &floats(case, "r"), 1e-12);
    }
}

#[test]
fn permutation_null_and_p_values_match_numpy() {
    for case in &load("permutation") {
        let (n, t) = (size(case, "n"), size(case, "t"));
        let pred = Standardized::from_row_major(&f32s(case, "pred"), n, t).unwrap();
        let truth = Standardized::from_row_major(&f32s(case, "truth"), n, t).unwrap();
        let perms: Vec<Vec<usize>> = case["perms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|perm| {
                perm.as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_u64().unwrap() as usize)
                    .collect()
            })
            .collect();
        let observed = correlate_columns(&pred, &truth).unwrap();
        assert_close(name(case), &observed, &floats(case, "observed_r"), 1e-12);

        let null = permutation_null(&pred, &truth, &perms).unwrap();
        assert_close(name(case), &null, &floats(case, "null"), 1e-12);

        // Counts, hence p-values, must agree exactly.
        let want_p = floats(case, "p");
        assert_eq!(permutation_p_values(&observed, &null).unwrap(), want_p);
        let (streamed_r, streamed_p) = permutation_test(&pred, &truth, &perms).unwrap();
        assert_close("streamed r", &streamed_r, &observed, 0.0);
        assert_eq!(streamed_p, want_p, "{}: streamed p", name(case));
        // The fixture has real signal in it: some p-values are small, some are not.
        assert!(want_p.iter().any(|&p| p < 0.05) && want_p.iter().any(|&p| p > 0.2));
    }
}

#[test]
fn streamed_test_equals_full_null_on_many_targets() {
    // More targets than one thread block, with a seeded block permutation set.
    let (n, t) = (30, 101);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let truth: Vec<f32> = (0..n * t)
        .map(|i| ((i * 7919 % 1009) as f32 / 1009.0) - 0.5)
        .collect();
    let pred: Vec<f32> = truth
        .iter()
        .enumerate()
        .map(|(i, &v)| v * (i % t) as f32 / t as f32 + ((i * 104729 % 997) as f32 / 997.0 - 0.5))
        .collect();
    let perms: Vec<Vec<usize>> = (0..64).map(|_| block_permutation(n, 3, &mut rng)).collect();
    let pz = Standardized::from_row_major(&pred, n, t).unwrap();
    let tz = Standardized::from_row_major(&truth, n, t).unwrap();
    let null = permutation_null(&pz, &tz, &perms).unwrap();
    let observed = correlate_columns(&pz, &tz).unwrap();
    let (r, p) = permutation_test(&pz, &tz, &perms).unwrap();
    assert_close("streamed r", &r, &observed, 0.0);
    assert_eq!(p, permutation_p_values(&observed, &null).unwrap());
    // Each null row is a real correlation of permuted rows (checked against pearson_columns).
    let k = 17;
    let permuted: Vec<f32> = perms[k]
        .iter()
        .flat_map(|&src| pred[src * t..(src + 1) * t].to_vec())
        .collect();
    let direct = pearson_columns(&permuted, &truth, n, t).unwrap();
    assert_close("null row", &null[k * t..(k + 1) * t], &direct, 1e-12);
}

#[test]
fn block_permutations_are_seeded_and_keep_blocks() {
    let draw = |seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..5)
            .map(|_| block_permutation(10, 4, &mut rng))
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(1), draw(1));
    assert_ne!(draw(1), draw(2));
    for perm in draw(1) {
        // Blocks [0..4), [4..8), [8..10) appear whole and in order inside.
        for start in [0, 4, 8] {
            let at = perm.iter().position(|&v| v == start).unwrap();
            let len = if start == 8 { 2 } else { 4 };
            assert_eq!(perm[at..at + len], (start..start + len).collect::<Vec<_>>());
        }
    }
    let mut plain = ChaCha8Rng::seed_from_u64(9);
    let perm = block_permutation(50, 1, &mut plain);
    assert_ne!(perm, (0..50).collect::<Vec<_>>());
}
