//! NICE's and ATM's training steps on the project's tape against candle's autograd on the same
//! encoder, batch and dropout stream: the loss, the gradient of every trainable parameter and
//! the batch norms' running statistics after the step. Dropout is on (NICE's 0.5, ATM's 0.25
//! on the embedding, the attention weights and the residual branches), one trial has
//! magnitude 40, and the step runs in a pool of 2 threads with activations large enough to be
//! split. A second step on the tape's kept buffers gives the same bits.

use brainrecon_brain::atm::{atm_loss, AtmConfig};
use brainrecon_brain::nice::{nice_loss, unit_rows, NiceConfig};
use brainrecon_nn::params::Parameters;
use brainrecon_nn::rng::dropout_stream;
use brainrecon_nn::tape::Tape;
use brainrecon_testkit::seeded_uniform;
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};

/// A batch [B, C, T] whose second trial has magnitude 40, and images [B, D].
fn batch(b: usize, c: usize, t: usize, d: usize) -> (Tensor, Tensor) {
    let mut eeg = seeded_uniform(b * c * t, 1, 1.0);
    eeg[c * t..2 * c * t].iter_mut().for_each(|v| *v *= 40.0);
    let eeg = Tensor::from_vec(eeg, (b, c, t), &Device::Cpu).unwrap();
    let images = Tensor::from_vec(seeded_uniform(b * d, 2, 1.0), (b, d), &Device::Cpu).unwrap();
    (eeg, images)
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Compares every parameter's gradient (relative to the largest gradient of all, as the
/// biases before the batch norms have a gradient that is rounding on both sides) and every
/// running statistic (relative to its own largest value).
fn compare(candle: (&Parameters, &GradStore), tape: (&Parameters, &GradStore)) -> usize {
    let largest = candle
        .0
        .vars()
        .iter()
        .filter_map(|(_, v)| candle.1.get(v.as_tensor()))
        .map(|g| values(g).iter().fold(0f32, |m, x| m.max(x.abs())))
        .fold(0f32, f32::max);
    assert!(largest > 0.0);
    let mut compared = 0;
    for (name, var) in candle.0.vars() {
        let other = tape.0.get(&name).unwrap();
        let (a, b) = match (candle.1.get(var.as_tensor()), tape.1.get(other.as_tensor())) {
            (Some(a), Some(b)) => (values(a), values(b)),
            (None, None) => {
                let (a, b) = (values(var.as_tensor()), values(other.as_tensor()));
                let scale = a.iter().fold(1e-6f32, |m, x| m.max(x.abs()));
                let diff = a
                    .iter()
                    .zip(&b)
                    .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(diff <= 1e-5 * scale, "{name} (no gradient) off by {diff}");
                continue;
            }
            (a, b) => panic!(
                "{name}: gradient on candle {}, on the tape {}",
                a.is_some(),
                b.is_some()
            ),
        };
        let diff = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff <= 2e-4 * largest,
            "gradient of {name} off by {diff} (largest gradient {largest})"
        );
        compared += 1;
    }
    compared
}

fn in_two_threads<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(f)
}

fn nice_config() -> NiceConfig {
    let mut config = NiceConfig::new(7, 120, 16);
    (config.filters, config.temporal_kernel, config.pool_kernel) = (6, 9, 11);
    (config.pool_stride, config.emb_size) = (3, 5);
    config
}

#[test]
fn nice_step_on_the_tape_equals_candle_autograd() {
    in_two_threads(|| {
        let config = nice_config();
        let (b, d) = (12, config.proj_dim);
        let (eeg, images) = batch(b, config.channels, config.times, d);
        let (candle, candle_params) =
            brainrecon_brain::nice::initialise(&config, 5, &Device::Cpu).unwrap();
        let (taped, tape_params) =
            brainrecon_brain::nice::initialise(&config, 5, &Device::Cpu).unwrap();

        let mut rng = dropout_stream(3, 7);
        let embedded = candle.forward(&eeg, Some(&mut rng)).unwrap();
        let loss = nice_loss(&embedded, &images, &candle.logit_scale).unwrap();
        let grads = loss.backward().unwrap();
        let want = loss.to_scalar::<f32>().unwrap() as f64;

        let mut tape = Tape::new();
        let mut rng = dropout_stream(3, 7);
        let step = taped
            .train_step_on_tape(&mut tape, &eeg, &images, &mut rng)
            .unwrap();
        assert!(
            (step.loss - want).abs() < 1e-5 * want.abs(),
            "loss {} on the tape, {want} on candle",
            step.loss
        );
        let compared = compare((&candle_params, &grads), (&tape_params, &step.grads));
        assert_eq!(compared, 17, "every trainable parameter");

        let mut rng = dropout_stream(3, 7);
        let again = taped
            .train_step_on_tape(&mut tape, &eeg, &images, &mut rng)
            .unwrap();
        assert_eq!(again.loss, step.loss);
        for (_, var) in tape_params.vars() {
            if let Some(g) = step.grads.get(var.as_tensor()) {
                assert_eq!(values(g), values(again.grads.get(var.as_tensor()).unwrap()));
            }
        }
    });
}

#[test]
fn atm_step_on_the_tape_equals_candle_autograd() {
    in_two_threads(|| {
        let mut config = AtmConfig::new(6, 40, 16);
        (config.d_model, config.n_heads, config.d_ff) = (30, 3, 24);
        let mut conv = nice_config();
        (conv.channels, conv.times, conv.temporal_kernel) = (6, 30, 5);
        (conv.pool_kernel, conv.pool_stride) = (7, 2);
        config.conv = conv;
        assert!(config.problem().is_none(), "{:?}", config.problem());
        let (b, d) = (10, config.conv.proj_dim);
        let (eeg, images) = batch(b, config.channels, config.times, d);
        let (candle, candle_params) =
            brainrecon_brain::atm::initialise(&config, 6, &Device::Cpu).unwrap();
        let (taped, tape_params) =
            brainrecon_brain::atm::initialise(&config, 6, &Device::Cpu).unwrap();

        let mut rng = dropout_stream(4, 9);
        let embedded = candle.forward(&eeg, None, Some(&mut rng)).unwrap();
        let loss = atm_loss(
            &embedded,
            &unit_rows(&images).unwrap(),
            candle.logit_scale(),
        )
        .unwrap();
        let grads = loss.backward().unwrap();
        let want = loss.to_scalar::<f32>().unwrap() as f64;

        let mut tape = Tape::new();
        let mut rng = dropout_stream(4, 9);
        let step = taped
            .train_step_on_tape(&mut tape, &eeg, &images, &mut rng)
            .unwrap();
        assert!(
            (step.loss - want).abs() < 1e-5 * want.abs(),
            "loss {} on the tape, {want} on candle",
            step.loss
        );
        let compared = compare((&candle_params, &grads), (&tape_params, &step.grads));
        // all but the subject tokens and the four running statistics
        assert_eq!(compared + 5, tape_params.len(), "every trainable parameter");
        // the subject tokens take no part with the shared token: no gradient on either side
        let subjects = tape_params
            .get("encoder.enc_embedding.subject_embedding.subject_embedding.weight")
            .unwrap();
        assert!(step.grads.get(subjects.as_tensor()).is_none());
    });
}
