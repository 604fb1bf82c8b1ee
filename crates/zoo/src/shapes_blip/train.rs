//! shapes-blip: a small captioner in BLIP's architecture (ViT image tower, BERT text decoder
//! cross-attending to the image tokens), trained by the project on the synthetic scenes and
//! their captions, so the caption route runs on a machine without pretrained weights. It is
//! written as a transformers `BlipForConditionalGeneration` folder and loaded by the same code
//! as Salesforce's checkpoints.
//!
//! Training is BLIP's captioning loss only (image-text matching is not needed): the prompt
//! "a picture of " then the caption, cross-entropy on the caption's tokens and the final
//! `[SEP]`. Images enter as the published caption route feeds BLIP: resized, in [0, 1], not
//! normalised. Half of the batches show the decoder its image tokens shrunk toward the batch
//! mean and noised, as ridge predictions of them are (`token_shrinkage`), so that it still
//! names the scene from decoded tokens.
//!
//! A second stage (`decoder_steps`) trains the text decoder alone, the image tower frozen, on
//! tokens as ridge decodes them from the synthetic subject: a mix of each scene's own tokens
//! and their additive part over the scene attributes ([`super::attribute_tokens`]), shrunk
//! and noised. Without it the decoder reads the shape from details ridge does not recover.
//!
//! Scenes come from the same seeded generator as shapes-ldm's (never the held-out tenth);
//! every draw of step s is keyed by (seed, s), checkpoints every `checkpoint_every` steps, and
//! a rerun resumes to the same weights.

use super::attribute_tokens::{scene_tokens, AttributeTokens};
use super::config::CaptionerConfig;
use super::data::{
    caption_ids, captioner_vocab, training_batch, training_scenes, unit_pixels,
    write_tokenizer_files,
};
use super::quality::{captions_of_tokens, held_out_captions, scene_naming, SceneNaming};
use crate::chart::{smoothed, write_series_charts};
use crate::shapes_ldm::held_out_scenes;
use brainrecon_core::fs::write_json_atomic;
use brainrecon_language::blip::{lm_loss, BlipConfig, BlipForConditionalGeneration, TextInputs};
use brainrecon_nn::checkpoint::ResumableRun;
use brainrecon_nn::init::init_parameters;
use brainrecon_nn::Result;
use brainrecon_simulate::scene::Scene;
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// (caption ids, prompt length) of each sample of a batch (see [`caption_ids`]).
type CaptionRows = Vec<(Vec<u32>, usize)>;

/// What [`train_captioner`] did.
#[derive(Clone, Debug, Serialize)]
pub struct CaptionerSummary {
    /// The model folder written.
    pub out: PathBuf,
    /// Parameters of the model (elements).
    pub parameters: usize,
    /// Losses of the first stage.
    pub losses: Vec<f64>,
    /// Losses of the second stage.
    pub decoder_losses: Vec<f64>,
    /// The step the first stage resumed from.
    pub resumed_from: Option<usize>,
    /// Wall-clock time of the run, in seconds.
    pub seconds: f64,
    /// What the final model names in its captions of the held-out scenes.
    pub held_out: SceneNaming,
    /// The same from the additive part of their tokens (what ridge recovers); with a second
    /// stage only.
    pub held_out_additive: Option<SceneNaming>,
}

impl CaptionerSummary {
    /// The run in one line for people: time, size, final loss, held-out naming, folder.
    pub fn text(&self) -> String {
        format!(
            "trained shapes-blip in {:.0} s: {} parameters, final loss {:.4}, held-out scenes \
             named by colour and shape {:.0}% → {}",
            self.seconds,
            self.parameters,
            self.losses.last().copied().unwrap_or(f64::NAN),
            100.0 * self.held_out.colour_and_shape,
            self.out.display()
        )
    }
}

/// What [`train_captioner`] reports while it runs.
#[derive(Clone, Copy, Debug)]
pub enum CaptionerProgress {
    /// A step (1-based, both stages counted) of `total` finished with `loss`.
    Step {
        /// Steps done, 1-based.
        step: usize,
        /// Steps of both stages.
        total: usize,
        /// The step's loss.
        loss: f64,
    },
    /// The held-out naming at a checkpoint, after `step` steps, from the scenes' tokens and
    /// (second stage) from their additive part.
    HeldOut {
        /// Steps done.
        step: usize,
        /// Naming from the scenes' own tokens.
        naming: SceneNaming,
        /// Naming from their additive part (second stage only).
        additive: Option<SceneNaming>,
    },
}

