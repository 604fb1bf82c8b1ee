//! `brainrecon eeg`: what a person saw, decoded from EEG (THINGS-EEG2's layout) by zero-shot
//! retrieval, as NICE and ATM score it.

use crate::commands::prelude::*;
use brainrecon_datasets::things_eeg2::{ChannelSelection, RawPreprocessing};
use brainrecon_routes::eeg::decoder::{
    embed_images, evaluate, fit, EegEvalRequest, EegFitRequest, EegMethod, EmbedRequest, Training,
};
use brainrecon_routes::eeg::live::{run_live, LiveEegRequest};
use brainrecon_routes::eeg::nice_train::{NiceTrainOptions, TrainEngine};
use brainrecon_routes::eeg::preprocess::{
    prepare_bids, prepare_meg, preprocess, BidsEegRequest, MegPrepareRequest, Mvnn,
    PreprocessRequest,
};
use brainrecon_routes::eeg::reconstruct::{reconstruct, EegReconstructRequest};
use brainrecon_routes::eeg::ridge_decoder::{parse_window, RidgeDecoderOptions};
use brainrecon_stream::{Format, OpenOptions, Pace};

/// Decode seen images from EEG: image embeddings, decoders, zero-shot retrieval
///
/// The data are THINGS-EEG2 as it ships (preprocessed_data/sub-XX/preprocessed_eeg_*.npy,
/// image_set/image_metadata.npy and the image folders) or `simulate --kind eeg`'s copy of it.
/// A decoder maps an epoch (channels × samples) to the embedding of the image seen; it is
/// scored on test concepts that training never saw, by ranking the 200 test images' embeddings.
#[derive(clap::Subcommand)]
pub enum EegCommand {
    Preprocess(PreprocessArgs),
    BidsPrepare(BidsPrepareArgs),
    MegPrepare(MegPrepareArgs),
    Embed(EmbedArgs),
    Fit(FitArgs),
    Eval(EvalArgs),
    Reconstruct(ReconstructArgs),
    Live(LiveArgs),
}

/// Preprocess THINGS-EEG2's raw recordings as the data set's code does
///
/// Per session and half: events from the stim channel (the target trials, code 99999, left
/// out), the channels kept (--channels occipital-parietal: names starting with O or P, the
/// shipped 17; all: NICE's 63), epochs from --tmin to --tmax with the mean before 0 s
/// subtracted, resampled to --sfreq by MNE's FFT method; per session, multivariate noise
/// normalisation (--mvnn time: covariances across repetitions at each time point, the data
/// set's default; epochs: across time in each repetition; none), then the sessions merged by
/// image condition. Checked against MNE, scikit-learn and scipy. Writes OUT in the shipped
/// layout (OUT/eeg_dataset/preprocessed_data/sub-XX) with OUT/image_set linked to the data
/// set's images, so `eeg fit --data OUT` reads it.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon eeg preprocess --data THINGS-EEG2 --subject sub-01 --out things-100hz\n  \
    brainrecon eeg preprocess --data THINGS-EEG2 --channels all --sfreq 250 --mvnn epochs --out things-nice"
)]
#[command(mut_arg("json", |a| a.help("Print the report as JSON")))]
pub struct PreprocessArgs {
    /// The THINGS-EEG2 folder (with eeg_dataset/raw_data)
    #[arg(long)]
    data: PathBuf,
    /// A subject to preprocess (repeat; default: every one in raw_data)
    #[arg(long = "subject")]
    subjects: Vec<String>,
    /// Where to write the preprocessed data set
    #[arg(long)]
    out: PathBuf,
    /// Sampling rate of the epochs in Hz
    #[arg(long, default_value_t = 100.0)]
    sfreq: f64,
    /// Start of an epoch, seconds from the image's onset
    #[arg(long, default_value_t = -0.2, allow_negative_numbers = true)]
    tmin: f64,
    /// End of an epoch, seconds (inclusive)
    #[arg(long, default_value_t = 0.8)]
    tmax: f64,
    /// occipital-parietal or all
    #[arg(long, default_value = "occipital-parietal", value_parser = choice(&ChannelSelection::ALL, ChannelSelection::name))]
    channels: ChannelSelection,
    /// time, epochs or none
    #[arg(long, default_value = "time", value_parser = choice(&Mvnn::ALL, Mvnn::name))]
    mvnn: Mvnn,
    #[command(flatten)]
    json: JsonArg,
}

