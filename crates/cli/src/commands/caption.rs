use super::usage;
use crate::args::{DeviceArgs, JsonArg};
use brainrecon_data::prepared::PreparedSubject;
use brainrecon_language::generate::BeamScoring;
use brainrecon_routes::caption::decode::{
    caption_test_images, CaptionOptions, Captioner, TokenSource,
};
use brainrecon_routes::caption::load_captioner;
use brainrecon_routes::decoders::{default_features_dir, Decoder};
use std::path::PathBuf;

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

fn options(args: &Args) -> anyhow::Result<CaptionOptions> {
    let scoring = BeamScoring::parse(&args.beam_scoring).ok_or_else(|| {
        usage(format!(
            "--beam-scoring: expected published, transformers4 or transformers5, found '{}'",
            args.beam_scoring
        ))
    })?;
    if args.beams == 0 || args.max_length <= args.min_length.max(1) {
        return Err(usage(format!(
            "--beams must be ≥ 1 and --max-length ({}) greater than --min-length ({})",
            args.max_length, args.min_length
        )));
    }
    Ok(CaptionOptions {
        num_beams: args.beams,
        max_length: args.max_length,
        min_length: args.min_length,
        repetition_penalty: args.repetition_penalty,
        scoring,
        prompt: args.prompt.clone(),
        limit: args.limit,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let options = options(&args)?;
    let subject = PreparedSubject::open(&args.subject)?;
    let device = args.device.device()?;
    let decoder = match (args.source.as_str(), &args.decoders) {
        ("decoded", Some(dir)) => Some(Decoder::load(&dir.join("blip"))?),
        ("decoded", None) => return Err(usage("--source decoded needs --decoders DIR")),
        ("features", _) => None,
        (other, _) => {
            return Err(usage(format!(
                "--source: expected decoded or features, found '{other}'"
            )))
        }
    };
    let features = args
        .features
        .clone()
        .unwrap_or_else(|| default_features_dir(&subject));
    let source = match &decoder {
        Some(decoder) => TokenSource::Decoded(decoder),
        None => TokenSource::Features(&features),
    };
    let loaded = load_captioner(&args.blip, &device)?;
    let captioner = Captioner {
        model: &loaded.model,
        tokenizer: &loaded.tokenizer,
        name: args.blip.clone(),
        fingerprint: loaded.fingerprint.clone(),
        device: device.clone(),
    };
    let file = caption_test_images(
        &subject,
        &source,
        &captioner,
        &options,
        &args.out,
        super::show_progress(),
    )?;
    if args.json.json {
        return super::print_json(&file);
    }
    for item in file.items.iter().take(10) {
        let truth = item.true_captions.first().map(String::as_str).unwrap_or("");
        outln!("{:>6}  {}   (seen: {truth})", item.id, item.caption)?;
    }
    let path = args.out.join(brainrecon_routes::caption::CAPTIONS_FILE);
    if let Ok(s) = brainrecon_routes::caption::scores::score_captions(&file, &path, None) {
        outln!(
            "against the seen images' captions: BLEU-1 {:.1}, BLEU-4 {:.1}, ROUGE-L {:.1}, CIDEr {:.1} \
             (eval adds METEOR and CLIP-S)",
            s.bleu_1, s.bleu_4, s.rouge_l, s.cider
        )?;
    }
    outln!("{} captions → {}", file.items.len(), path.display())?;
    Ok(())
}
