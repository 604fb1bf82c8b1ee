//! The EEG encoders' ops on the training tape against PyTorch
//! (tools/fixtures/tape_eeg_gradients.py, references in float64 from the float32 inputs): a
//! temporal convolution at stride 3 with rows of magnitude 100 and 1e-3; a row mix (the
//! spatial convolution); batch norm in training mode with ELU on channels of variance 1e6, of
//! variance 1e-4 around 10 and near-constant, and without ELU on long rows; NICE's and ATM's
//! contrastive losses with a learnable scale on rows of norm 1e-3 to 300; attention with a
//! dropout mask on its weights and peaked scores; a prepended token and kept rows. Each case:
//! y = op(inputs), the gradients of Σ y ⊙ g (the losses are scalars) against torch's, relative
//! to the reference's largest |value|, in pools of 1 and 3 threads; a chain of the ops on
//! inputs large enough to be split agrees between 1 and 3 threads, and the attention's
//! dropout draws the masks `rng::dropout` draws.

mod common;

use brainrecon_nn::tape::{ClipLogits, Tape};
use brainrecon_testkit::{max_abs, seeded_uniform};
use candle_core::{Device, Tensor};
use common::tape::{assert_scaled_close, check, in_pools, Fixture};

#[test]
fn every_case_is_tested() {
    let f = Fixture::load("tape_eeg_gradients.safetensors");
    assert_eq!(
        f.cases(),
        [
            "temporal_conv",
            "channel_mix",
            "batch_norm_elu",
            "batch_norm_long",
            "clip_nice",
            "clip_atm",
            "attention_mask",
            "token_rows"
        ]
    );
}

#[test]
fn temporal_convolution_matches_pytorch_across_row_magnitudes() {
    let f = Fixture::load("tape_eeg_gradients.safetensors");
    let stride = f.meta["temporal_conv"]["stride"].as_u64().unwrap() as usize;
    in_pools(|| {
        let mut tape = Tape::new();
        let c = "temporal_conv";
        let (x, w, b) = (
            f.parameter(&mut tape, c, "x"),
            f.parameter(&mut tape, c, "w"),
            f.parameter(&mut tape, c, "b"),
        );
        let y = tape.temporal_conv(x, w, Some(b), stride).unwrap();
        check(&f, &mut tape, c, y, &[("x", x), ("w", w), ("b", b)], 1e-5);
    });
}

#[test]
fn channel_mix_matches_pytorch() {
    let f = Fixture::load("tape_eeg_gradients.safetensors");
    in_pools(|| {
        let mut tape = Tape::new();
        let c = "channel_mix";
        let (x, w, b) = (
            f.parameter(&mut tape, c, "x"),
            f.parameter(&mut tape, c, "w"),
            f.parameter(&mut tape, c, "b"),
        );
        let y = tape.channel_mix(x, w, Some(b)).unwrap();
        check(&f, &mut tape, c, y, &[("x", x), ("w", w), ("b", b)], 1e-5);
    });
}

#[test]
fn batch_norm_matches_pytorch_on_extreme_variances_and_long_rows() {
    let f = Fixture::load("tape_eeg_gradients.safetensors");
    in_pools(|| {
        for (case, elu) in [("batch_norm_elu", Some(1.0)), ("batch_norm_long", None)] {
            let mut tape = Tape::new();
            let (x, w, b) = (
                f.parameter(&mut tape, case, "x"),
                f.parameter(&mut tape, case, "w"),
                f.parameter(&mut tape, case, "b"),
            );
            let (y, mean, var) = tape.batch_norm(x, w, b, 1e-5, elu).unwrap();
            let channels = f.shape(&format!("{case}.w"))[0];
            assert_eq!((mean.len(), var.len()), (channels, channels));
            // the channels of variance 1e-4 around 10: x − mean in f32 carries the mean's
            // rounding into x̂ magnified by 1/σ ≈ 100, ~1e-4 relative (candle's path too)
            let tol = 2e-4;
            check(&f, &mut tape, case, y, &[("x", x), ("w", w), ("b", b)], tol);
        }
    });
}

#[test]
fn contrastive_losses_match_pytorch_across_row_norms() {
    let f = Fixture::load("tape_eeg_gradients.safetensors");
    for (case, logits) in [
        ("clip_nice", ClipLogits::UnitRowsExpScale),
        ("clip_atm", ClipLogits::RawRowsLinearScale),
    ] {
        let mut tape = Tape::new();
        let x = f.parameter(&mut tape, case, "x");
        let s = f.parameter(&mut tape, case, "s");
        let images = f.values(&format!("{case}.images"));
        let (y, loss) = tape.clip_loss(x, &images, s, logits).unwrap();
        assert!((loss as f32 - tape.value(y)[0]).abs() < 1e-6);
        check(&f, &mut tape, case, y, &[("x", x), ("s", s)], 1e-5);
    }
}

#[test]
fn masked_attention_matches_pytorch_with_peaked_scores() {
    let f = Fixture::load("tape_eeg_gradients.safetensors");
    let heads = f.meta["attention_mask"]["heads"].as_u64().unwrap() as usize;
    in_pools(|| {
        let mut tape = Tape::new();
        let c = "attention_mask";
        let (q, k, v) = (
            f.parameter(&mut tape, c, "q"),
            f.parameter(&mut tape, c, "k"),
            f.parameter(&mut tape, c, "v"),
        );
        let mask = f.values("attention_mask.mask");
        assert!(mask.contains(&0.0), "the mask drops some weights");
        let y = tape.attention_masked(q, k, v, heads, mask).unwrap();
        check(&f, &mut tape, c, y, &[("q", q), ("k", k), ("v", v)], 1e-5);
    });
}

