//! `brainrecon video train-motion|fit|reconstruct|eval|demo`: the video route's verbs (the data
//! step, `video prepare`, is in video.rs).

use super::{device, print_json, show_progress, usage};
use brainrecon_data::cifti::cc2017::Split;
use brainrecon_diffusion::pipeline::{SampleOptions, StableDiffusion, VideoDiffusion};
use brainrecon_diffusion::scheduler::SchedulerKind;
use brainrecon_routes::video::breakdown::GroupScores;
use brainrecon_routes::video::classifiers::VideoClassifiers;
use brainrecon_routes::video::evaluate::{evaluate, VideoEvalOptions};
use brainrecon_routes::video::fit::{
    default_alphas, fit, ContextDecoder, LatentFrames, VideoFitOptions, DEFAULT_FOLDS,
};
use brainrecon_routes::video::reconstruct::{reconstruct, VideoReconstructOptions};
use brainrecon_routes::video::report::write_report;
use brainrecon_routes::video::stimuli::{read_captions, segment_video_path};
use brainrecon_routes::video::train_motion::{train_motion, MotionTrainConfig};
use candle_core::DType;
use std::io::Write;
use std::path::{Path, PathBuf};

use brainrecon_diffusion::embedded::SHAPES_MOTION;

/// A MotionAdapter or UNetMotionModel folder: `shapes-motion` (built in), a path, or a model
/// id in the Hugging Face cache (e.g. `guoyww/animatediff-motion-adapter-v1-5-2`).
pub fn adapter_dir(name: &str) -> anyhow::Result<PathBuf> {
    if name == SHAPES_MOTION {
        return Ok(brainrecon_diffusion::embedded::shapes_motion_dir()?);
    }
    brainrecon_diffusion::weights::resolve_model_folder(
        name,
        "a MotionAdapter or UNetMotionModel folder",
        "config.json diffusion_pytorch_model.safetensors",
    )
    .map_err(|e| {
        usage(format!(
            "--adapter {name}: {e} (or use {SHAPES_MOTION}, built in)"
        ))
    })
}

