use brainrecon_showcase::demo::{announcement, DemoOptions, DemoSteps, LiveSettings, Route};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// Run a whole route (linear, or caption) offline on a synthetic subject with the built-in models.
///
/// Steps: simulate a subject in NSD's layout; `nsd prepare` it; compute VAE latents (z) and
/// text embeddings (c) of its stimuli with shapes-ldm; fit ridge decoders of z from early
/// visual cortex and of c from ventral cortex; reconstruct the test images (decoded z →
/// image → re-encoded, noised to 0.8 and denoised with the decoded c); evaluate and write the
/// HTML report. It ends with the headline figures: how often the reconstructions show the
/// scene's colour and shape (read by the same rule as the model's quality tests; chance 1/6
/// and 1/4) and two-way identification.
///
/// `--route caption` runs the caption route on the same subject instead: BLIP image tokens of
/// the stimuli with the built-in shapes-blip, a ridge decoder of them from the `streams` ROIs,
/// captions written from the decoded tokens (OUT/captions), and img2img from the decoded z
/// conditioned on each caption (OUT/recons-caption), scored the same way.
///
/// `--route experiment` runs the linear route from a lab's own experiment instead: `simulate
/// --kind events` writes raw BIDS runs with events and fMRIPrep's derivatives (OUT/events),
/// `glm` fits GLMsingle's models (OUT/glm), `glm prepare` makes the subject (OUT/sub-01) from
/// TYPED's betas and the stimulus files, and the same features, decoders, reconstructions and
/// report follow (OUT/recons-experiment).
///
/// `--route realtime` reconstructs while the scanner runs, on the experiment route's subject
/// and decoders: `realtime simulate` writes the subject's next session as a scanner's
/// real-time export fills its folder (Siemens mosaics, one every --tr seconds, with head
/// motion; OUT/realtime-sim), while `realtime run` follows the folder, realigns, decodes and
/// draws each volume (OUT/realtime-session; the live page at http://127.0.0.1:8080/). The
/// shown images' reconstructions are scored as the other routes' are, and the latency from a
/// file to its image is reported. The session is made again on every run.
///
/// `--route new-subject` brings in a new subject from one session through a space shared by a
/// group: `simulate --subjects 5` writes a group in one NSD root (OUT/new-subject/nsd; --images
/// per subject, a third of them seen by every subject, 10 sessions each), every subject is
/// prepared with its features, `group prepare` and `group fit --method shared --k 32` make the
/// space shared by subjects 2–5 and its decoders, `group adapt` maps subject 1's first
/// session into it (by per-voxel encoding models), and subject 1's own decoders are fitted from that session alone and from all its
/// sessions (the ceiling). A few test images are reconstructed three ways and scored by
/// two-way identification of the decoded z and c over the test half and by colour and shape.
/// Writes OUT/demo-new-subject.json and OUT/pairs-new-subject.png (truth | 1 session alone |
/// 1 session + group | all sessions).
///
/// `--route eeg` decodes seen images from EEG: `simulate --kind eeg` writes a group of 3 in
/// THINGS-EEG2's shipped layout (OUT/eeg/things-eeg2: pickled .npy dicts of 17 channels × 100
/// samples, 288 training images of 96 concepts, 32 test concepts training never saw), `eeg
/// embed` embeds the images with shapes-blip, `eeg fit` fits per subject a ridge decoder and
/// NICE's contrastive encoder, and NICE on the other subjects (leave one subject out), and
/// `eeg eval` scores them all by zero-shot retrieval (top-1, top-5, k-way), per subject and
/// mean ± s.d. Writes OUT/demo-eeg.json and OUT/retrievals-eeg.png (test image | the four
/// NICE ranks highest).
///
/// Each step is skipped or resumed when its output is already in OUT, so an interrupted demo
/// continues where it stopped. Writes OUT/demo.json (OUT/demo-caption.json) and OUT/pairs.png
/// (OUT/pairs-caption.png): stimulus | decoded z | reconstruction.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon demo --out demo-out\n  brainrecon demo --out demo-out --route caption\n  brainrecon demo --out demo-out --route experiment\n  brainrecon demo --out demo-out --route realtime --tr 1.0\n  brainrecon demo --out demo-out --route new-subject\n  brainrecon demo --out demo-out --route eeg\n  brainrecon demo --out demo-out --images 1000 --samples 3 --json"
)]
pub struct Args {
    /// Output directory (created; an earlier demo there is resumed)
    #[arg(long, default_value = "demo-out")]
    out: PathBuf,
    /// Distinct images shown to the simulated subject (a tenth are test images) [default: 600;
    /// --route new-subject: 300 per subject]
    #[arg(long)]
    images: Option<usize>,
    /// Seed of the simulated subject and of the sampling noise
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The diffusion model (folder, cached id, or shapes-ldm)
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// Reconstructions per test image
    #[arg(long, default_value_t = 2)]
    samples: usize,
    /// DDIM steps of the full schedule (0.8 of them are run)
    #[arg(long, default_value_t = 25)]
    steps: usize,
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    device: String,
    /// linear (decoded z and c), caption (decoded z and a caption of decoded BLIP tokens),
    /// experiment (the linear route on an own event-related experiment: fMRIPrep's
    /// derivatives → glm → glm prepare), realtime (the experiment's subject reconstructed
    /// volume by volume while a simulated scanner exports its next session), or new-subject
    /// (a new subject from one session through a space shared by a simulated group), or eeg
    /// (seen images decoded from simulated EEG by ridge and NICE's contrastive encoder)
    #[arg(long, default_value = "linear",
        value_parser = ["linear", "caption", "experiment", "realtime", "new-subject", "eeg"])]
    route: String,
    /// --route realtime: the session's repetition time in seconds
    #[arg(long, default_value_t = 1.6)]
    tr: f64,
    /// --route realtime: real (the session is written one volume per TR while it is
    /// reconstructed) or none (written at once and every volume drawn: a rehearsal)
    #[arg(long, value_enum, default_value = "real")]
    pace: super::realtime_simulate::Pace,
    /// --route realtime: show only the first N test images in the session
    #[arg(long)]
    session_images: Option<usize>,
    /// --route realtime: seconds of rest before the session's first image (a baseline block,
    /// in which the running statistics settle)
    #[arg(long, default_value_t = 30.0)]
    rest_seconds: f64,
    /// Print the headline figures as JSON (the steps' own output then goes to stderr)
    #[arg(long)]
    json: bool,
}

