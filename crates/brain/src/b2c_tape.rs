//! The B2C encoder's forward on the project's own tape ([`brainrecon_nn::tape`]): the same
//! function as [`BrainToContextEncoder::forward`], with the same dropout masks drawn from the
//! same stream in the same order, so a trainer differentiates it (and the U-Net it conditions)
//! in one backward pass instead of through candle's autograd.

use crate::b2c::{group_summary, BrainToContextEncoder};
use crate::window::tape::{block, dropped, Bound};
use brainrecon_nn::tape::{NodeId, Tape};
use brainrecon_nn::{ModelError, Result};
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;

/// The encoder's forward recorded on a tape by [`encoder_forward_on_tape`].
#[derive(Debug)]
pub struct EncoderOnTape {
    /// The context `[B, T, D]`.
    pub context: NodeId,
    /// Every encoder tensor beside its node, in the order the forward reads them; after
    /// [`Tape::backward`] each node's [`Tape::grad`] is the tensor's gradient (for
    /// [`Tape::grad_store`]).
    pub params: Vec<(Tensor, NodeId)>,
}

/// Records `encoder`'s forward on `tape` (appended to what is recorded; clear the tape first
/// for a new step): betas `[B, V]` (columns in group order, a constant) → the context node
/// `[B, T, D]`. Dropout masks come from `rng` in the order
/// [`BrainToContextEncoder::forward`] draws them (after the position embedding, then in each
/// block after the attention's output projection and after the feed-forward's GELU); `None`
/// runs without dropout. Errors: betas that are not `[B, V]` with V the encoder's voxels.
pub fn encoder_forward_on_tape(
    encoder: &BrainToContextEncoder,
    tape: &mut Tape,
    betas: &Tensor,
    mut rng: Option<&mut ChaCha8Rng>,
) -> Result<EncoderOnTape> {
    let config = &encoder.config;
    let (b, v) = betas.dims2()?;
    if v != config.num_voxels() {
        return Err(ModelError::Invalid(format!(
            "B2C encoder: betas have {v} columns, the encoder expects {} ({})",
            config.num_voxels(),
            group_summary(config)
        )));
    }
    let d = config.hidden_size;
    let values = betas.flatten_all()?.to_vec1::<f32>()?;
    let mut bound = Bound::new("B2C encoder");
    // Each group's columns enter as their own constant [B, V_g]: no gradient flows into betas.
    let mut tokens = Vec::with_capacity(config.groups.len());
    let mut offset = 0;
    for (group, proj) in config.groups.iter().zip(&encoder.proj_in) {
        let columns: Vec<f32> = values
            .chunks_exact(v)
            .flat_map(|row| &row[offset..offset + group.voxels])
            .copied()
            .collect();
        let x = tape.input(&[b, group.voxels], &columns)?;
        let projected = bound.linear(tape, proj, x)?;
        tape.reshape(projected, &[b, group.tokens, d])?;
        tokens.push(projected);
        offset += group.voxels;
    }
    let x = if tokens.len() == 1 {
        tokens[0]
    } else {
        tape.concat_channels(&tokens)?
    };
    let t = config.num_tokens();
    let position = bound.leaf(tape, &encoder.position_embedding)?;
    let x = tape.add_table(x, position, [b, t, 1, d])?;
    let mut x = dropped(tape, x, config.dropout, &mut rng);
    for blk in &encoder.transformer_blocks {
        x = block(tape, &mut bound, blk, x, &mut rng)?;
    }
    let normed = bound.layer_norm(tape, &encoder.norm_out, x)?;
    let context = bound.linear(tape, &encoder.proj_out, normed)?;
    Ok(EncoderOnTape {
        context,
        params: bound.params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::b2c::{BrainToContextConfig, VoxelGroup};
    use brainrecon_nn::init::init_parameters;
    use brainrecon_nn::rng::dropout_stream;
    use candle_core::{DType, Device};

    fn config(groups: &[(usize, usize)], dropout: f64) -> BrainToContextConfig {
        let groups = groups
            .iter()
            .enumerate()
            .map(|(i, &(voxels, tokens))| VoxelGroup {
                name: format!("g{i}"),
                voxels,
                tokens,
            })
            .collect();
        let mut c = BrainToContextConfig::paper(groups, 16);
        (c.num_layers, c.num_attention_heads, c.intermediate_size) = (2, 2, 32);
        c.dropout = dropout;
        c
    }

    /// Largest |a − b| over the largest |b| (at least 1).
    fn relative_gap(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    /// The context and every parameter's gradient (for a fixed upstream gradient) equal
    /// candle's autograd through [`BrainToContextEncoder::forward`], with dropout on (the
    /// same masks from the same stream), for three groups and for one.
    fn check_against_candle(groups: &[(usize, usize)]) {
        let dev = Device::Cpu;
        let cfg = config(groups, 0.2);
        let (encoder, params) = init_parameters(
            |vb| BrainToContextEncoder::new(vb, &cfg),
            3,
            DType::F32,
            &dev,
        )
        .unwrap();
        let (b, v) = (3, cfg.num_voxels());
        // rows of different scales: unit, large, and a constant row
        let betas: Vec<f32> = (0..b * v)
            .map(|i| match i / v {
                0 => ((i * 37 % 11) as f32 - 5.0) / 3.0,
                1 => ((i * 13 % 7) as f32 - 3.0) * 10.0,
                _ => 0.5,
            })
            .collect();
        let betas = Tensor::from_vec(betas, (b, v), &dev).unwrap();
        let context = encoder
            .forward(&betas, Some(&mut dropout_stream(5, 1)))
            .unwrap();
        let upstream: Vec<f32> = (0..context.elem_count())
            .map(|i| ((i * 29 % 17) as f32 - 8.0) / 8.0)
            .collect();
        let weight = Tensor::from_slice(&upstream, context.dims(), &dev).unwrap();
        let grads = (context.clone() * weight)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let expected = context.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut tape = Tape::new();
                let on_tape = encoder_forward_on_tape(
                    &encoder,
                    &mut tape,
                    &betas,
                    Some(&mut dropout_stream(5, 1)),
                )
                .unwrap();
                assert_eq!(tape.shape(on_tape.context), context.dims());
                let gap = relative_gap(tape.value(on_tape.context), &expected);
                assert!(gap < 1e-5, "{threads} threads: context off by {gap}");
                tape.backward_from(on_tape.context, &upstream).unwrap();
                let mut checked = 0;
                for (name, var) in params.vars() {
                    let (_, node) = on_tape
                        .params
                        .iter()
                        .find(|(t, _)| t.id() == var.as_tensor().id())
                        .unwrap_or_else(|| panic!("{name} is not on the tape"));
                    let theirs = grads.get(var.as_tensor()).unwrap();
                    let theirs = theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                    let ours = tape.grad(*node).unwrap();
                    let gap = relative_gap(ours, &theirs);
                    assert!(gap < 1e-4, "{threads} threads: grad {name} off by {gap}");
                    checked += 1;
                }
                assert_eq!(checked, on_tape.params.len());
            });
        }
    }

    #[test]
    fn three_groups_equal_candle_with_dropout() {
        check_against_candle(&[(12, 2), (20, 3), (8, 3)]);
    }

    #[test]
    fn one_group_equals_candle_with_dropout() {
        check_against_candle(&[(24, 5)]);
    }

    #[test]
    fn wrong_betas_width_is_refused() {
        let cfg = config(&[(4, 2)], 0.0);
        let (encoder, _) = init_parameters(
            |vb| BrainToContextEncoder::new(vb, &cfg),
            1,
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        let betas = Tensor::zeros((2, 5), DType::F32, &Device::Cpu).unwrap();
        let err = encoder_forward_on_tape(&encoder, &mut Tape::new(), &betas, None).unwrap_err();
        assert!(err.to_string().contains("expects 4"), "{err}");
    }
}