/// Input ids [B, L] (padded with `[PAD]`) and transformers' labels [B, L]: the ids, with -100
/// on the prompt and the padding (not scored).
fn teacher_forcing(rows: &[(Vec<u32>, usize)], device: &Device) -> Result<(Tensor, Tensor)> {
    let l = rows.iter().map(|(ids, _)| ids.len()).max().unwrap_or(2);
    let mut inputs = vec![0u32; rows.len() * l];
    let mut labels = vec![-100i64; rows.len() * l];
    for (b, (ids, prompt)) in rows.iter().enumerate() {
        for (p, &id) in ids.iter().enumerate() {
            inputs[b * l + p] = id;
            if p >= *prompt {
                labels[b * l + p] = id as i64;
            }
        }
    }
    Ok((
        Tensor::from_vec(inputs, (rows.len(), l), device)?,
        Tensor::from_vec(labels, (rows.len(), l), device)?,
    ))
}

/// Image tokens [B, N, D] shrunk toward their batch mean by a factor in [0.3, 1] and noised
/// with up to 0.3 of their standard deviation (per sample), as ridge predictions are.
fn shrink_tokens(tokens: &Tensor, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let (b, n, d) = tokens.dims3()?;
    let mean = tokens.mean_keepdim(0)?;
    let std = tokens
        .broadcast_sub(&mean)?
        .sqr()?
        .mean_all()?
        .sqrt()?
        .to_scalar::<f32>()?;
    let mut scale = Vec::with_capacity(b);
    let mut noise = Vec::with_capacity(b * n * d);
    for _ in 0..b {
        scale.push(rng.gen_range(0.3f32..1.0));
        let sigma = rng.gen_range(0.0f32..0.3) * std;
        noise.extend((0..n * d).map(|_| sigma * rng.sample::<f32, _>(rand_distr::StandardNormal)));
    }
    let scale = Tensor::from_vec(scale, (b, 1, 1), tokens.device())?;
    let centred = tokens.broadcast_sub(&mean)?.broadcast_mul(&scale)?;
    let noise = Tensor::from_vec(noise, (b, n, d), tokens.device())?;
    Ok((centred.broadcast_add(&mean)? + noise)?)
}

/// Trains shapes-blip into `out` (a transformers folder; `out/.train/` holds checkpoints).
/// `progress` hears every step and the held-out naming at every checkpoint.
pub fn train_captioner(
    out: &Path,
    config: &CaptionerConfig,
    seed: u64,
    device: &Device,
    progress: &mut dyn FnMut(CaptionerProgress),
) -> Result<CaptionerSummary> {
    config.check()?;
    let started = std::time::Instant::now();
    let tokens = captioner_vocab();
    let index: HashMap<&str, u32> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i as u32))
        .collect();
    let blip_json = config.blip_config_json(&tokens);
    let blip = BlipConfig::from_value(&blip_json, &out.join("config.json"))?;
    let (model, params) = init_parameters(
        |vb| BlipForConditionalGeneration::new(vb, &blip),
        seed,
        DType::F32,
        device,
    )?;
    let mut resumed = Vec::new();
    let mut run = ResumableRun::resume(
        "captioner",
        &out.join(".train"),
        params,
        (config.lr, config.steps, config.checkpoint_every),
        &mut resumed,
    )?;
    let total = config.steps + config.decoder_steps;
    for step in run.start..config.steps {
        let (images, rows) = training_batch(config, seed, step, &index);
        let pixels = unit_pixels(&images, device)?;
        let mut image_tokens = model.vision_model.forward(&pixels)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5A1E_0000 ^ step as u64);
        if rng.gen_bool(config.token_shrinkage) {
            image_tokens = shrink_tokens(&image_tokens, &mut rng)?;
        }
        let value = run.step(&caption_loss(&model, &image_tokens, &rows, device)?, step)?;
        progress(CaptionerProgress::Step {
            step: step + 1,
            total,
            loss: value,
        });
        if (step + 1) % config.checkpoint_every == 0 && step + 1 < total {
            let naming = scene_naming(&held_out_captions(&model, &tokens, device)?);
            progress(CaptionerProgress::HeldOut {
                step: step + 1,
                naming,
                additive: None,
            });
        }
    }
    let decoder_run = if config.decoder_steps > 0 {
        let stage = ResumableRun::resume(
            "decoder",
            &out.join(".train"),
            run.params.clone(),
            (
                config.decoder_lr,
                config.decoder_steps,
                config.checkpoint_every,
            ),
            &mut Vec::new(),
        )?;
        Some(train_decoder_on_ridge_like_tokens(
            (&model, stage),
            (config, seed),
            (&tokens, &index),
            device,
            progress,
        )?)
    } else {
        None
    };
    let held_out = scene_naming(&held_out_captions(&model, &tokens, device)?);
    let held_out_additive = match &decoder_run {
        Some((_, attributes)) => Some(additive_naming(&model, attributes, &tokens, device)?),
        None => None,
    };
    progress(CaptionerProgress::HeldOut {
        step: total,
        naming: held_out,
        additive: held_out_additive,
    });
    let decoder_losses = decoder_run
        .as_ref()
        .map(|(stage, _)| stage.losses.clone())
        .unwrap_or_default();
    let record = TrainingRecord {
        config,
        seed,
        held_out,
        held_out_additive,
        losses: (&run.losses, &decoder_losses),
    };
    write_folder(out, &blip_json, &tokens, &run, &record)?;
    Ok(CaptionerSummary {
        out: out.to_path_buf(),
        parameters: run.params.count_elements(),
        losses: run.losses.clone(),
        decoder_losses,
        resumed_from: resumed.first().map(|(_, step)| *step),
        seconds: started.elapsed().as_secs_f64(),
        held_out,
        held_out_additive,
    })
}

