//! `brainrecon features text`: features of annotation text, one row per line.

use crate::commands::prelude::*;
use brainrecon_routes::naturalistic::{text_features_request, TextFeaturesRequest};

/// Text features of annotation files: one row per line, mean-pooled over the line's tokens.
///
/// Each annotation file holds one line of text per second (ds005531's `*_each1sec.txt`; an
/// empty line gives zeros). ds005531's markup (`[HH:MM:SS]` stamps, `メイン#Speaker:…/…`
/// utterances, `/`-separated annotators, `不明`) is parsed as its authors do and a line's row
/// is the mean over its segments (`--markup auto` finds it from the stamps); Japanese is
/// segmented into words. The output is what `encode-runs --bands KIND=OUT` reads: it finds
/// `<title>_run-NN_<KIND>_each1sec.npy` per run and cuts the dummy seconds. `--model` is word2vec-movie (built in), a word2vec file, or a
/// transformers folder / model id (GPT-2, BERT, Llama families) whose hidden states are
/// mean-pooled over each line's tokens, special tokens included (`--layer L|last|all`, 0 = the
/// embeddings). Writes OUT/<file stem>.npy (float32, lines × width), or with `--layer all`
/// OUT/<file stem>.layer-LL.npy per hidden state.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon features text --model meta-llama/Llama-2-7b-hf --layer 16 --annotations ds005531/derivatives/annotation --out feats/llama2-l16\n  brainrecon features text --model word2vec-movie --annotations sim-movie/derivatives/annotation --out feats/w2v"
)]
pub struct Args {
    /// word2vec-movie, a word2vec file, or a language model folder / model id
    #[arg(long, default_value = "word2vec-movie")]
    model: String,
    /// An annotation file, or a folder of them (*.txt)
    #[arg(long)]
    annotations: PathBuf,
    /// Hidden state L (0 = embeddings), last or all
    #[arg(long, default_value = "last")]
    layer: String,
    /// Pooling over a line's tokens (mean is the only one)
    #[arg(long, default_value = "mean")]
    pool: String,
    /// auto, ds005531 or plain: how a line is read (auto: ds005531 when any line of the file
    /// carries its [HH:MM:SS] stamp)
    #[arg(long, default_value = "auto")]
    markup: String,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let out = args.out.clone();
    let files = text_features_request(&TextFeaturesRequest {
        model: args.model,
        annotations: args.annotations,
        layer: args.layer,
        pool: args.pool,
        markup: args.markup,
        out: args.out,
        device: args.device.choice()?,
    })?;
    outln!("{files} annotation files → {}", out.display())
}
