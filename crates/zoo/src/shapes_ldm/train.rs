//! Training shapes-ldm, a small latent diffusion model in Stable Diffusion 1's architecture, trained by
//! the project on the synthetic scenes (a shape of some colour, size and position on a
//! background, with captions), so that a machine without pretrained weights still has a model
//! that draws what it is told. It is written as a diffusers folder and loaded by the same code
//! as SD 1.4.
//!
//! Training, in three stages, with the engine's own modules and AdamW:
//! 1. the AutoencoderKL: L1 reconstruction of a posterior sample (the shape's pixels weighted
//!    up) plus a small KL term; its `scaling_factor` is then set to 1 / std of the posterior
//!    means, as SD's was chosen;
//! 2. the decoder alone, with the encoder frozen, on the same L1: as Stability fine-tuned SD's
//!    decoder (sd-vae-ft-mse), it sharpens the images without moving the latent space, so the
//!    denoiser needs no retraining when this stage changes;
//! 3. the CLIP-style text encoder (over a word-level vocabulary of the captions) and the
//!    U-Net together, with the epsilon objective on SD's noise schedule; one caption in ten is
//!    replaced by the empty prompt, for classifier-free guidance.
//!
//! Scenes come from a seeded generator, one per (seed, index): the data never repeats in
//! order and never needs storing. Checkpoints are written atomically every
//! `checkpoint_every` steps; a rerun resumes from the newest one and, because every random draw
//! is keyed by the step, ends with the same weights as an uninterrupted run.

use std::path::{Path, PathBuf};

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use brainrecon_formats::image::RgbImage;
use brainrecon_simulate::scene::{Scene, N_SCENES};

use super::config::PriorConfig;
use super::data::{caption_words, held_out_ids, training_scene};
use brainrecon_diffusion::clip::{ids_tensor, ClipTextConfig, ClipTextModel};
pub use brainrecon_diffusion::prior::min_snr_weights;
use brainrecon_diffusion::scheduler::{NoiseSchedule, SchedulerConfig};
use brainrecon_diffusion::tokenizer::{word_level_bpe, write_tokenizer_folder, ClipTokenizer};
use brainrecon_diffusion::unet::{UNet2DConditionConfig, UNet2DConditionModel, WEIGHTS_FILE};
use brainrecon_diffusion::unet_tape::unet_forward_on_tape;
use brainrecon_diffusion::vae::{AutoencoderKL, AutoencoderKLConfig};
use brainrecon_nn::checkpoint::ResumableRun;
use brainrecon_nn::init::init_parameters;
pub use brainrecon_nn::optim::learning_rate;
use brainrecon_nn::params::Parameters;
use brainrecon_nn::rng::SeededNoise;
use brainrecon_nn::tape::{Tape, TrainEngine};
use brainrecon_nn::{ModelError, Result};

/// Images [B, 3, S, S] in [-1, 1] for RGB images of size S.
fn image_batch(images: &[RgbImage], device: &Device) -> Result<Tensor> {
    let s = images[0].height;
    let mut values = Vec::with_capacity(images.len() * 3 * s * s);
    for image in images {
        for c in 0..3 {
            for p in 0..s * s {
                values.push(image.pixels[p * 3 + c] as f32 / 127.5 - 1.0);
            }
        }
    }
    Ok(Tensor::from_vec(values, (images.len(), 3, s, s), device)?)
}

/// Sets the log-variance half of `quant_conv`'s bias to `logvar`.
///
/// With PyTorch's initialisation the posterior starts with a standard deviation near 1, as
/// wide as the latents themselves; with a KL weight of 1e-6 the encoder narrows it only
/// slowly, and meanwhile the decoder learns from latents whose fine detail is drowned in
/// sampled noise, and blurs. Starting narrow lets it learn the edges from the first step.
fn start_posterior_narrow(params: &Parameters, logvar: f64) -> Result<()> {
    let bias = params
        .get("quant_conv.bias")
        .ok_or_else(|| ModelError::Invalid("the autoencoder has no quant_conv.bias".to_string()))?;
    let n = bias.dim(0)?;
    let mut values = bias.as_tensor().to_vec1::<f32>()?;
    for v in &mut values[n / 2..] {
        *v = logvar as f32;
    }
    bias.set(&Tensor::from_vec(values, n, bias.device())?)?;
    Ok(())
}

