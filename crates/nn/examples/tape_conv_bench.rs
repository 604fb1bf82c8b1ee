//! Times one convolution's forward and backward pass (3×3, stride 1, padding 1, with bias) on
//! the training tape and on candle's autograd over the crate's im2col convolution, on the same
//! inputs; `tools/bench/tape_conv.sh` runs it beside PyTorch (`tools/bench/tape_conv_anchor.py`).
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run -p brainrecon-nn --example tape_conv_bench -- [B C O HW STEPS]
//! ```
//! Prints one JSON line per engine: `{"engine", "threads", "shape", "ms_min", "ms_median"}`.
//! `BENCH_ENGINES=tape` (or `candle`) runs one engine only (for a profile).
//! The tape back-propagates the upstream gradient `g` straight from the output
//! (`backward_from`); candle differentiates `Σ y ⊙ g` (it has no other entry), which adds a
//! product and a sum to its side.

use std::time::Instant;

use brainrecon_nn::conv::conv2d;
use brainrecon_nn::tape::Tape;
use candle_core::{Device, Tensor, Var};

fn wave(n: usize, phase: f32, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (i as f32 * 0.7311 + phase).sin() * scale)
        .collect()
}

/// Min and median of `steps` timed runs of `step` after 3 warm-up runs, in ms.
fn time(steps: usize, mut step: impl FnMut()) -> (f64, f64) {
    for _ in 0..3 {
        step();
    }
    let mut ms: Vec<f64> = (0..steps)
        .map(|_| {
            let t = Instant::now();
            step();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (ms[0], ms[ms.len() / 2])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let [b, c, o, hw, steps] = match args[..] {
        [] => [8, 64, 64, 32, 20],
        [b, c, o, hw, steps] => [b, c, o, hw, steps],
        _ => return Err("arguments: B C O HW STEPS".into()),
    };
    let (x, w, bias) = (
        wave(b * c * hw * hw, 0.3, 1.0),
        wave(o * c * 9, 1.1, 0.05),
        wave(o, 2.0, 0.1),
    );
    let g = wave(b * o * hw * hw, 0.7, 1.0);
    let threads = rayon::current_num_threads();
    let shape = format!("[{b}, {c}, {hw}, {hw}] -> [{b}, {o}, {hw}, {hw}]");
    let report = |engine: &str, (min, median): (f64, f64)| {
        println!(
            "{{\"engine\": \"{engine}\", \"threads\": {threads}, \"shape\": \"{shape}\", \
             \"ms_min\": {min:.3}, \"ms_median\": {median:.3}}}"
        );
    };

    let engines = std::env::var("BENCH_ENGINES").unwrap_or_else(|_| "tape candle".into());
    let mut tape = Tape::new();
    let mut check = 0f32;
    if !engines.contains("tape") {
        return Ok(());
    }
    report(
        "tape",
        time(steps, || {
            tape.clear();
            let xn = tape.parameter(&[b, c, hw, hw], &x).unwrap();
            let wn = tape.parameter(&[o, c, 3, 3], &w).unwrap();
            let bn = tape.parameter(&[o], &bias).unwrap();
            let y = tape.conv2d(xn, wn, Some(bn), 1, 1).unwrap();
            tape.backward_from(y, &g).unwrap();
            check = tape.grad(wn).unwrap()[0];
        }),
    );

    if !engines.contains("candle") {
        return Ok(());
    }
    let dev = Device::Cpu;
    let xv = Var::from_tensor(&Tensor::from_slice(&x, (b, c, hw, hw), &dev)?)?;
    let wv = Var::from_tensor(&Tensor::from_slice(&w, (o, c, 3, 3), &dev)?)?;
    let bv = Var::from_tensor(&Tensor::from_slice(&bias, (1, o, 1, 1), &dev)?)?;
    let gt = Tensor::from_slice(&g, (b, o, hw, hw), &dev)?;
    let mut candle_check = 0f32;
    report(
        "candle",
        time(steps, || {
            let y = conv2d(xv.as_tensor(), wv.as_tensor(), 1, 1)
                .and_then(|y| y.broadcast_add(bv.as_tensor()))
                .unwrap();
            let grads = (y * &gt).unwrap().sum_all().unwrap().backward().unwrap();
            let dw = grads.get(wv.as_tensor()).unwrap();
            candle_check = dw
                .flatten_all()
                .unwrap()
                .get(0)
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(grads.get(xv.as_tensor()).is_some());
        }),
    );
    // the two engines computed the same gradient
    let rel = (check - candle_check).abs() / candle_check.abs().max(1e-6);
    if rel > 1e-3 {
        return Err(format!("dw[0]: tape {check}, candle {candle_check}").into());
    }
    Ok(())
}
