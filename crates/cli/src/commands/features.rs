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
/// Rows follow the subject's stimuli/ids.npy. Each stimulus is cached as soon as it is computed
/// (OUT/cache/KIND/ID.npy): an interrupted run resumes, and a finished one is a quick no-op.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon features --subject prepared/subj01 --model CompVis/stable-diffusion-v1-4 --kind vae --device cuda\n  brainrecon features --subject prepared/subj01 --model CompVis/stable-diffusion-v1-4 --kind clip-text"
)]
pub struct Args {
    /// A prepared subject directory
    #[arg(long)]
    subject: PathBuf,
    /// Diffusers folder, cache snapshot, cached model id (ORG/NAME), or shapes-ldm (the
    /// project's own small model, built in)
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// vae, clip-text or clip-image
    #[arg(long)]
    kind: String,
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

// `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
#[allow(clippy::manual_is_multiple_of)]
pub fn run(args: Args) -> anyhow::Result<()> {
    let subject = PreparedSubject::open(&args.subject)?;
    let kind = FeatureKind::parse(&args.kind)?;
    let device = super::device(&args.device)?;
    let dtype = super::dtype(&args.dtype)?;
    super::check_dtype_on(dtype, &device)?;
    let out = args.out.unwrap_or_else(|| default_features_dir(&subject));
    let started = std::time::Instant::now();
    let summary = match kind {
        FeatureKind::Vae | FeatureKind::ClipText => {
            let sd = StableDiffusion::load(&args.model, dtype, &device)?;
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
                &args.model,
                encoder.as_ref(),
                args.batch,
                super::show_progress(),
            )?
        }
        FeatureKind::ClipImage => {
            let clip = ClipImageFeatures::load(&args.model, dtype, &device)?;
            compute_features(
                &subject,
                &out,
                &args.model,
                &clip,
                args.batch,
                super::show_progress(),
            )?
        }
    };
    if args.json {
        return super::print_json(&summary);
    }
    println!(
        "{} features {:?} of {} images ({} computed, {} cached) in {:.1} s → {}",
        summary.kind,
        summary.shape,
        summary.n_images,
        summary.computed,
        summary.cached,
        started.elapsed().as_secs_f64(),
        summary.array.display()
    );
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