#[test]
fn token_and_kept_rows_match_pytorch() {
    let f = Fixture::load("tape_eeg_gradients.safetensors");
    let kept = f.meta["token_rows"]["kept"].as_u64().unwrap() as usize;
    let mut tape = Tape::new();
    let c = "token_rows";
    let (x, token) = (
        f.parameter(&mut tape, c, "x"),
        f.parameter(&mut tape, c, "token"),
    );
    let joined = tape.prepend_token(x, token).unwrap();
    let y = tape.keep_rows(joined, kept).unwrap();
    check(&f, &mut tape, c, y, &[("x", x), ("token", token)], 1e-6);
}

/// NICE's chain on inputs large enough for every op to split its samples over the pool:
/// the value and every gradient, for a pool of `threads`.
fn chain(threads: usize) -> Vec<Vec<f32>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let (n, r, t, f, k, stride, heads) = (9, 6, 60, 8, 9, 2, 2);
        let mut tape = Tape::new();
        let x = tape
            .parameter(&[n, r, t], &seeded_uniform(n * r * t, 1, 3.0))
            .unwrap();
        let wt = tape
            .parameter(&[f, k], &seeded_uniform(f * k, 2, 0.5))
            .unwrap();
        let bt = tape.parameter(&[f], &seeded_uniform(f, 3, 0.5)).unwrap();
        let h = tape.temporal_conv(x, wt, Some(bt), stride).unwrap();
        let to = tape.shape(h)[3];
        let (g1, b1) = (
            tape.parameter(&[f], &seeded_uniform(f, 4, 1.0)).unwrap(),
            tape.parameter(&[f], &seeded_uniform(f, 5, 1.0)).unwrap(),
        );
        let (h, _, _) = tape.batch_norm(h, g1, b1, 1e-5, Some(1.0)).unwrap();
        tape.reshape(h, &[n, f * r, to]).unwrap();
        let wm = tape
            .parameter(&[f, f * r], &seeded_uniform(f * f * r, 6, 0.3))
            .unwrap();
        let h = tape.channel_mix(h, wm, None).unwrap();
        tape.reshape(h, &[n, f, to]).unwrap();
        let token = tape.parameter(&[to], &seeded_uniform(to, 7, 1.0)).unwrap();
        let h = tape.prepend_token(h, token).unwrap();
        let mask: Vec<f32> = seeded_uniform(n * heads * (f + 1) * (f + 1), 8, 1.0)
            .into_iter()
            .map(|v| if v > -0.5 { 4.0 / 3.0 } else { 0.0 })
            .collect();
        let h = tape.attention_masked(h, h, h, heads, mask).unwrap();
        let h = tape.keep_rows(h, f).unwrap();
        tape.reshape(h, &[n, f * to]).unwrap();
        let images = seeded_uniform(n * f * to, 9, 1.0);
        let s = tape.parameter(&[], &[2.0]).unwrap();
        let (loss, _) = tape
            .clip_loss(h, &images, s, ClipLogits::UnitRowsExpScale)
            .unwrap();
        tape.backward(loss).unwrap();
        let mut out = vec![tape.value(loss).to_vec()];
        // the temporal bias feeds a batch norm, which removes it: its gradient is rounding
        let (dbt, dwt) = (tape.grad(bt).unwrap(), tape.grad(wt).unwrap());
        let (small, scale) = (max_abs(dbt), max_abs(dwt));
        assert!(small <= 1e-4 * scale, "{small} against {scale}");
        for id in [x, wt, g1, b1, wm, token, s] {
            out.push(tape.grad(id).unwrap().to_vec());
        }
        out
    })
}

#[test]
fn a_chain_split_over_threads_agrees_with_one_thread() {
    let (one, three) = (chain(1), chain(3));
    for (i, (a, b)) in one.iter().zip(&three).enumerate() {
        assert_scaled_close(&format!("chain output {i}"), b, a, 1e-5);
    }
}

#[test]
fn attention_dropout_draws_the_masks_of_rng_dropout() {
    use rand::SeedableRng;
    let (b, l, heads, dh) = (2, 5, 2, 3);
    let width = heads * dh;
    let mut tape = Tape::new();
    let q = tape
        .parameter(&[b, l, width], &seeded_uniform(b * l * width, 11, 2.0))
        .unwrap();
    let k = tape
        .parameter(&[b, l, width], &seeded_uniform(b * l * width, 12, 2.0))
        .unwrap();
    let v = tape
        .parameter(&[b, l, width], &seeded_uniform(b * l * width, 13, 1.0))
        .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let dropped = tape
        .attention_dropout(q, k, v, heads, 0.4, Some(&mut rng))
        .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let ones = Tensor::ones((b, heads, l, l), candle_core::DType::F32, &Device::Cpu).unwrap();
    let mask = brainrecon_nn::rng::dropout(&ones, 0.4, &mut rng)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let masked = tape.attention_masked(q, k, v, heads, mask).unwrap();
    assert_eq!(tape.value(dropped), tape.value(masked));
    let plain = tape.attention_dropout(q, k, v, heads, 0.4, None).unwrap();
    assert_ne!(tape.value(dropped), tape.value(plain));
}
