use super::usage;
use brainrecon_data::prepared::PreparedSubject;
use brainrecon_diffusion::clip_vision::{load_clip_vision, ClipVisionModel};
use brainrecon_diffusion::pipeline::{Posterior, StableDiffusion};
use brainrecon_diffusion::weights::DiffusionError;
use brainrecon_routes::clip::{ClipImageFeatures, DEFAULT_CLIP};
use brainrecon_routes::decoders::default_features_dir;
use brainrecon_routes::features::{
    compute_features, default_latent_image_size, ClipTextFeatures, FeatureKind, StimulusEncoder,
    VaeFeatures,
};
use std::path::PathBuf;

/// Compute per-stimulus features of a prepared subject with a diffusion model.
///
/// `vae` (z): the VAE latent of each stimulus resized with Lanczos to `--size` (default 5/8 of
/// the model's native size: 320 px and 4×40×40 for SD1), posterior mean unless `--sample`.
/// `clip-text` (c): the text encoder's context (77×768 for SD1) averaged over the image's
/// captions. `clip-image`: projected CLIP image embeddings (`--model` is then a CLIP model such
/// as openai/clip-vit-large-patch14), for evaluation.
///
/// `blip-vision` (the caption route's target): BLIP's image tokens after the final LayerNorm,
/// the stimulus resized with Lanczos to `--size` (default: the captioner's image size; 240 for
/// the published ViT-B, 226 × 768 tokens) and fed in [0, 1] without normalisation as the
/// published code does (`--normalize` applies BLIP's mean/std); `--layer L` keeps hidden state
/// L instead (0 = embeddings), `--layer all` writes every layer (blip-vision-lL).
/// `blip-text`: the captioner's text decoder run on each caption without an image, token mean,
/// averaged over captions (same `--layer`). `--model` is then a BLIP captioner: a transformers
/// folder, cached id (Salesforce/blip-image-captioning-base) or shapes-blip (built in, the
/// default for these kinds).
///
/// Rows follow the subject's stimuli/ids.npy. Each stimulus is cached as soon as it is computed
/// (OUT/cache/KIND/ID.npy): an interrupted run resumes, and a finished one is a quick no-op.
#[derive(clap::Args)]
#[command(
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true,
    after_help = "Example:\n  brainrecon features --subject prepared/subj01 --model CompVis/stable-diffusion-v1-4 --kind vae --device cuda\n  brainrecon features --subject prepared/subj01 --model CompVis/stable-diffusion-v1-4 --kind clip-text\n  brainrecon features --subject prepared/subj01 --model models/blip-capfilt-240 --kind blip-vision"
)]
pub struct Args {
    #[command(subcommand)]
    command: Option<FeaturesCommand>,
    /// A prepared subject directory
    #[arg(long, required = true)]
    subject: Option<PathBuf>,
    /// Diffusers folder, cache snapshot, cached model id (ORG/NAME), or shapes-ldm (the
    /// project's own small model, built in); for blip-* a BLIP captioner (default shapes-blip)
    #[arg(long)]
    model: Option<String>,
    /// vae, clip-text, clip-image, blip-vision or blip-text
    #[arg(long, required = true)]
    kind: Option<String>,
    /// blip-*: hidden state L (0 = embeddings), `last` (after the final LayerNorm) or `all`
    #[arg(long, default_value = "last")]
    layer: String,
    /// blip-vision: normalise with BLIP's mean/std (the published route does not)
    #[arg(long)]
    normalize: bool,
    /// Features directory (default: SUBJECT/features)
    #[arg(long)]
    out: Option<PathBuf>,
    /// vae: image size in pixels before encoding (default: 5/8 of the model's size)
    #[arg(long)]
    size: Option<usize>,
    /// vae: draw from the posterior (seeded per stimulus) instead of taking its mean
    #[arg(long)]
    sample: bool,
    /// vae --sample: seed of the posterior draws
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stimuli per batch
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Weights' precision: f32, f16, or bf16 (GPU only)
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Print a summary as JSON
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
pub enum FeaturesCommand {
    Text(super::features_text::Args),
}

// `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
#[allow(clippy::manual_is_multiple_of)]
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(FeaturesCommand::Text(text)) = args.command {
        return super::features_text::run(text);
    }
    let (Some(subject), Some(kind)) = (&args.subject, &args.kind) else {
        return Err(usage("--subject and --kind are required"));
    };
    let subject = PreparedSubject::open(subject)?;
    let kind = FeatureKind::parse(kind)?;
    let device = super::device(&args.device)?;
    let dtype = super::dtype(&args.dtype)?;
    super::check_dtype_on(dtype, &device)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_features_dir(&subject));
    let started = std::time::Instant::now();
    if matches!(kind, FeatureKind::BlipVision(_) | FeatureKind::BlipText(_)) {
        return blip_features(&args, &subject, kind, &out, &device, started);
    }
    let model = args.model.clone().unwrap_or_else(|| "shapes-ldm".into());
    let summary = match kind {
        FeatureKind::Vae | FeatureKind::ClipText => {
            let sd = StableDiffusion::load(&model, dtype, &device)?;
            let encoder: Box<dyn StimulusEncoder> = if kind == FeatureKind::Vae {
                let size = args.size.unwrap_or_else(|| default_latent_image_size(&sd));
                let f = sd.vae_scale_factor();
                if size == 0 || size % f != 0 {
                    return Err(usage(format!(
                        "--size: expected a positive multiple of {f} for this model, found {size}"
                    )));
                }
                Box::new(VaeFeatures {
                    sd: &sd,
                    image_size: size,
                    posterior: if args.sample {
                        Posterior::Sample
                    } else {
                        Posterior::Mean
                    },
                    seed: args.seed,
                })
            } else {
                Box::new(ClipTextFeatures { sd: &sd })
            };
            compute_features(
                &subject,
                &out,
                &model,
                encoder.as_ref(),
                args.batch,
                super::show_progress(),
            )?
        }
        FeatureKind::ClipImage => {
            let clip = ClipImageFeatures::load(&model, dtype, &device)?;
            compute_features(
                &subject,
                &out,
                &model,
                &clip,
                args.batch,
                super::show_progress(),
            )?
        }
        FeatureKind::BlipVision(_) | FeatureKind::BlipText(_) => unreachable!("handled above"),
    };
    print_summary(&summary, args.json, started)
}