/// Per-pixel weights [B, 1, S, S] of the autoencoder's L1, with mean 1 over the batch.
///
/// A shape covers 4–17% of its image, so a plain L1 is mostly about the background: the
/// decoder then learns the shape's outline early and its colour last (an experiment with
/// the plain L1 kept both colour and shape for 18 of the 96 held-out scenes after 2000 steps).
/// Weighting the shape's pixels up balances the two.
fn foreground_weights(scenes: &[Scene], config: &PriorConfig, device: &Device) -> Result<Tensor> {
    let s = config.image_size;
    let mut weights = Vec::with_capacity(scenes.len() * s * s);
    for scene in scenes {
        weights.extend(scene.coverage(s).into_iter().map(|a| {
            if a > 0.0 {
                1.0 + config.foreground_weight as f32
            } else {
                1.0
            }
        }));
    }
    let mean = weights.iter().map(|&w| w as f64).sum::<f64>() / weights.len() as f64;
    let weights: Vec<f32> = weights
        .into_iter()
        .map(|w| (w as f64 / mean) as f32)
        .collect();
    Ok(Tensor::from_vec(weights, (scenes.len(), 1, s, s), device)?)
}

/// Posterior mean and standard deviation of every scene, each [N_SCENES, 4, h, w], unscaled
/// and detached (the encoder is frozen after stage 1).
fn scene_posteriors(
    vae: &AutoencoderKL,
    image_size: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let mut means = Vec::new();
    let mut stds = Vec::new();
    let ids: Vec<usize> = (0..N_SCENES).collect();
    for chunk in ids.chunks(32) {
        let images: Vec<RgbImage> = chunk
            .iter()
            .map(|&id| Scene::from_id(id).render(image_size))
            .collect();
        let dist = vae.encode(&image_batch(&images, device)?)?;
        means.push(dist.mean.detach());
        stds.push(dist.std.detach());
    }
    Ok((Tensor::cat(&means, 0)?, Tensor::cat(&stds, 0)?))
}

/// Which stage reports progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Stage 1: the AutoencoderKL.
    Autoencoder,
    /// Stage 2: the decoder alone.
    Decoder,
    /// Stage 3: the text encoder and U-Net.
    Denoiser,
}

impl Stage {
    /// The stage's name in progress lines.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Autoencoder => "autoencoder",
            Stage::Decoder => "decoder",
            Stage::Denoiser => "denoiser",
        }
    }
}

/// What [`train_prior`] did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PriorSummary {
    /// The model folder written.
    pub out: PathBuf,
    /// Parameters of the AutoencoderKL (elements).
    pub vae_parameters: usize,
    /// Parameters of the text encoder (elements).
    pub text_encoder_parameters: usize,
    /// Parameters of the U-Net (elements).
    pub unet_parameters: usize,
    /// The VAE's `scaling_factor`: 1 / std of the posterior means of 64 probe scenes.
    pub scaling_factor: f64,
    /// Loss of every autoencoder step.
    pub vae_losses: Vec<f64>,
    /// Loss of every decoder-only step.
    pub decoder_losses: Vec<f64>,
    /// Loss of every denoiser step.
    pub unet_losses: Vec<f64>,
    /// (stage, step) of the checkpoints resumed from.
    pub resumed_from: Vec<(String, usize)>,
}

impl PriorSummary {
    /// The run in one line for people: its `seconds`, the three models' sizes, the VAE's
    /// scaling factor, each stage's final loss, the folder.
    pub fn text(&self, seconds: f64) -> String {
        let last = |losses: &[f64]| losses.last().copied().unwrap_or(f64::NAN);
        format!(
            "trained shapes-ldm in {seconds:.0} s: VAE {} parameters (scaling factor {:.4}), \
             text encoder {}, U-Net {}; final losses {:.4} / {:.4} / {:.4} → {}",
            self.vae_parameters,
            self.scaling_factor,
            self.text_encoder_parameters,
            self.unet_parameters,
            last(&self.vae_losses),
            last(&self.decoder_losses),
            last(&self.unet_losses),
            self.out.display()
        )
    }
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    Ok(brainrecon_core::fs::write_json_atomic(path, value)?)
}

