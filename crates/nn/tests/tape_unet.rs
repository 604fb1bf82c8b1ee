//! The tape's attention for narrow heads (`Tape::attention_narrow_heads`, the U-Net's) against
//! PyTorch, on the goldens of `tools/fixtures/tape_gradients.py` that `Tape::attention` is
//! tested on (two heads of 8 with scores up to ±60; cross-attention of 11 queries on a
//! 77-token context through the k/v linears, the context's gradient written then added), and
//! against `Tape::attention` on shapes-ldm's shape (32 heads of 2, 64 queries, self- and
//! cross-attention) with the output's gradient reaching q, k and v; in pools of 1 and 3
//! threads.

mod common;

use brainrecon_nn::tape::{NodeId, Tape};
use common::tape::{assert_scaled_close, in_pools, Fixture};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn fixture() -> Fixture {
    Fixture::load("tape_gradients.safetensors")
}

fn leaf(tape: &mut Tape, f: &Fixture, key: &str) -> NodeId {
    tape.parameter(&f.shape(key), &f.values(key)).unwrap()
}

#[test]
fn narrow_heads_attention_matches_pytorch_with_peaked_scores() {
    let f = fixture();
    in_pools(|| {
        let mut tape = Tape::new();
        let [q, k, v] = ["q", "k", "v"].map(|key| leaf(&mut tape, &f, &format!("attention.{key}")));
        let y = tape.attention_narrow_heads(q, k, v, 2).unwrap();
        assert_scaled_close("attention.y", tape.value(y), &f.values("attention.y"), 1e-4);
        tape.backward_from(y, &f.values("attention.g")).unwrap();
        for (key, id) in [("q", q), ("k", k), ("v", v)] {
            let want = f.values(&format!("attention.d{key}"));
            assert_scaled_close(
                &format!("attention.d{key}"),
                tape.grad(id).unwrap(),
                &want,
                1e-4,
            );
        }
    });
}

#[test]
fn narrow_heads_cross_attention_matches_pytorch() {
    let f = fixture();
    in_pools(|| {
        let mut tape = Tape::new();
        let [q, context, wk, wv] = ["q", "context", "wk", "wv"]
            .map(|key| leaf(&mut tape, &f, &format!("cross_attention.{key}")));
        let k = tape.linear(context, wk, None).unwrap();
        let v = tape.linear(context, wv, None).unwrap();
        let y = tape.attention_narrow_heads(q, k, v, 2).unwrap();
        assert_eq!(tape.shape(y), [2, 11, 16]);
        let case = "cross_attention";
        assert_scaled_close("y", tape.value(y), &f.values(&format!("{case}.y")), 1e-5);
        tape.backward_from(y, &f.values(&format!("{case}.g")))
            .unwrap();
        for (key, id) in [("q", q), ("context", context), ("wk", wk), ("wv", wv)] {
            let want = f.values(&format!("{case}.d{key}"));
            assert_scaled_close(
                &format!("{case}.d{key}"),
                tape.grad(id).unwrap(),
                &want,
                1e-5,
            );
        }
    });
}

/// shapes-ldm's attention (32 heads of 2 on 8×8 maps; self-attention and cross-attention on
/// 16 tokens, batch 3 for uneven grains): the same values and gradients as `Tape::attention`;
/// a second step on the kept buffers gives the same bits.
#[test]
fn narrow_heads_agree_with_the_general_attention_on_shapes_ldm_sizes() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (b, heads, dh) = (3, 32, 2);
    let width = heads * dh;
    for lk in [64, 16] {
        let q: Vec<f32> = (0..b * 64 * width)
            .map(|_| rng.gen_range(-3.0..3.0))
            .collect();
        let k: Vec<f32> = (0..b * lk * width)
            .map(|_| rng.gen_range(-3.0..3.0))
            .collect();
        let v: Vec<f32> = (0..b * lk * width)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let g: Vec<f32> = (0..b * 64 * width)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let run = |narrow: bool, tape: &mut Tape| -> Vec<Vec<f32>> {
            tape.clear();
            let qn = tape.parameter(&[b, 64, width], &q).unwrap();
            let kn = tape.parameter(&[b, lk, width], &k).unwrap();
            let vn = tape.parameter(&[b, lk, width], &v).unwrap();
            let y = if narrow {
                tape.attention_narrow_heads(qn, kn, vn, heads).unwrap()
            } else {
                tape.attention(qn, kn, vn, heads).unwrap()
            };
            tape.backward_from(y, &g).unwrap();
            let mut out = vec![tape.value(y).to_vec()];
            out.extend([qn, kn, vn].map(|n| tape.grad(n).unwrap().to_vec()));
            out
        };
        let want = run(false, &mut Tape::new());
        in_pools(|| {
            let mut tape = Tape::new();
            let got = run(true, &mut tape);
            for (what, (a, w)) in ["y", "dq", "dk", "dv"].iter().zip(got.iter().zip(&want)) {
                assert_scaled_close(&format!("Lk {lk}: {what}"), a, w, 1e-5);
            }
            let again = run(true, &mut tape);
            assert_eq!(got, again, "Lk {lk}: the second step differs");
        });
    }
}

#[test]
fn narrow_heads_refuse_misfit_shapes() {
    let mut tape = Tape::new();
    let q = tape.input(&[1, 2, 6], &[0.0; 12]).unwrap();
    let k = tape.input(&[1, 3, 6], &[0.0; 18]).unwrap();
    let v = tape.input(&[1, 3, 4], &[0.0; 12]).unwrap();
    assert!(tape.attention_narrow_heads(q, k, k, 4).is_err());
    assert!(tape.attention_narrow_heads(q, k, v, 2).is_err());
    assert!(tape.attention_narrow_heads(q, k, k, 3).is_ok());
}