/// BLIP's captioning loss of the text decoder on `image_tokens` [B, N, D] for `rows`.
fn caption_loss(
    model: &BlipForConditionalGeneration,
    image_tokens: &Tensor,
    rows: &[(Vec<u32>, usize)],
    device: &Device,
) -> Result<Tensor> {
    let (inputs, labels) = teacher_forcing(rows, device)?;
    let text = TextInputs {
        encoder_hidden_states: Some(image_tokens),
        ..Default::default()
    };
    let logits = model.text_decoder.forward(&inputs, &text)?.logits;
    lm_loss(&logits, &labels, 0.0)
}

/// The second stage: the text decoder alone (the image tower gets no gradient, so AdamW
/// leaves it as the first stage left it) on [`ridge_like_batch`]es. Returns the finished run
/// and the additive model of the training scenes' tokens.
fn train_decoder_on_ridge_like_tokens(
    (model, mut stage): (&BlipForConditionalGeneration, ResumableRun),
    (config, seed): (&CaptionerConfig, u64),
    (tokens, index): (&[String], &HashMap<&str, u32>),
    device: &Device,
    progress: &mut dyn FnMut(CaptionerProgress),
) -> Result<(ResumableRun, AttributeTokens)> {
    let scenes = training_scenes();
    let own = scene_tokens(model, &scenes, device)?;
    let attributes = AttributeTokens::of_tokens(&scenes, &own)?;
    let additive = attributes.predict_batch(&scenes, device)?;
    let total = config.steps + config.decoder_steps;
    for step in stage.start..config.decoder_steps {
        let (image_tokens, rows) =
            ridge_like_batch((&own, &additive, &scenes), config, seed, step, index)?;
        let loss = caption_loss(model, &image_tokens, &rows, device)?;
        let value = stage.step(&loss, step)?;
        let done = config.steps + step + 1;
        progress(CaptionerProgress::Step {
            step: done,
            total,
            loss: value,
        });
        if (step + 1) % config.checkpoint_every == 0 && done < total {
            let naming = scene_naming(&held_out_captions(model, tokens, device)?);
            let additive = Some(additive_naming(model, &attributes, tokens, device)?);
            progress(CaptionerProgress::HeldOut {
                step: done,
                naming,
                additive,
            });
        }
    }
    Ok((stage, attributes))
}

/// The held-out naming from the additive part of the held-out scenes' tokens.
fn additive_naming(
    model: &BlipForConditionalGeneration,
    attributes: &AttributeTokens,
    tokens: &[String],
    device: &Device,
) -> Result<SceneNaming> {
    let image_tokens = attributes.predict_batch(&held_out_scenes(), device)?;
    Ok(scene_naming(&captions_of_tokens(
        model,
        tokens,
        &image_tokens,
    )?))
}