/// Make an image experiment in BIDS EEG into THINGS-EEG2's layout
///
/// Reads sub-XX/eeg/sub-XX_task-TASK_eeg.vhdr (BrainVision) and its _events.tsv: each row's
/// image from `stim_file` (or ds003825's `stim`, Windows separators allowed), test rows where
/// `isteststim` is 1 or `trial_type` is `test`; onsets in seconds, or in samples where they can
/// only be samples (THINGS-EEG1, ds003825, writes samples). Epochs, baseline, resampling and
/// MVNN as `eeg preprocess` (default here: every channel, MVNN per repetition, since training
/// images are often shown once); images sorted by path. Writes OUT's preprocessed files and
/// image_set/image_metadata.npy, and with --images links every image named into
/// OUT/image_set, so `eeg embed`, `eeg fit` and `eeg eval` read OUT.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon eeg bids-prepare --bids-root ds003825 --subject 02 --task rsvp --images THINGS/object_images --out things-eeg1-sub-02"
)]
#[command(mut_arg("json", |a| a.help("Print the report as JSON")))]
pub struct BidsPrepareArgs {
    /// The BIDS root
    #[arg(long)]
    bids_root: PathBuf,
    /// The subject (01 or sub-01)
    #[arg(long)]
    subject: String,
    /// The task
    #[arg(long)]
    task: String,
    /// The folder holding the images the events name
    #[arg(long)]
    images: Option<PathBuf>,
    /// Where to write the data set
    #[arg(long)]
    out: PathBuf,
    /// Sampling rate of the epochs in Hz
    #[arg(long, default_value_t = 100.0)]
    sfreq: f64,
    /// occipital-parietal or all
    #[arg(long, default_value = "all", value_parser = choice(&ChannelSelection::ALL, ChannelSelection::name))]
    channels: ChannelSelection,
    /// time, epochs or none
    #[arg(long, default_value = "epochs", value_parser = choice(&Mvnn::ALL, Mvnn::name))]
    mvnn: Mvnn,
    #[command(flatten)]
    json: JsonArg,
}

/// Make a THINGS-MEG participant's preprocessed epochs into THINGS-EEG2's layout
///
/// Reads ds004212's derivatives/preprocessed/preprocessed_P{n}-epo.fif and its split parts
/// (MNE's epochs in FIF: 271 gradiometers, −100 to 1,300 ms at 200 Hz), ties each epoch to its
/// image by the epochs' metadata (image_path, else things_image_nr, else the event code, which
/// the authors set to the THINGS image number), and splits them by trial_type: exp → training
/// (each image once), test → test (each test image 12 times), catch left out. Writes OUT as
/// bids-prepare does, the participant as sub-0n, so that `eeg embed`, `eeg fit` and `eeg eval`
/// read OUT; with --images links every image named into OUT/image_set.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon eeg meg-prepare --data ds004212 --participant P1 --images THINGS/images --out things-meg-P1"
)]
#[command(mut_arg("json", |a| a.help("Print the report as JSON")))]
pub struct MegPrepareArgs {
    #[command(flatten)]
    request: MegPrepareRequest,
    #[command(flatten)]
    json: JsonArg,
}

/// Embed every training and test image of the data set with an image model
///
/// Writes OUT/training.npy and OUT/test.npy (float32 [images, d], rows in image_metadata.npy's
/// order) and OUT/embeddings.json. The default is the project's shapes-blip (the pooled output
/// of its BLIP image tower); a transformers BLIP folder may be named instead. To decode into a
/// CLIP's space as NICE and ATM do, write the same two files with your CLIP and pass their
/// folder to `eeg fit --embeddings`.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon simulate --kind eeg --out sim-eeg\n  brainrecon eeg embed --data sim-eeg --out sim-eeg-embeddings"
)]
#[command(mut_arg("json", |a| a.help("Print the record as JSON")))]
pub struct EmbedArgs {
    #[command(flatten)]
    request: EmbedRequest,
    #[command(flatten)]
    json: JsonArg,
}