/// Train motion modules in a frozen image model on synthetic clips of moving shapes
///
/// AnimateDiff's temporal transformers (diffusers' MotionAdapter layout, output projections
/// starting at zero so the untrained model is the image model) are trained on the epsilon
/// objective with the image model's VAE and text encoder frozen, and its U-Net frozen too
/// unless --tune unet. Clips: a shape of shapes-ldm's scenes moving left, right, up, down or
/// standing still, captioned "a red circle moving left". Checkpoints go to OUT/.train/ every
/// 100 steps; rerunning resumes, and the same seed gives the same weights. The result loads
/// with --adapter OUT.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon video train-motion --tune unet --out models/shapes-motion --seed 0\n  \
    brainrecon video reconstruct --decoded video-fit --adapter models/shapes-motion --out video-recon"
)]
pub struct TrainMotionArgs {
    /// Output folder (a diffusers MotionAdapter folder; UNetMotionModel with --tune unet)
    #[arg(long)]
    out: PathBuf,
    /// The frozen image model: shapes-ldm (built in), a diffusers folder or a cached id
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// Training steps
    #[arg(long, default_value_t = MotionTrainConfig::default().steps)]
    steps: usize,
    /// Clips per step
    #[arg(long, default_value_t = MotionTrainConfig::default().batch)]
    batch: usize,
    /// Frames per clip
    #[arg(long, default_value_t = MotionTrainConfig::default().frames)]
    frames: usize,
    /// Peak learning rate (AdamW, warm-up then cosine)
    #[arg(long, default_value_t = MotionTrainConfig::default().lr)]
    lr: f64,
    /// What else is trained: none (motion modules only, a MotionAdapter) or unet (the image
    /// U-Net too, written as a whole UNetMotionModel, as MinD-Video tunes its U-Net)
    #[arg(long, default_value = "none", value_parser = ["none", "unet"])]
    tune: String,
    /// Favour high-noise timesteps: t/T = s·u / (1 + (s − 1)·u) for uniform u (1: uniform)
    #[arg(long, default_value_t = MotionTrainConfig::default().timestep_shift)]
    timestep_shift: f64,
    /// Seed of initialisation, clips and noise
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

pub fn run_train_motion(args: TrainMotionArgs) -> anyhow::Result<()> {
    let config = MotionTrainConfig {
        steps: args.steps,
        batch: args.batch,
        frames: args.frames,
        lr: args.lr,
        tune_unet: args.tune == "unet",
        timestep_shift: args.timestep_shift,
        ..MotionTrainConfig::default()
    };
    if config.steps == 0 {
        return Err(usage("--steps must be at least 1"));
    }
    let device = device(&args.device)?;
    let sd = StableDiffusion::load(&args.model, DType::F32, &device)?;
    let show = show_progress();
    let started = std::time::Instant::now();
    let summary = train_motion(
        &sd,
        &args.out,
        &config,
        args.seed,
        &mut |step, total, loss| {
            if show {
                eprint!("\rmotion modules: step {step}/{total}, loss {loss:.4}   ");
                if step == total {
                    eprintln!();
                }
                let _ = std::io::stderr().flush();
            }
        },
    )?;
    if args.json {
        return print_json(&summary);
    }
    let tail = &summary.losses[summary.losses.len().saturating_sub(50)..];
    outln!(
        "trained {} parameters ({}) in {:.0} s; mean loss of the last {} steps {:.4} → {}",
        summary.parameters,
        if config.tune_unet {
            "motion modules and U-Net"
        } else {
            "motion modules"
        },
        started.elapsed().as_secs_f64(),
        tail.len(),
        tail.iter().sum::<f64>() / tail.len().max(1) as f64,
        args.out.display()
    )?;
    Ok(())
}

/// The decoders' inputs: windows, stimuli and captions.
#[derive(clap::Args)]
pub struct WindowsArgs {
    /// `video prepare`'s folder
    #[arg(long)]
    pub prepared: PathBuf,
    /// The stimuli: segK.mp4 / testK.mp4 or frame folders segK/ / testK/
    #[arg(long)]
    pub stimuli: PathBuf,
    /// split<TAB>segment<TAB>tr<TAB>caption per stimulus TR
    #[arg(long)]
    pub captions: PathBuf,
}

/// Decode each fMRI window to its clip's text context, motion (and latent) with ridge
///
/// The linear baseline of the video route (the Takagi-style route generalised to clips): ridge
/// from `video prepare`'s windows to the diffusion model's text context of each clip's caption,
/// to the clip's global velocity (least-squares motion of its frames) and, with --latent, to the
/// VAE latent of the clip's frames, alphas by K-fold CV grouped by segment. With --context
/// words the caption is decoded word by word instead (a ridge classifier per word on the
/// features an ANOVA F test keeps, the caption composed from the decoded words) and the test
/// window's context is that caption's. Also decodes the mean training window (MinD-Video's negative condition). Scores: CV R² and
/// two-way identification of the decoded test contexts (chance 0.5).
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon simulate --kind video --out sim-video\n  \
    brainrecon video prepare --cc2017 sim-video --subject 1 --lag 2 --out video-sub1\n  \
    brainrecon video fit --prepared video-sub1 --stimuli sim-video/stimuli --captions sim-video/stimuli/captions.tsv --out video-fit"
)]
pub struct FitArgs {
    #[command(flatten)]
    data: WindowsArgs,
    /// Output folder (replaced whole when the fit succeeds, left as it was when it fails)
    #[arg(long)]
    out: PathBuf,
    /// The diffusion model whose text encoder and VAE make the targets
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// Ridge penalties tried (default 10^0 … 10^5)
    #[arg(long, value_delimiter = ',')]
    alphas: Option<Vec<f64>>,
    /// Folds of the CV over segments
    #[arg(long, default_value_t = DEFAULT_FOLDS)]
    folds: usize,
    /// Also decode the clip's VAE latents, for `video reconstruct --strength` < 1: the first
    /// frame's (`--latent` or `--latent first`), or every frame's (`--latent all`: a coarse
    /// clip whose layout and motion the generated clip keeps, as NeuroClips' perception
    /// reconstructor)
    #[arg(long, num_args = 0..=1, default_missing_value = "first", value_parser = ["first", "all"])]
    latent: Option<String>,
    /// Do not decode the clips' global velocity (measured from the stimulus frames; `video
    /// reconstruct` moves the initial noise by it)
    #[arg(long)]
    no_motion: bool,
    /// How the test contexts are decoded: `ridge` to the text encoder's context
    /// (MinD-Video's linear baseline), or `words`: the caption word by word (a screened ridge
    /// classifier per word, the caption composed from the decoded words; written to
    /// decoded_captions.tsv), then its context
    #[arg(long, default_value = "ridge", value_parser = ["ridge", "words"])]
    context: String,
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

/// Opens everything `video fit` reads that is not the model: the prepared subject's design,
/// the captions, and every segment's stimulus video, so that a bad one fails before the model
/// loads and before anything is written.
fn check_fit_inputs(data: &WindowsArgs) -> anyhow::Result<()> {
    let meta = brainrecon_data::cc2017::read_meta(&data.prepared)?;
    read_captions(&data.captions)?;
    let d = &meta.design;
    for (split, segments) in [
        (Split::Train, d.train_segments),
        (Split::Test, d.test_segments),
    ] {
        for segment in 1..=segments {
            let path = segment_video_path(&data.stimuli, split, segment)?;
            brainrecon_data::video::open(&path)?;
        }
    }
    Ok(())
}

pub fn run_fit(args: FitArgs) -> anyhow::Result<()> {
    check_fit_inputs(&args.data)?;
    let sd = StableDiffusion::load(&args.model, DType::F32, &device(&args.device)?)?;
    let latent = args.latent.as_deref().map(|w| match w {
        "all" => LatentFrames::All,
        _ => LatentFrames::First,
    });
    // A failure leaves `--out` as it was: the staging folder goes, the output is untouched.
    let summary = super::write_folder_atomic(&args.out, |staging| {
        let opts = VideoFitOptions {
            prepared: args.data.prepared,
            stimuli: args.data.stimuli,
            captions: args.data.captions,
            out: staging.to_path_buf(),
            alphas: args.alphas.unwrap_or_else(default_alphas),
            folds: args.folds,
            latent,
            motion: !args.no_motion,
            context: match args.context.as_str() {
                "words" => ContextDecoder::Words,
                _ => ContextDecoder::Ridge,
            },
            progress: show_progress(),
        };
        Ok(fit(&sd, &args.model, &opts)?)
    })?;
    if args.json {
        return print_json(&summary);
    }
    outln!(
        "decoded {} test windows from {} training windows ({} features): context CV R² {:.3}, \
         identification {:.3} (chance 0.5){}{}{} → {}",
        summary.n_test,
        summary.n_train,
        summary.n_features,
        summary.cv_r2_c.unwrap_or(f64::NAN),
        summary.identification_c,
        match (summary.cv_r2_z, summary.identification_z) {
            (Some(r2), Some(id)) => format!(
                "; {} latent CV R² {r2:.3}, identification {id:.3}",
                if summary.latent_frames > 1 {
                    "clip"
                } else {
                    "first-frame"
                }
            ),
            _ => String::new(),
        },
        summary.motion.as_ref().map_or(String::new(), |m| format!(
            "; motion r {:.3} (x) {:.3} (y), direction {:.3} (chance {:.3})",
            m.correlation[0], m.correlation[1], m.direction_agreement, m.direction_chance
        )),
        summary
            .caption_words
            .as_ref()
            .map_or(String::new(), |w| format!(
                "; captions word by word: {:.3} of their words right (CV {:.3}), {} combinations \
             no training caption has, features screened to {} %, alpha {}",
                w.test_word_accuracy,
                w.cv_word_accuracy,
                w.novel_captions,
                w.screening_percent,
                w.alpha
            )),
        args.out.display()
    )?;
    Ok(())
}

/// Generate a clip per test window from the decoded context with motion modules
///
/// Each clip: the decoded context conditions a motion U-Net (the image model's U-Net with the
/// adapter's temporal transformers), guided against the decoded context of the mean training
/// window (MinD-Video's negative condition; --empty-negative uses the empty prompt), from
/// seeded noise or, with --strength < 1 after `video fit --latent`, img2img-style from the
/// decoded first-frame latent on every frame. When `video fit` decoded the clips' velocity,
/// every frame's noise is the first frame's moved by it, so the content moves as decoded
/// (--still-noise: independent noise per frame). Seeded per clip; clips already written are
/// kept (rerun to resume). Writes clips/<segment>-<tr>.mp4 (H.264), .gif and the PNG frames.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon video reconstruct --decoded video-fit --out video-recon\n  \
    brainrecon video reconstruct --decoded cc2017-fit --model runwayml/stable-diffusion-v1-5 --adapter guoyww/animatediff-motion-adapter-v1-5-2 --steps 25 --guidance 12.5 --out cc2017-recon"
)]
pub struct ReconstructArgs {
    /// `video fit`'s folder
    #[arg(long)]
    decoded: PathBuf,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// The image model (the one `video fit` used)
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// MotionAdapter or UNetMotionModel folder, a cached adapter id, or shapes-motion (built
    /// in, for shapes-ldm)
    #[arg(long, default_value = SHAPES_MOTION)]
    adapter: String,
    /// Denoising steps (DDIM)
    #[arg(long, default_value_t = 25)]
    steps: usize,
    /// Classifier-free guidance scale
    #[arg(long, default_value_t = 5.0)]
    guidance: f64,
    /// img2img strength from the decoded first-frame latent (`video fit --latent`; 1: from
    /// noise, as MinD-Video)
    #[arg(long, default_value_t = 1.0)]
    strength: f64,
    /// Guide against the empty prompt instead of the mean window's context
    #[arg(long)]
    empty_negative: bool,
    /// Independent noise per frame, not the first frame's moved by the decoded velocity
    #[arg(long)]
    still_noise: bool,
    /// Only the first N test windows
    #[arg(long)]
    limit: Option<usize>,
    /// Seed of the clips' noise
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32 or f16 (GPU)
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

pub fn run_reconstruct(args: ReconstructArgs) -> anyhow::Result<()> {
    super::check_sampling(args.steps, args.guidance)?;
    if !(args.strength > 0.0 && args.strength <= 1.0) {
        return Err(usage(format!(
            "--strength: expected (0, 1], found {}",
            args.strength
        )));
    }
    let device = device(&args.device)?;
    let dtype = super::dtype(&args.dtype)?;
    let sd = StableDiffusion::load(&args.model, dtype, &device)?;
    let vd = VideoDiffusion::with_adapter(sd, &adapter_dir(&args.adapter)?)?;
    let opts = VideoReconstructOptions {
        decoded: args.decoded,
        out: args.out,
        sample: SampleOptions {
            steps: args.steps,
            guidance: args.guidance,
            scheduler: SchedulerKind::Ddim { eta: 0.0 },
        },
        strength: args.strength,
        mean_negative: !args.empty_negative,
        motion: !args.still_noise,
        seed: args.seed,
        limit: args.limit,
        progress: show_progress(),
    };
    let show = show_progress();
    let summary = reconstruct(&vd, (&args.model, &args.adapter), &opts, &mut |i, n, _| {
        if show {
            eprint!("\rclips: {i}/{n}   ");
            let _ = std::io::stderr().flush();
        }
    })?;
    if args.json {
        return print_json(&summary);
    }
    outln!(
        "{} clips of {} frames ({} made, {} kept) in {:.1} s → {}",
        summary.clips.len(),
        summary.frames,
        summary.made,
        summary.reused,
        summary.seconds,
        opts.out.join("clips").display()
    )?;
    Ok(())
}

/// Score reconstructed clips by MinD-Video's protocol and write the report
///
/// N-way top-1 (the ground truth's top 3 classes against n − 1 drawn, 100 trials; the chance
/// level of that rule is printed beside the 1/n the papers quote), motion direction, colour and
/// shape read from the frames, SSIM and PSNR per frame. On the synthetic subject the classes
/// come from the clip reading rule (colour × shape × motion). Writes video_eval.json and an
/// HTML page with stimulus and reconstruction clips side by side.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon video eval --reconstructed video-recon --stimuli sim-video/stimuli --out video-report"
)]
pub struct EvalArgs {
    /// `video reconstruct`'s folder
    #[arg(long)]
    reconstructed: PathBuf,
    /// The stimuli (testK.mp4 or frame folders testK/)
    #[arg(long)]
    stimuli: PathBuf,
    /// Output folder (video_eval.json, index.html)
    #[arg(long)]
    out: PathBuf,
    /// Frame side for SSIM and PSNR (MinD-Video: 256; default the stimulus frames')
    #[arg(long)]
    size: Option<usize>,
    /// ViT-B/16 for 2-way-I (a folder or cached id: google/vit-base-patch16-224)
    #[arg(long)]
    vit: Option<String>,
    /// VideoMAE for 2-way-V and 50-way-V (MCG-NJU/videomae-base-finetuned-kinetics)
    #[arg(long)]
    videomae: Option<String>,
    /// Seed of the n-way trials
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda or cuda:N (the classifiers)
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

pub fn run_eval(args: EvalArgs) -> anyhow::Result<()> {
    let opts = VideoEvalOptions {
        reconstructed: args.reconstructed.clone(),
        stimuli: args.stimuli.clone(),
        out: args.out.clone(),
        size: args.size,
        seed: args.seed,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| brainrecon_data::DataError::io(&args.out, e))?;
    let made: brainrecon_routes::video::reconstruct::ReconstructSummary =
        brainrecon_data::atomic::read_json(
            &args
                .reconstructed
                .join(brainrecon_routes::video::reconstruct::SUMMARY),
        )?;
    let classifiers = VideoClassifiers::load(
        args.vit.as_deref(),
        args.videomae.as_deref(),
        made.frames,
        &device(&args.device)?,
    )?;
    let summary = evaluate(&opts, &classifiers)?;
    let page = write_report(&summary, &args.stimuli, made.fps, &args.out)?;
    if args.json {
        return print_json(&summary);
    }
    for (name, score) in [
        ("2-way-I (ViT)", &summary.two_way_i),
        ("2-way-V (VideoMAE)", &summary.two_way_v),
        ("50-way-V (VideoMAE)", &summary.fifty_way_v),
    ] {
        if let Some(s) = score {
            outln!("{name}: {:.3} (chance {:.3})", s.value, s.chance)?;
        }
    }
    outln!(
        "{} clips: 2-way {:.3} (chance {:.3}; quoted {:.2}), motion direction {:.3} (chance \
         {:.2}), colour {:.3}, shape {:.3}, SSIM {:.3}, PSNR {:.2} → {}",
        summary.clips,
        summary.two_way.value,
        summary.two_way.chance,
        summary.nominal_chance_two_way,
        summary.direction.value,
        summary.direction.chance,
        summary.colour.value,
        summary.shape.value,
        summary.ssim,
        summary.psnr,
        page.display()
    )?;
    print_breakdown(&summary.breakdown)
}

/// The scores per segment and per position in it, one line a group.
fn print_breakdown(groups: &[GroupScores]) -> anyhow::Result<()> {
    outln!("  clips of         TRs  clips  2-way  direction  colour  shape")?;
    for g in groups {
        outln!(
            "  {:<14} {:>2}–{:<2} {:>6}  {:.3}  {:>9.3}  {:.3}  {:.3}",
            g.group,
            g.first_tr,
            g.last_tr,
            g.clips,
            g.two_way,
            g.direction,
            g.colour,
            g.shape
        )?;
    }
    Ok(())
}

/// The video route end to end on a synthetic subject: simulate, prepare, fit, reconstruct, eval
#[derive(clap::Args)]
#[command(after_help = "Example:\n  brainrecon video demo --out video-demo")]
pub struct DemoArgs {
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// Seed of the subject and the clips
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Denoising steps per clip
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Only the first N test clips
    #[arg(long)]
    limit: Option<usize>,
    /// What decodes the windows' contexts: the caption word by word (`video fit --context
    /// words`), ridge to the context (`video fit`), or MinD-Video's window encoder (`video
    /// train-encoder`, patches of 64 voxels)
    #[arg(long, default_value = "words", value_parser = ["words", "ridge", "encoder"])]
    decoder: String,
}

fn step(number: usize, title: &str, args: &[String]) -> anyhow::Result<()> {
    eprintln!("\n[{number}/5] {title}\n  brainrecon {}", args.join(" "));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::run_command_line(&refs)
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

pub fn run_demo(args: DemoArgs) -> anyhow::Result<()> {
    let o = |name: &str| args.out.join(name);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let seed = args.seed.to_string();
    if o("subject").join("design.json").is_file() {
        eprintln!(
            "\n[1/5] simulated subject found in {}",
            o("subject").display()
        );
    } else {
        let a = s(&[
            "simulate",
            "--kind",
            "video",
            "--out",
            &path(&o("subject")),
            "--seed",
            &seed,
        ]);
        step(
            1,
            "simulate a subject watching clips of moving shapes (CC2017's layout)",
            &a,
        )?;
    }
    if !o("prepared").join("video.json").is_file() {
        let a = s(&[
            "video",
            "prepare",
            "--cc2017",
            &path(&o("subject")),
            "--subject",
            "1",
            "--lag",
            "2",
            "--out",
            &path(&o("prepared")),
        ]);
        step(
            2,
            "prepare fMRI windows 4-8 s after each TR (detrend, z-score, repetition average, reliable voxels)",
            &a,
        )?;
    }
    let stimuli = o("subject").join("stimuli");
    let encoder = args.decoder == "encoder";
    let mut a = s(&[
        "video",
        if encoder { "train-encoder" } else { "fit" },
        "--prepared",
        &path(&o("prepared")),
        "--stimuli",
        &path(&stimuli),
        "--captions",
        &path(&stimuli.join("captions.tsv")),
        "--out",
        &path(&o("fit")),
    ]);
    let title = match args.decoder.as_str() {
        "encoder" => {
            a.extend(s(&["--patch-size", "64"]));
            "decode each window's caption context (MinD-Video's window encoder)"
        }
        "words" => {
            a.extend(s(&["--context", "words"]));
            "decode each window's caption word by word, then its context (ridge per word)"
        }
        _ => "decode each window's caption context (ridge)",
    };
    step(3, title, &a)?;
    let mut a = s(&[
        "video",
        "reconstruct",
        "--decoded",
        &path(&o("fit")),
        "--out",
        &path(&o("clips")),
        "--steps",
        &args.steps.to_string(),
        "--seed",
        &seed,
    ]);
    if let Some(limit) = args.limit {
        a.extend(s(&["--limit", &limit.to_string()]));
    }
    step(
        4,
        "generate a clip per test window (shapes-ldm + shapes-motion)",
        &a,
    )?;
    let a = s(&[
        "video",
        "eval",
        "--reconstructed",
        &path(&o("clips")),
        "--stimuli",
        &path(&stimuli),
        "--out",
        &path(&o("report")),
    ]);
    step(
        5,
        "score the clips (MinD-Video's protocol) and write the report",
        &a,
    )?;
    outln!(
        "open {} in a browser",
        o("report").join("index.html").display()
    )?;
    Ok(())
}
