use crate::commands::prelude::*;
use brainrecon_routes::caption::decode::{caption_request, CaptionOptions, CaptionRequest};

/// Write a caption of every test image from its decoded BLIP image tokens.
///
/// The caption route (Takagi & Nishimoto): the tokens predicted by `fit --target blip` for
/// each test image's averaged betas go to BLIP's text decoder as its cross-attention states;
/// the prompt "a picture of " starts the text, and beam search (3 beams, 5 to 20 tokens with
/// the prompt, repetition penalty 1.5, as the published code) writes the rest.
/// `--beam-scoring published` scores beams as transformers 4.15 does, the version of the
/// paper's code (a finished beam's log-probability divided by its length with the prompt);
/// `transformers4` as 4.29–4.35 (another early-stopping check); `transformers5` as 5.x
/// (divided by the generated tokens): they can choose different captions.
///
/// Writes OUT/captions.json: per test image the caption, every finished beam with its score,
/// and the true captions. `--source features` captions the stimuli's own tokens instead (the
/// captioner's ceiling). `brainrecon reconstruct --method caption --captions OUT` uses them.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon fit --subject prepared/subj01 --target blip --out decoders/blip\n  brainrecon caption --subject prepared/subj01 --decoders decoders --blip shapes-blip --out captions/subj01\n  brainrecon reconstruct --method caption --captions captions/subj01 --subject prepared/subj01 --decoders decoders --out recons/caption"
)]
#[command(mut_arg("json", |a| a.help("Print the captions as JSON")))]
pub struct Args {
    /// A prepared subject directory
    #[arg(long)]
    subject: PathBuf,
    /// Directory with the blip/ decoder (`fit --target blip --out DIR/blip`)
    #[arg(long)]
    decoders: Option<PathBuf>,
    /// `decoded` (the decoders' predictions) or `features` (the stimuli's own tokens)
    #[arg(long, default_value = "decoded")]
    source: String,
    /// Features directory for --source features (default: SUBJECT/features)
    #[arg(long)]
    features: Option<PathBuf>,
    /// BLIP captioner: a transformers folder, cached id (Salesforce/blip-image-captioning-base)
    /// or shapes-blip (the project's own, built in)
    #[arg(long, default_value = "shapes-blip")]
    blip: String,
    /// Output directory (captions.json)
    #[arg(long)]
    out: PathBuf,
    /// Beams (1 = greedy search)
    #[arg(long, default_value_t = 3)]
    beams: usize,
    /// Longest caption in tokens, prompt included
    #[arg(long, default_value_t = 20)]
    max_length: usize,
    /// Shortest caption in tokens, prompt included
    #[arg(long, default_value_t = 5)]
    min_length: usize,
    /// Repetition penalty (1 = none)
    #[arg(long, default_value_t = 1.5)]
    repetition_penalty: f64,
    /// published (transformers 4.15, as the paper), transformers4 (4.29–4.35) or transformers5
    #[arg(long, default_value = "published")]
    beam_scoring: String,
    /// The text the caption starts from (stripped from the output)
    #[arg(long, default_value = "a picture of ")]
    prompt: String,
    /// Only the first N test images
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let request = CaptionRequest {
        subject: args.subject,
        decoders: args.decoders,
        source: args.source,
        features: args.features,
        blip: args.blip,
        out: args.out,
        options: CaptionOptions {
            num_beams: args.beams,
            max_length: args.max_length,
            min_length: args.min_length,
            repetition_penalty: args.repetition_penalty,
            prompt: args.prompt,
            limit: args.limit,
            ..CaptionOptions::default()
        },
        beam_scoring: args.beam_scoring,
        device: args.device.choice()?,
        progress: super::show_progress(),
    };
    let file = caption_request(&request)?;
    super::report(args.json.json, &file, |_| file.text(&request.out))
}