/// Fit a decoder from EEG epochs to image embeddings
///
/// --method nice (default): NICE's contrastive encoder (temporal and spatial convolutions and
/// a projection, CLIP's symmetric loss with a learnable temperature, Adam at 2e-4), trained on
/// every trial; it checkpoints every --checkpoint-every epochs and the same command resumes an
/// interrupted fit. --method atm: ATM's encoder, the same convolutions behind a
/// channel-attention Transformer (each channel a token, with a learned subject token) and ATM's
/// form of the loss, trained the same way. --method ridge: the linear baseline, ridge from the
/// repetition-averaged epoch with the penalty chosen per dimension by 5-fold cross-validation
/// grouped by concept.
/// --subject S trains on S's training half; --leave-out S trains on every other subject's,
/// pooled, and is scored on S (leave one subject out). Writes OUT/decoder.json, the model, the
/// test images' embeddings it is scored against and OUT/training_concepts.json. Training images
/// of a test concept are refused (zero-shot) unless --allow-seen-concepts.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon eeg fit --data sim-eeg --embeddings sim-eeg-embeddings --subject sub-01 --out nice-sub-01\n  \
    brainrecon eeg fit --data sim-eeg --embeddings sim-eeg-embeddings --subject sub-01 --method ridge --out ridge-sub-01\n  \
    brainrecon eeg fit --data sim-eeg --embeddings sim-eeg-embeddings --subject sub-01 --method atm --out atm-sub-01\n  \
    brainrecon eeg fit --data sim-eeg --embeddings sim-eeg-embeddings --leave-out sub-01 --out nice-loso-sub-01"
)]
#[command(mut_arg("json", |a| a.help("Print the fit's record as JSON")))]
#[command(group(clap::ArgGroup::new("who").required(true).args(["subject", "leave_out"])))]
pub struct FitArgs {
    /// The THINGS-EEG2 folder
    #[arg(long)]
    data: PathBuf,
    /// The embeddings folder (`eeg embed`'s, or training.npy and test.npy of your own)
    #[arg(long)]
    embeddings: PathBuf,
    /// Train on this subject (sub-01)
    #[arg(long)]
    subject: Option<String>,
    /// Train on every subject but this one, and score on it
    #[arg(long)]
    leave_out: Option<String>,
    /// nice, atm or ridge
    #[arg(long, default_value = "nice", value_parser = choice(&EegMethod::ALL, EegMethod::name))]
    method: EegMethod,
    /// The decoder folder to write (a rerun with the same settings resumes it)
    #[arg(long)]
    out: PathBuf,
    /// NICE and ATM: training epochs
    #[arg(long, default_value_t = 40)]
    epochs: usize,
    /// NICE and ATM: trials per batch
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// NICE and ATM: Adam's learning rate
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// NICE and ATM: epochs between checkpoints
    #[arg(long, default_value_t = 5)]
    checkpoint_every: usize,
    /// NICE and ATM: what differentiates each step, the project's tape or candle's autograd
    #[arg(long, default_value = "tape", value_parser = ["tape", "candle"])]
    engine: String,
    /// Seed of the encoder's initial values, batch order and dropout
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Ridge: the samples used, START:END (default: the whole epoch)
    #[arg(long)]
    window: Option<String>,
    /// Fit even when the training images show test concepts (refused otherwise: the scores
    /// would not be zero-shot); the record says so
    #[arg(long)]
    allow_seen_concepts: bool,
    #[command(flatten)]
    json: JsonArg,
}

