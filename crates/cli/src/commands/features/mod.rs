//! `brainrecon features`: per-stimulus features of a prepared subject (the work is in
//! `brainrecon_routes::decode::features`); `brainrecon features text`: features of annotated text.

use crate::commands::prelude::*;
mod text;

use brainrecon_routes::decode::features::{features_request, FeaturesRequest};

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
#[command(mut_arg("json", |a| a.help("Print a summary as JSON")))]
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
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    dtype: DtypeArgs,
    #[command(flatten)]
    json: JsonArg,
}

#[derive(clap::Subcommand)]
pub enum FeaturesCommand {
    Text(text::Args),
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(FeaturesCommand::Text(text)) = args.command {
        return text::run(text);
    }
    let (Some(subject), Some(kind)) = (args.subject, args.kind) else {
        return Err(usage("--subject and --kind are required"));
    };
    let request = FeaturesRequest {
        subject,
        kind,
        model: args.model,
        layer: args.layer,
        normalize: args.normalize,
        out: args.out,
        size: args.size,
        sample: args.sample,
        seed: args.seed,
        batch: args.batch,
        device: args.device.choice()?,
        dtype: args.dtype.dtype()?,
        progress: show_progress(),
    };
    features_request(&request, |summary, seconds| {
        args.json.print(summary, |s| s.text(seconds))
    })
}