/// Shows each step with its command line (the demo doubles as a recipe) on stderr, and what
/// the steps report on stdout, or on stderr too with --json (stdout then holds only the JSON).
struct Console {
    route: Route,
    json: bool,
}

impl DemoSteps for Console {
    type Error = anyhow::Error;

    fn announce(&mut self, number: usize, title: &str, args: &[&str]) {
        eprintln!("{}", announcement(number, self.route.steps(), title, args));
        if args[0] == "reconstruct" {
            // as `brainrecon reconstruct` does: a signal stops it after the current image
            super::reconstruct::stop_on_signal();
        }
    }

    fn announce_next(&mut self, args: &[&str]) {
        eprintln!("  brainrecon {}", args.join(" "));
    }

    fn print(&mut self, text: &str) -> anyhow::Result<()> {
        if self.json {
            eprint!("{text}");
            return Ok(());
        }
        out!("{text}")
    }

    fn warn(&mut self, text: &str) {
        eprintln!("warning: {text}");
    }

    fn log(&self, line: &str) {
        eprintln!("{line}");
    }

    fn note(&mut self, number: usize, text: &str) {
        eprintln!("\n[{number}/6] {text}");
    }

    fn stop(&mut self) -> &'static AtomicBool {
        super::realtime::stop_flag()
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let route = Route::parse(&args.route)?;
    let options = DemoOptions {
        out: args.out,
        images: args.images.unwrap_or(route.default_images()),
        seed: args.seed,
        model: args.model,
        samples: args.samples,
        steps: args.steps,
        device: args.device,
        route,
        command: super::command_line(),
        progress: super::show_progress(),
        live: LiveSettings {
            tr: args.tr,
            real_pace: args.pace == super::realtime_simulate::Pace::Real,
            images: args.session_images,
            rest_seconds: args.rest_seconds,
        },
    };
    let json = args.json;
    let summary = brainrecon_showcase::demo::run(&options, &mut Console { route, json })?;
    super::report(json, &summary, |s| s.text())
}