/// Score EEG decoders by zero-shot retrieval, per subject and mean ± s.d.
///
/// Each decoder decodes its test subject's test conditions (each from its repetitions'
/// average) and ranks the test images by cosine similarity: top-1 and top-5 of all of them
/// (200-way on THINGS-EEG2), and k-way top-1 with k − 1 distractors drawn --draws times per
/// trial from a seeded stream (default k: 2, 4, 10 and 50 where there are that many images).
/// Decoding time per trial is reported beside. Ties count against the match, and a decoder
/// that outputs NaN is refused. A decoder whose training concepts include test concepts is
/// refused unless --allow-seen-concepts.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon eeg eval --data sim-eeg --decoder nice-sub-01 --decoder nice-sub-02 --out scores-nice.json"
)]
#[command(mut_arg("json", |a| a.help("Print the scores as JSON")))]
pub struct EvalArgs {
    #[command(flatten)]
    request: EegEvalRequest,
    #[command(flatten)]
    json: JsonArg,
}

/// Reconstruct the test images a decoder's subject saw, from the decoded embeddings
///
/// Two ridge maps, fitted on the training images, take an image embedding (with unit norm) to
/// the diffusion model's VAE latent z and to the text context of a prompt naming the image's
/// concept (--prompt, `{concept}` the THINGS folder's words). Each test image's decoded
/// embedding goes through both; the decoded z's image is noised to --strength and denoised
/// under the decoded context (the linear route's img2img). Writes OUT/decoded-z/<i>.png,
/// OUT/sample-<k>/<i>.png, OUT/stimuli/<i>.png, OUT/comparison.png and OUT/reconstruction.json
/// with each set's scores (`brainrecon eval` on a folder). A rerun continues an interrupted run.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon eeg reconstruct --data sim-eeg --decoder nice-sub-01 --embeddings embeddings --out recons-sub-01"
)]
#[command(mut_arg("json", |a| a.help("Print the report as JSON")))]
pub struct ReconstructArgs {
    #[command(flatten)]
    request: EegReconstructRequest,
    #[command(flatten)]
    json: JsonArg,
}

/// Decode a recording trial by trial as it arrives, with a live page
///
/// Reads --source (EDF/BDF, CSV, NWB, NumPy or raw, as `stream` reads files) at its own pace
/// (or --fast). Each upward step of the --stim channel is an image's onset; once the recording
/// reaches the end of that trial's epoch (the decoder's channels, first time and length), the
/// epoch is cut (baseline-corrected unless --no-baseline, resampled to the decoder's rate),
/// decoded, and the test images of --data ranked. The page (http://127.0.0.1:8080/ unless
/// --no-serve) shows the seen image, when the code names a test image (code i: test image i),
/// beside the four ranked highest. Writes OUT/session.json: every trial, single-trial top-1 and
/// top-5, and the latency from the chunk completing an epoch to its image.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon eeg live --source session.edf --stim Status --decoder nice-sub-01 --data THINGS-EEG2 --out live-session\n  \
    brainrecon eeg live --source rehearsal.csv --rate 100 --decoder nice-sub-01 --data sim-eeg --no-baseline --fast --no-serve --out live"
)]
#[command(mut_arg("json", |a| a.help("Print the session's record as JSON")))]
pub struct LiveArgs {
    /// The recording
    #[arg(long)]
    source: PathBuf,
    /// Sample rate in Hz (CSV, NumPy and raw files)
    #[arg(long)]
    rate: Option<f64>,
    /// Channel count (raw files)
    #[arg(long)]
    channels: Option<usize>,
    /// i16, f32, npy, csv, edf or nwb (default: from the extension)
    #[arg(long)]
    format: Option<String>,
    /// The stim channel's label
    #[arg(long, default_value = "stim")]
    stim: String,
    /// The decoder folder (`eeg fit`)
    #[arg(long)]
    decoder: PathBuf,
    /// The THINGS-EEG2 folder holding the test images
    #[arg(long)]
    data: PathBuf,
    /// Leave the epochs as they are (recordings made of baseline-corrected epochs)
    #[arg(long)]
    no_baseline: bool,
    /// Read as fast as possible instead of at the recording's pace
    #[arg(long)]
    fast: bool,
    /// Serve the page on ADDRESS
    #[arg(long, value_name = "ADDRESS", conflicts_with = "no_serve")]
    serve: Option<String>,
    /// No page
    #[arg(long)]
    no_serve: bool,
    /// Where to write session.json
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    json: JsonArg,
}

