use crate::commands::prelude::*;
use brainrecon_routes::decode::options::{dtype, parse_device};
use brainrecon_routes::linear::ReconstructOptions;
use brainrecon_routes::reconstruct::ReconstructRequest;

/// Reconstruct the test images of a prepared subject from its betas.
///
/// `--method linear` (Takagi & Nishimoto 2023): the decoded VAE latent z is decoded to an
/// image, resized to the model's size (Lanczos), encoded again, noised to `--strength` of the
/// schedule (t_enc = strength × steps) and denoised with DDIM (eta 0) conditioned on the
/// decoded CLIP text context c, with classifier-free guidance against the empty prompt.
/// Ablations: `z-only` (the VAE decode of z alone) and `c-only` (txt2img from c).
///
/// `--method b2c --b2c DIR` (Brain-to-Context): txt2img conditioned on the context that the
/// encoder trained by `brainrecon b2c train` makes of each test image's betas, with the tuned
/// U-Net and guidance against the empty prompt; `--init z` starts img2img from the linear
/// route's decoded z instead (needs --decoders with z/).
///
/// `--method caption --captions FILE` (Takagi & Nishimoto's caption route): img2img from the
/// decoded z as the linear route, conditioned on the caption `brainrecon caption` wrote from
/// each test image's decoded BLIP tokens instead of the decoded c (needs --decoders with z/).
///
/// `--decoders DIR` holds z/ and c/ from `brainrecon fit --target z|c`. Writes
/// OUT/decoded-z/ID.png, OUT/sample-K/ID.png (K = 1..samples), OUT/decoded/{ids,z,c}.npy and
/// OUT/manifest.json. Finished images are skipped, so an interrupted run resumes; every
/// (image, sample) has its own seeded noise, so the result does not depend on interruptions.
/// SIGTERM or Ctrl-C stops the run after the image it is on (exit status 143).
///
/// `--shard k/N` reconstructs only the k-th of N slices of the test images into the same --out
/// (one task of a Slurm array, one GPU of several); `brainrecon reconstruct merge --out DIR`
/// then writes the manifest one process would have, with the same images.
#[derive(clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Example:\n  brainrecon reconstruct --method linear --subject prepared/subj01 --decoders decoders --model CompVis/stable-diffusion-v1-4 --out recons/linear --device cuda --dtype f16\n  brainrecon eval --stimuli prepared/subj01 --recons recons/linear\n  brainrecon reconstruct --method b2c --b2c b2c/subj01 --subject prepared/subj01 --model shapes-ldm --out recons/b2c\n  brainrecon reconstruct --method caption --captions captions/subj01 --subject prepared/subj01 --decoders decoders --out recons/caption\n  brainrecon reconstruct --subject prepared/subj01 --decoders decoders --out recons/linear --shard $SLURM_ARRAY_TASK_ID/8\n  brainrecon reconstruct merge --out recons/linear"
)]
pub struct Args {
    #[command(subcommand)]
    command: Option<ReconstructCommand>,
    /// linear, z-only, c-only, b2c or caption
    #[arg(long, default_value = "linear")]
    method: String,
    /// The captions of the test images (--method caption): captions.json from `brainrecon
    /// caption`, or its folder
    #[arg(long)]
    captions: Option<PathBuf>,
    /// The trained B2C folder (--method b2c)
    #[arg(long)]
    b2c: Option<PathBuf>,
    /// B2C: start from `noise` (txt2img) or from the linear route's decoded `z` (img2img)
    #[arg(long, default_value = "noise")]
    init: String,
    /// A prepared subject directory
    #[arg(long, required = true)]
    subject: Option<PathBuf>,
    /// Directory with the z/ and c/ decoders (B2C needs them only with --init z)
    #[arg(long)]
    decoders: Option<PathBuf>,
    /// Diffusers folder, cache snapshot, cached model id (ORG/NAME), or shapes-ldm (the
    /// project's own small model, built in)
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// Output directory
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// Reconstructions per test image
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Share of the schedule that img2img runs, in (0, 1]
    #[arg(long, default_value_t = 0.8)]
    strength: f64,
    /// DDIM steps of the full schedule
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Classifier-free guidance scale (≤ 1 disables guidance)
    #[arg(long, default_value_t = 5.0)]
    guidance: f64,
    /// Seed of all random draws
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Re-encode the decoded-z image with the posterior mean instead of a sample
    #[arg(long)]
    posterior_mean: bool,
    /// Only the first N test images
    #[arg(long)]
    limit: Option<usize>,
    /// Samples of one image denoised together in one batch (default: all of them; 1 uses the
    /// least memory). The images are the same up to rounding.
    #[arg(long)]
    batch: Option<usize>,
    /// Only the k-th of N slices of the test images, `k/N` with k = 0 … N-1 (as
    /// `$SLURM_ARRAY_TASK_ID/N`); join them with `reconstruct merge`
    #[arg(long)]
    shard: Option<String>,
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Precision of the U-Net and text encoder: f32, f16, or bf16 (GPU only)
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Print a summary as JSON
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum ReconstructCommand {
    Merge(MergeArgs),
}

/// Join the shards of a reconstruction (`reconstruct --shard k/N`) into one folder.
///
/// Checks that shards 0 … N-1 all finished with the same settings and that every image they
/// list is there, then writes OUT/manifest.json as one process would have (its command without
/// --shard) and removes OUT/shards/. `eval` and the report read the folder as any other.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  brainrecon reconstruct merge --out recons/linear")]
pub struct MergeArgs {
    /// The reconstruction folder the shards wrote into
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    json: JsonArg,
}

fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let summary = brainrecon_routes::linear::shards::merge(&args.out)?;
    args.json.print(&summary, |_| summary.text())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(ReconstructCommand::Merge(merge_args)) = args.command {
        return merge(merge_args);
    }
    let (Some(subject), Some(out)) = (args.subject, args.out) else {
        return Err(super::usage("--subject and --out are required"));
    };
    let request = ReconstructRequest {
        method: args.method,
        captions: args.captions,
        b2c: args.b2c,
        init: args.init,
        subject,
        decoders: args.decoders,
        model: args.model,
        out,
        options: ReconstructOptions {
            samples: args.samples,
            strength: args.strength,
            steps: args.steps,
            guidance: args.guidance,
            seed: args.seed,
            sample_posterior: !args.posterior_mean,
            limit: args.limit,
            ..ReconstructOptions::default()
        },
        batch: args.batch,
        shard: args.shard,
        device: parse_device(&args.device)?,
        dtype: dtype(&args.dtype)?,
        command: super::command_line(),
        progress: super::show_progress(),
    };
    stop_on_signal();
    let done = brainrecon_routes::reconstruct::run(&request)?;
    super::report(args.json, &done.summary, |_| done.text() + "\n")
}

/// SIGTERM (Slurm's `--signal=B:TERM@N`, preemption, `scancel`) and Ctrl-C stop the run after
/// the image it is on; a second one ends it at once. Every finished image stays, so the same
/// command resumes.
pub(super) fn stop_on_signal() {
    // Setting fails only when a handler is already set (a second run in one process, whose
    // handler then stops this one too).
    let _ = ctrlc::set_handler(|| {
        static SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if SEEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(143);
        }
        eprintln!("stopping after the current image (a second signal stops at once)");
        brainrecon_routes::linear::shards::request_stop();
    });
}