/// Trains the model into `out` (a diffusers folder; `out/.train/` holds checkpoints).
/// `progress(stage, step, total, loss)` is called after every step.
pub fn train_prior(
    out: &Path,
    config: &PriorConfig,
    seed: u64,
    device: &Device,
    progress: &mut dyn FnMut(Stage, usize, usize, f64),
) -> Result<PriorSummary> {
    config.check()?;
    let work = out.join(".train");
    let mut resumed_from = Vec::new();

    // The tokenizer: every caption word is one token.
    let words = caption_words();
    let word_refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let (tokens, merges) = word_level_bpe(&word_refs);
    write_tokenizer_folder(&out.join("tokenizer"), &tokens, &merges, config.max_length)?;
    let tokenizer = ClipTokenizer::from_dir(&out.join("tokenizer"))?;

    // Stage 1: the autoencoder.
    let vae_config: AutoencoderKLConfig = serde_json::from_value(config.vae.clone())
        .map_err(|e| ModelError::Invalid(format!("VAE config: {e}")))?;
    let (vae, vae_params) = init_parameters(
        |vb| AutoencoderKL::new(vb, &vae_config),
        seed ^ 0x0001,
        DType::F32,
        device,
    )?;
    let mut vae_run = ResumableRun::resume(
        "vae",
        &work,
        vae_params,
        (config.vae_lr, config.vae_steps, config.checkpoint_every),
        &mut resumed_from,
    )?;
    if vae_run.start == 0 {
        start_posterior_narrow(&vae_run.params, config.initial_logvar)?;
    }
    for step in vae_run.start..config.vae_steps {
        let scenes: Vec<Scene> = (0..config.vae_batch)
            .map(|k| training_scene(seed, (step * config.vae_batch + k) as u64).0)
            .collect();
        let images: Vec<RgbImage> = scenes.iter().map(|s| s.render(config.image_size)).collect();
        let weights = foreground_weights(&scenes, config, device)?;
        let x = image_batch(&images, device)?;
        let dist = vae.encode(&x)?;
        let mut noise = SeededNoise::new(seed ^ 0xA000_0000 ^ step as u64);
        let eps = brainrecon_nn::rng::NoiseSource::gaussian(
            &mut noise,
            dist.mean.dims(),
            device,
            DType::F32,
        )?;
        let z = dist.sample(&eps)?;
        let recon = vae.decode(&z)?;
        let l1 = (&recon - &x)?.abs()?.broadcast_mul(&weights)?.mean_all()?;
        // KL(N(μ, σ²) ‖ N(0, 1)) per latent element, averaged.
        let kl = ((dist.mean.sqr()? + dist.logvar.exp()?)? - 1.0)?
            .sub(&dist.logvar)?
            .mean_all()?
            .affine(0.5, 0.0)?;
        let loss = (l1 + kl.affine(config.kl_weight, 0.0)?)?;
        let value = vae_run.step(&loss, step)?;
        progress(Stage::Autoencoder, step + 1, config.vae_steps, value);
    }

    // scaling_factor = 1 / std of posterior means over held-out-by-index scenes.
    let probe: Vec<RgbImage> = (0..64)
        .map(|k| {
            training_scene(seed ^ 0x5CA1E, k)
                .0
                .render(config.image_size)
        })
        .collect();
    let means = vae.encode(&image_batch(&probe, device)?)?.mean;
    let std = means.flatten_all()?.to_vec1::<f32>()?;
    let mean = std.iter().map(|&v| v as f64).sum::<f64>() / std.len() as f64;
    let var = std.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / std.len() as f64;
    let scaling_factor = 1.0 / var.sqrt().max(1e-6);
    // The encoder is final from here on, and there are only N_SCENES scenes: encode each once.
    let (scene_means, scene_stds) = scene_posteriors(&vae, config.image_size, device)?;

    // Stage 2: the decoder alone, on posterior samples of the frozen encoder.
    let decoder_params =
        Parameters::from_vars(vae_run.params.vars().into_iter().filter(|(name, _)| {
            name.starts_with("decoder.") || name.starts_with("post_quant_conv.")
        }))?;
    let mut decoder_run = ResumableRun::resume(
        "decoder",
        &work,
        decoder_params,
        (
            config.decoder_lr,
            config.decoder_steps,
            config.checkpoint_every,
        ),
        &mut resumed_from,
    )?;
    for step in decoder_run.start..config.decoder_steps {
        let scenes: Vec<Scene> = (0..config.decoder_batch)
            .map(|k| training_scene(seed ^ 0xDEC0, (step * config.decoder_batch + k) as u64).0)
            .collect();
        let ids = Tensor::new(
            scenes.iter().map(|s| s.id() as u32).collect::<Vec<_>>(),
            device,
        )?;
        let mean = scene_means.index_select(&ids, 0)?;
        let std = scene_stds.index_select(&ids, 0)?;
        let mut noise = SeededNoise::new(seed ^ 0xE000_0000 ^ step as u64);
        let eps =
            brainrecon_nn::rng::NoiseSource::gaussian(&mut noise, mean.dims(), device, DType::F32)?;
        let z = (mean + std.mul(&eps)?)?;
        let images: Vec<RgbImage> = scenes.iter().map(|s| s.render(config.image_size)).collect();
        let x = image_batch(&images, device)?;
        let weights = foreground_weights(&scenes, config, device)?;
        let loss = (vae.decode(&z)? - &x)?
            .abs()?
            .broadcast_mul(&weights)?
            .mean_all()?;
        let value = decoder_run.step(&loss, step)?;
        progress(Stage::Decoder, step + 1, config.decoder_steps, value);
    }
    let mut vae_json = config.vae.clone();
    vae_json["scaling_factor"] = json!(scaling_factor);
    write_json(&out.join("vae").join("config.json"), &vae_json)?;
    vae_run
        .params
        .save_safetensors(out.join("vae").join(WEIGHTS_FILE))?;

    // Stage 3: text encoder and U-Net together.
    let mut text_json = config.text_encoder.clone();
    text_json["vocab_size"] = json!(tokens.len());
    text_json["max_position_embeddings"] = json!(config.max_length);
    text_json["bos_token_id"] = json!(tokenizer.bos_id);
    text_json["eos_token_id"] = json!(tokenizer.eos_id);
    text_json["pad_token_id"] = json!(tokenizer.pad_id);
    let text_config: ClipTextConfig = serde_json::from_value(text_json.clone())
        .map_err(|e| ModelError::Invalid(format!("text encoder config: {e}")))?;
    let mut unet_json = config.unet.clone();
    unet_json["sample_size"] =
        json!(config.image_size >> (vae_config.block_out_channels.len() - 1));
    let unet_config = UNet2DConditionConfig::from_json_str(&unet_json.to_string())?;
    let ((text, unet), denoiser_params) = init_parameters(
        |vb| -> Result<(ClipTextModel, UNet2DConditionModel)> {
            let text = ClipTextModel::new(vb.pp("text_encoder").pp("text_model"), &text_config)?;
            let unet = UNet2DConditionModel::new(vb.pp("unet"), &unet_config)?;
            Ok((text, unet))
        },
        seed ^ 0x0002,
        DType::F32,
        device,
    )?;
    let schedule = NoiseSchedule::new(&SchedulerConfig::stable_diffusion())?;
    let n_train = schedule.num_train_timesteps();
    let mut denoiser_run = ResumableRun::resume(
        "denoiser",
        &work,
        denoiser_params,
        (config.unet_lr, config.unet_steps, config.checkpoint_every),
        &mut resumed_from,
    )?;
    let latent_table = scene_means.affine(scaling_factor, 0.0)?;
    // The tape differentiates the U-Net on the CPU (the text encoder stays on candle's
    // autograd, fed the context's gradient); other devices take candle's autograd.
    let mut tape = (config.engine == TrainEngine::Tape && device.is_cpu()).then(Tape::new);
    for step in denoiser_run.start..config.unet_steps {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xB000_0000 ^ step as u64);
        let mut scene_ids = Vec::with_capacity(config.unet_batch);
        let mut prompts = Vec::with_capacity(config.unet_batch);
        let mut timesteps = Vec::with_capacity(config.unet_batch);
        for k in 0..config.unet_batch {
            let index = (step * config.unet_batch + k) as u64;
            let (scene, captions) = training_scene(seed ^ 0xD1FF, index);
            scene_ids.push(scene.id() as u32);
            let caption = captions[rng.gen_range(0..captions.len())].clone();
            prompts.push(if rng.gen_bool(config.caption_dropout) {
                String::new()
            } else {
                caption
            });
            timesteps.push(rng.gen_range(0..n_train));
        }
        let latents = latent_table.index_select(&Tensor::new(scene_ids, device)?, 0)?;
        let mut noise = SeededNoise::new(seed ^ 0xC000_0000 ^ step as u64);
        let eps = brainrecon_nn::rng::NoiseSource::gaussian(
            &mut noise,
            latents.dims(),
            device,
            DType::F32,
        )?;
        let noisy = schedule.add_noise(&latents, &eps, &timesteps)?;
        let prompt_refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let batch = DenoiserBatch {
            ids: ids_tensor(&tokenizer.encode_batch(&prompt_refs)?, device)?,
            noisy,
            eps,
            timesteps: &timesteps,
            weights: min_snr_weights(&schedule.alphas_cumprod, &timesteps, config.snr_gamma),
        };
        let (value, grads) = denoiser_gradients(&text, &unet, tape.as_mut(), &batch)?;
        let value = denoiser_run.step_with_grads(value, grads, step)?;
        progress(Stage::Denoiser, step + 1, config.unet_steps, value);
    }

    write_denoiser(out, &denoiser_run.params, &text_json, &unet_json)?;
    write_json(
        &out.join("scheduler").join("scheduler_config.json"),
        &json!({
            "_class_name": "DDIMScheduler",
            "beta_start": 0.00085,
            "beta_end": 0.012,
            "beta_schedule": "scaled_linear",
            "num_train_timesteps": n_train,
            "clip_sample": false,
            "set_alpha_to_one": false,
            "steps_offset": 1,
            "prediction_type": "epsilon",
        }),
    )?;
    write_json(
        &out.join("model_index.json"),
        &json!({
            "_class_name": "StableDiffusionPipeline",
            "_brainrecon_model": "shapes-ldm",
            "_brainrecon_seed": seed,
            "scheduler": ["diffusers", "DDIMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        }),
    )?;
    let summary = PriorSummary {
        out: out.to_path_buf(),
        vae_parameters: vae_run.params.count_elements(),
        text_encoder_parameters: denoiser_run
            .params
            .with_prefix("text_encoder.")
            .count_elements(),
        unet_parameters: denoiser_run.params.with_prefix("unet.").count_elements(),
        scaling_factor,
        vae_losses: vae_run.losses,
        decoder_losses: decoder_run.losses,
        unet_losses: denoiser_run.losses,
        resumed_from,
    };
    // The record that ships with the weights: settings and every step's loss.
    let mut record = json!({
        "seed": seed,
        "image_size": config.image_size,
        "max_length": config.max_length,
        "vae_steps": config.vae_steps,
        "decoder_steps": config.decoder_steps,
        "unet_steps": config.unet_steps,
        "vae_batch": config.vae_batch,
        "decoder_batch": config.decoder_batch,
        "unet_batch": config.unet_batch,
        "vae_lr": config.vae_lr,
        "decoder_lr": config.decoder_lr,
        "unet_lr": config.unet_lr,
        "kl_weight": config.kl_weight,
        "foreground_weight": config.foreground_weight,
        "initial_logvar": config.initial_logvar,
        "caption_dropout": config.caption_dropout,
        "snr_gamma": config.snr_gamma,
        "held_out_scene_ids": held_out_ids(),
        "vae_parameters": summary.vae_parameters,
        "text_encoder_parameters": summary.text_encoder_parameters,
        "unet_parameters": summary.unet_parameters,
        "scaling_factor": summary.scaling_factor,
        "vae_losses": summary.vae_losses,
        "decoder_losses": summary.decoder_losses,
        "unet_losses": summary.unet_losses,
    });
    if !config.preset.is_shipped() {
        record["preset"] = json!(config.preset);
    }
    write_json(&out.join(TRAINING_RECORD), &record)?;
    Ok(summary)
}

/// One denoiser step's inputs: noisy latents `noisy` [B, 4, h, w] of the noise `eps`, at
/// `timesteps` (one per row), the prompts' token ids `ids` [B, L], and each row's min-SNR
/// weight.
struct DenoiserBatch<'a> {
    noisy: Tensor,
    eps: Tensor,
    timesteps: &'a [usize],
    ids: Tensor,
    weights: Vec<f32>,
}

/// The denoiser's loss, `mean_b(weight_b · mean((unet(noisy, t, text(ids)) − eps)²))`, and the
/// gradient of every text-encoder and U-Net parameter: through candle's autograd (`tape`
/// `None`), or with the U-Net on `tape` and the text encoder on candle's autograd, which
/// receives the context's gradient from the tape.
fn denoiser_gradients(
    text: &ClipTextModel,
    unet: &UNet2DConditionModel,
    tape: Option<&mut Tape>,
    batch: &DenoiserBatch,
) -> Result<(f64, GradStore)> {
    let device = batch.noisy.device();
    let context = text.forward(&batch.ids)?;
    let Some(tape) = tape else {
        let t = Tensor::from_vec(
            batch
                .timesteps
                .iter()
                .map(|&t| t as f32)
                .collect::<Vec<_>>(),
            batch.timesteps.len(),
            device,
        )?;
        let predicted = unet.forward(&batch.noisy, &t, &context)?;
        let weights = Tensor::from_slice(&batch.weights, batch.weights.len(), device)?;
        let loss = (predicted - &batch.eps)?
            .sqr()?
            .flatten_from(1)?
            .mean(1)?
            .mul(&weights)?
            .mean_all()?;
        return Ok((loss.to_scalar::<f32>()? as f64, loss.backward()?));
    };
    tape.clear();
    let noisy = batch.noisy.flatten_all()?.to_vec1::<f32>()?;
    let sample = tape.input(batch.noisy.dims(), &noisy)?;
    let context_node = tape.parameter_of(&context)?;
    let timesteps: Vec<f32> = batch.timesteps.iter().map(|&t| t as f32).collect();
    let on = unet_forward_on_tape(unet, tape, sample, &timesteps, context_node, &|_| true)?;
    // The loss and its gradient with respect to the prediction, in f64.
    let eps = batch.eps.flatten_all()?.to_vec1::<f32>()?;
    let predicted = tape.value(on.output);
    let rows = batch.weights.len().max(1);
    let per_row = predicted.len() / rows;
    let mut loss = 0f64;
    let mut upstream = vec![0f32; predicted.len()];
    for (r, &w) in batch.weights.iter().enumerate() {
        let span = r * per_row..(r + 1) * per_row;
        let mut sum = 0f64;
        let coef = 2.0 * w as f64 / (per_row * rows) as f64;
        for ((u, &p), &e) in upstream[span.clone()]
            .iter_mut()
            .zip(&predicted[span.clone()])
            .zip(&eps[span])
        {
            let d = p as f64 - e as f64;
            sum += d * d;
            *u = (coef * d) as f32;
        }
        loss += w as f64 * sum / per_row as f64;
    }
    let loss = loss / rows as f64;
    tape.backward_from(on.output, &upstream)?;
    // The text encoder's gradients: candle's backward of Σ context ⊙ dcontext.
    let mut grads = match tape.grad(context_node) {
        Some(g) => {
            let g = Tensor::from_slice(g, context.dims(), device)?;
            (&context * &g)?.sum_all()?.backward()?
        }
        None => context.detach().sum_all()?.backward()?,
    };
    for (_, t, id) in &on.params {
        let g = match tape.grad(*id) {
            Some(g) => Tensor::from_slice(g, t.dims(), device)?,
            None => t.zeros_like()?,
        };
        grads.insert(t, g);
    }
    Ok((loss, grads))
}

/// File in the model folder with the training settings and losses.
pub const TRAINING_RECORD: &str = "training.json";

/// Splits the jointly trained parameters into `text_encoder/` and `unet/` folders, each file
/// through [`Parameters::save_safetensors`] (the project's atomic writer: a kill leaves only
/// temporary names that the next run's clean-up knows).
fn write_denoiser(
    out: &Path,
    params: &Parameters,
    text_json: &serde_json::Value,
    unet_json: &serde_json::Value,
) -> Result<()> {
    for (component, file, config) in [
        ("text_encoder", "model.safetensors", text_json),
        ("unet", WEIGHTS_FILE, unet_json),
    ] {
        let dir = out.join(component);
        params
            .with_prefix(&format!("{component}."))
            .save_safetensors(dir.join(file))?;
        write_json(&dir.join("config.json"), config)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_abs(v: &[f32]) -> f32 {
        v.iter().fold(0f32, |m, x| m.max(x.abs()))
    }

    /// The denoiser's step on the tape hands the optimiser the gradients candle's autograd
    /// does, for every text-encoder and U-Net parameter (the text encoder's through the
    /// context's gradient), and the same loss.
    #[test]
    fn the_tape_gives_the_optimiser_candles_gradients() {
        let config = PriorConfig::tiny();
        let device = Device::Cpu;
        let mut text_json = config.text_encoder.clone();
        text_json["vocab_size"] = json!(20);
        text_json["max_position_embeddings"] = json!(config.max_length);
        text_json["bos_token_id"] = json!(0);
        text_json["eos_token_id"] = json!(1);
        text_json["pad_token_id"] = json!(1);
        let text_config: ClipTextConfig = serde_json::from_value(text_json).unwrap();
        let mut unet_json = config.unet.clone();
        unet_json["sample_size"] = json!(8);
        let unet_config = UNet2DConditionConfig::from_json_str(&unet_json.to_string()).unwrap();
        let ((text, unet), params) = init_parameters(
            |vb| -> Result<(ClipTextModel, UNet2DConditionModel)> {
                let text =
                    ClipTextModel::new(vb.pp("text_encoder").pp("text_model"), &text_config)?;
                let unet = UNet2DConditionModel::new(vb.pp("unet"), &unet_config)?;
                Ok((text, unet))
            },
            5,
            DType::F32,
            &device,
        )
        .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let b = 3;
        let mut normal =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-2.0..2.0f32)).collect() };
        let noisy = Tensor::from_vec(normal(b * 4 * 64), (b, 4, 8, 8), &device).unwrap();
        let eps = Tensor::from_vec(normal(b * 4 * 64), (b, 4, 8, 8), &device).unwrap();
        let ids: Vec<Vec<u32>> = (0..b as u32)
            .map(|r| (0..16).map(|i| (r * 7 + i * 3) % 20).collect())
            .collect();
        let timesteps = [5, 500, 990];
        let schedule = NoiseSchedule::new(&SchedulerConfig::stable_diffusion()).unwrap();
        let batch = DenoiserBatch {
            noisy,
            eps,
            timesteps: &timesteps,
            ids: ids_tensor(&ids, &device).unwrap(),
            weights: min_snr_weights(&schedule.alphas_cumprod, &timesteps, 5.0),
        };
        let (loss_candle, candle) = denoiser_gradients(&text, &unet, None, &batch).unwrap();
        let mut tape = Tape::new();
        let (loss_tape, taped) = denoiser_gradients(&text, &unet, Some(&mut tape), &batch).unwrap();
        assert!(
            (loss_candle - loss_tape).abs() <= 1e-5 * loss_candle,
            "{loss_candle} vs {loss_tape}"
        );
        let grad = |store: &GradStore, var: &candle_core::Var| -> Vec<f32> {
            store
                .get(var.as_tensor())
                .expect("a gradient")
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let vars = params.vars();
        let largest = vars
            .iter()
            .fold(0f32, |m, (_, v)| m.max(max_abs(&grad(&candle, v))));
        assert!(largest > 1e-3);
        let text_params = vars
            .iter()
            .filter(|(n, _)| n.starts_with("text_encoder."))
            .count();
        assert!(text_params > 10);
        for (name, var) in &vars {
            let (want, got) = (grad(&candle, var), grad(&taped, var));
            let err = want
                .iter()
                .zip(&got)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            let scale = max_abs(&want).max(largest / 100.0);
            assert!(err <= 1e-4 * scale, "d{name} off by {err} (scale {scale})");
        }
    }
}