/// A batch of the second stage: per sample a training scene, one of its captions and the
/// tokens `λ·own + (1 − λ)·additive` (λ = 1 for a quarter of the samples, else uniform in
/// [0, 0.6]); then, for `token_shrinkage` of the batches, shrunk and noised. `own` and
/// `additive` are [S, N, D] in `scenes` order.
fn ridge_like_batch(
    (own, additive, scenes): (&Tensor, &Tensor, &[Scene]),
    config: &CaptionerConfig,
    seed: u64,
    step: usize,
    index: &HashMap<&str, u32>,
) -> Result<(Tensor, CaptionRows)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xDEC0_0000 ^ step as u64);
    let mut picked = Vec::with_capacity(config.batch);
    let mut weights = Vec::with_capacity(config.batch);
    let mut rows = Vec::with_capacity(config.batch);
    for _ in 0..config.batch {
        let i = rng.gen_range(0..scenes.len());
        let captions = scenes[i].captions(&mut rng);
        rows.push(caption_ids(
            &captions[rng.gen_range(0..captions.len())],
            index,
        ));
        picked.push(i as u32);
        weights.push(if rng.gen_bool(0.25) {
            1.0f32
        } else {
            rng.gen_range(0.0f32..0.6)
        });
    }
    let device = own.device();
    let picked = Tensor::from_vec(picked, config.batch, device)?;
    let lambda = Tensor::from_vec(weights, (config.batch, 1, 1), device)?;
    let own = own.index_select(&picked, 0)?;
    let additive = additive.index_select(&picked, 0)?;
    let mut tokens = (own.broadcast_mul(&lambda)? + additive.broadcast_mul(&(1.0 - lambda)?)?)?;
    if rng.gen_bool(config.token_shrinkage) {
        tokens = shrink_tokens(&tokens, &mut rng)?;
    }
    Ok((tokens, rows))
}

/// What training.json records besides the model.
struct TrainingRecord<'a> {
    config: &'a CaptionerConfig,
    seed: u64,
    held_out: SceneNaming,
    held_out_additive: Option<SceneNaming>,
    /// First stage, second stage.
    losses: (&'a [f64], &'a [f64]),
}

/// The transformers folder: config.json, model.safetensors, the tokenizer files, and
/// training.json (settings, seed, losses, held-out naming).
fn write_folder(
    out: &Path,
    blip_json: &serde_json::Value,
    tokens: &[String],
    run: &ResumableRun,
    record: &TrainingRecord,
) -> Result<()> {
    write_json_atomic(&out.join("config.json"), blip_json)?;
    let (losses, decoder_losses) = record.losses;
    // Beside the model, not in it: the embedded folder keeps only the model's files. One
    // curve: the second stage's steps follow the first's.
    let both: Vec<f64> = losses.iter().chain(decoder_losses).copied().collect();
    let title = if decoder_losses.is_empty() {
        "shapes-blip training loss (smoothed)".to_string()
    } else {
        format!(
            "shapes-blip training loss (smoothed; the second stage from step {})",
            losses.len()
        )
    };
    write_series_charts(
        &out.join(".train"),
        &title,
        &vec![("cross-entropy", smoothed(&both))],
    )?;
    run.params.save_safetensors(out.join("model.safetensors"))?;
    write_tokenizer_files(out, tokens)?;
    write_json_atomic(
        &out.join(TRAINING_RECORD),
        &serde_json::json!({
            "command": record.config.command(out, record.seed),
            "seed": record.seed,
            "config": record.config,
            "held_out_naming": record.held_out,
            "held_out_naming_additive": record.held_out_additive,
            "losses": losses,
            "decoder_losses": decoder_losses,
        }),
    )?;
    Ok(())
}

/// The training record written next to the model (not part of the model's files).
pub const TRAINING_RECORD: &str = "training.json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teacher_forcing_scores_the_caption_and_sep_only() {
        let tokens = captioner_vocab();
        let index: HashMap<&str, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i as u32))
            .collect();
        let (ids, prompt) = caption_ids("a red circle", &index);
        assert_eq!(prompt, 4, "[DEC] a picture of");
        assert_eq!(ids.len(), 4 + 3 + 1);
        assert_eq!(*ids.last().unwrap(), 102);
        let (short, short_prompt) = caption_ids("a disc", &index);
        let rows = vec![(ids.clone(), prompt), (short, short_prompt)];
        let (inputs, labels) = teacher_forcing(&rows, &Device::Cpu).unwrap();
        assert_eq!(inputs.dims(), &[2, 8]);
        let labels = labels.to_vec2::<i64>().unwrap();
        assert_eq!(&labels[0][..4], &[-100; 4], "the prompt is not scored");
        assert_eq!(labels[0][4], index["a"] as i64);
        assert_eq!(labels[0][7], 102);
        assert_eq!(labels[1][7], -100, "padding is not scored");
        assert_eq!(
            inputs.to_vec2::<u32>().unwrap()[1][7],
            0,
            "padded with [PAD]"
        );
    }
}