fn print_summary(
    summary: &brainrecon_routes::features::FeatureSummary,
    json: bool,
    started: std::time::Instant,
) -> anyhow::Result<()> {
    if json {
        return super::print_json(summary);
    }
    outln!(
        "{} features {:?} of {} images ({} computed, {} cached) in {:.1} s → {}",
        summary.kind,
        summary.shape,
        summary.n_images,
        summary.computed,
        summary.cached,
        started.elapsed().as_secs_f64(),
        summary.array.display()
    )?;
    Ok(())
}

/// The layers `--layer` names for a tower of `layers` blocks: None = after the final norm.
fn blip_layers(text: &str, layers: usize) -> anyhow::Result<Vec<Option<u8>>> {
    match text {
        "last" => Ok(vec![None]),
        "all" => Ok((0..=layers).map(|l| Some(l as u8)).collect()),
        n => match n.parse::<usize>() {
            Ok(l) if l <= layers => Ok(vec![Some(l as u8)]),
            _ => Err(usage(format!(
                "--layer: expected last, all or a layer 0..={layers} of this model, found '{n}'"
            ))),
        },
    }
}

/// BLIP features: one array per layer asked for.
// `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
#[allow(clippy::manual_is_multiple_of)]
fn blip_features(
    args: &Args,
    subject: &PreparedSubject,
    kind: FeatureKind,
    out: &std::path::Path,
    device: &brainrecon_diffusion::pipeline::Device,
    started: std::time::Instant,
) -> anyhow::Result<()> {
    use brainrecon_routes::caption::features::BlipFeatures;
    let name = args.model.clone().unwrap_or_else(|| "shapes-blip".into());
    let loaded = brainrecon_routes::caption::load_captioner(&name, device)?;
    let vision = matches!(kind, FeatureKind::BlipVision(_));
    let layers = if vision {
        loaded.model.vision_model.config.num_hidden_layers
    } else {
        loaded.model.text_decoder.config().num_hidden_layers
    };
    let image_size = args
        .size
        .unwrap_or(loaded.model.vision_model.config.image_size);
    let patch = loaded.model.vision_model.config.patch_size;
    if image_size == 0 || image_size % patch != 0 {
        return Err(usage(format!(
            "--size: expected a positive multiple of the patch size {patch}, found {image_size}"
        )));
    }
    for layer in blip_layers(&args.layer, layers)? {
        let encoder = BlipFeatures {
            model: &loaded.model,
            tokenizer: &loaded.tokenizer,
            fingerprint: loaded.fingerprint.clone(),
            kind: if vision {
                FeatureKind::BlipVision(layer)
            } else {
                FeatureKind::BlipText(layer)
            },
            image_size,
            normalize: args.normalize,
            device: device.clone(),
        };
        encoder.validate()?;
        let summary = compute_features(
            subject,
            out,
            &name,
            &encoder,
            args.batch,
            super::show_progress(),
        )?;
        print_summary(&summary, args.json, started)?;
    }
    Ok(())
}

/// The CLIP vision tower of `eval`'s metric suite: the named one, else the default
/// (openai/clip-vit-large-patch14, MindEye's) when it is in the Hugging Face cache, else none.
pub fn clip_for_suite(
    model: Option<&str>,
    device: &brainrecon_diffusion::pipeline::Device,
) -> anyhow::Result<Option<(String, ClipVisionModel)>> {
    let dtype = brainrecon_diffusion::pipeline::DType::F32;
    let name = model.unwrap_or(DEFAULT_CLIP);
    match load_clip_vision(name, dtype, device) {
        Ok((vision, _)) => Ok(Some((name.to_string(), vision))),
        // The default is not in the cache: the suite shows CLIP as absent, with the command.
        Err(DiffusionError::ModelNotFound { .. }) if model.is_none() => Ok(None),
        Err(e) => Err(e.into()),
    }
}
