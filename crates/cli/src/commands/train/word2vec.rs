use crate::commands::prelude::*;
use brainrecon_routes::naturalistic::annotations::parse_markup;
use brainrecon_routes::naturalistic::corpus::{train_word2vec_on_corpus, Word2VecConfig};
use brainrecon_zoo::word2vec_movie::{train_word2vec_movie, MovieTraining};

/// Train skip-gram word vectors: word2vec-movie on the synthetic movie annotations, or your
/// own on any text corpus (`--corpus`).
///
/// Without `--corpus` the corpus is the annotation grammar of `simulate --kind movie` (every
/// kind, RUNS runs of 600 s from the seed), trained with word2vec-movie's settings (32
/// dimensions, window 5, 5 negatives, 5 epochs, every word kept).
///
/// With `--corpus` (files, or folders of *.txt files and extension-less files such as
/// WikiExtractor's wiki_00; repeatable) every line is split into words as `features text` and
/// `encode-runs` split it: ds005531's markup where a file carries its [HH:MM:SS] stamps (each
/// annotator or utterance a sentence), lower-cased words, Japanese segmented by TinySegmenter.
/// So vectors trained on a dataset's annotations or a Japanese Wikipedia dump have the words
/// the route looks up. Settings default to gensim's `Word2Vec(sg=1)`: 100 dimensions, window
/// 5, 5 negatives, min-count 5, 5 epochs, sample 1e-3.
///
/// Skip-gram with negative sampling as word2vec.c, on one thread so the seed fixes the vectors.
/// Writes OUT/vectors.bin (word2vec's binary format, which gensim reads and `--text-model` /
/// `features text --model` take) and OUT/training.json (command, corpus files and counts,
/// settings).
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon train-word2vec --out models/word2vec-movie --seed 0\n  brainrecon train-word2vec --corpus ds005531/derivatives/annotation --min-count 1 --dim 32 --out w2v-ja\n  brainrecon features text --model w2v-ja/vectors.bin --annotations ds005531/derivatives/annotation --out feats/w2v-ja"
)]
#[command(mut_arg("json", |a| a.help("Print a summary as JSON")))]
pub struct Args {
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// Seed of the corpus (without --corpus) and of the training
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A text file or a folder of them to train on (repeatable)
    #[arg(long)]
    corpus: Vec<PathBuf>,
    /// auto, ds005531 or plain: how a corpus line is read (auto: ds005531 when any line of the
    /// file carries its [HH:MM:SS] stamp)
    #[arg(long, default_value = "auto", requires = "corpus")]
    markup: String,
    /// Dimensions of the vectors (with --corpus)
    #[arg(long, default_value_t = 100, requires = "corpus")]
    dim: usize,
    /// Largest distance between a word and its context words (with --corpus)
    #[arg(long, default_value_t = 5, requires = "corpus")]
    window: usize,
    /// Noise words per pair (with --corpus)
    #[arg(long, default_value_t = 5, requires = "corpus")]
    negative: usize,
    /// Words seen fewer times are left out of the vocabulary (with --corpus)
    #[arg(long, default_value_t = 5, requires = "corpus")]
    min_count: usize,
    /// Passes over the corpus (with --corpus)
    #[arg(long, default_value_t = 5, requires = "corpus")]
    epochs: usize,
    /// Threshold of frequent-word subsampling, 0 = off (with --corpus)
    #[arg(long, default_value_t = 1e-3, requires = "corpus")]
    sample: f64,
    /// Starting learning rate, decayed linearly (with --corpus)
    #[arg(long, default_value_t = 0.025, requires = "corpus")]
    alpha: f32,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    if args.corpus.is_empty() {
        let vectors = train_word2vec_movie(&args.out, args.seed)?;
        let seconds = started.elapsed().as_secs_f64();
        let summary = MovieTraining::new(&args.out, &vectors, seconds);
        return args.json.print(&summary, MovieTraining::text);
    }
    let markup = parse_markup(&args.markup)?;
    let config = Word2VecConfig {
        dim: args.dim,
        window: args.window,
        negative: args.negative,
        min_count: args.min_count,
        epochs: args.epochs,
        alpha: args.alpha,
        sample: args.sample,
        seed: args.seed,
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let progress = crate::commands::show_progress();
    let summary =
        train_word2vec_on_corpus(&args.corpus, markup, &config, &args.out, &command, progress)?;
    let seconds = started.elapsed().as_secs_f64();
    args.json
        .print(&summary.json(seconds)?, |_| summary.text(seconds))
}