/// `--format` for `eeg live`.
fn stream_format(name: &str) -> anyhow::Result<Format> {
    Format::from_name(name).ok_or_else(|| {
        super::usage(format!(
            "--format: expected i16, f32, npy, csv, edf or nwb, found '{name}'"
        ))
    })
}

pub fn run(command: EegCommand) -> anyhow::Result<()> {
    let progress = super::show_progress();
    match command {
        EegCommand::Preprocess(a) => {
            let request = PreprocessRequest {
                data: a.data,
                subjects: a.subjects,
                out: a.out,
                options: RawPreprocessing {
                    sfreq: a.sfreq,
                    tmin: a.tmin,
                    tmax: a.tmax,
                    channels: a.channels,
                    mvnn: a.mvnn.dim(),
                },
            };
            let report = preprocess(&request, |subject| {
                if progress {
                    eprintln!("preprocessing {subject}");
                }
            })?;
            a.json.print(&report, |r| r.text())
        }
        EegCommand::BidsPrepare(a) => {
            let report = prepare_bids(&BidsEegRequest {
                bids_root: a.bids_root,
                subject: a.subject,
                task: a.task,
                images: a.images,
                out: a.out,
                options: RawPreprocessing {
                    sfreq: a.sfreq,
                    channels: a.channels,
                    mvnn: a.mvnn.dim(),
                    ..RawPreprocessing::default()
                },
            })?;
            a.json.print(&report, |r| r.text())
        }
        EegCommand::MegPrepare(a) => {
            let report = prepare_meg(&a.request)?;
            a.json.print(&report, |r| r.text())
        }
        EegCommand::Embed(a) => {
            let request = EmbedRequest {
                progress,
                ..a.request
            };
            let meta = embed_images(&request)?;
            a.json.print(&meta, |m| m.text(&request.out))
        }
        EegCommand::Fit(a) => {
            let training = match (a.subject, a.leave_out) {
                (Some(s), None) => Training::Subject(s),
                (None, Some(s)) => Training::LeaveOut(s),
                _ => return Err(super::usage("give one of --subject and --leave-out")),
            };
            let request = EegFitRequest {
                data: a.data,
                training,
                method: a.method,
                embeddings: a.embeddings,
                out: a.out,
                nice: NiceTrainOptions {
                    epochs: a.epochs,
                    batch: a.batch,
                    lr: a.lr,
                    seed: a.seed,
                    checkpoint_every: a.checkpoint_every,
                    engine: TrainEngine::parse(&a.engine).map_err(|e| usage(format!("--{e}")))?,
                },
                ridge: RidgeDecoderOptions {
                    window: a.window.as_deref().map(parse_window).transpose()?,
                    ..RidgeDecoderOptions::default()
                },
                allow_seen_concepts: a.allow_seen_concepts,
                progress,
            };
            let report = fit(&request, |_, _| {})?;
            a.json.print(&report, |r| r.text())
        }
        EegCommand::Live(a) => {
            let request = LiveEegRequest {
                source: a.source,
                open: OpenOptions {
                    format: a.format.as_deref().map(stream_format).transpose()?,
                    rate: a.rate,
                    channels: a.channels,
                    ..OpenOptions::default()
                },
                stim: a.stim,
                decoder: a.decoder,
                data: a.data,
                baseline: !a.no_baseline,
                pace: if a.fast { Pace::Fast } else { Pace::RealTime },
                serve: !a.no_serve,
                serve_address: a.serve,
                out: a.out,
            };
            let report = run_live(&request, &|line| eprintln!("{line}"), |trial| {
                if progress {
                    eprintln!("{}", trial.text());
                }
            })?;
            a.json.print(&report, |r| r.text())
        }
        EegCommand::Reconstruct(a) => {
            let report = reconstruct(&EegReconstructRequest {
                progress,
                ..a.request
            })?;
            a.json.print(&report, |r| r.text())
        }
        EegCommand::Eval(a) => {
            let report = evaluate(&a.request)?;
            a.json.print(&report, |r| r.text())
        }
    }
}
