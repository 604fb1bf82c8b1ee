use crate::args::JsonArg;
use brainrecon_routes::naturalistic::embedded::{
    train_word2vec_movie, CORPUS_RUNS, CORPUS_SECONDS,
};
use std::path::PathBuf;

/// Train word2vec-movie, the project's skip-gram vectors of the synthetic movie annotations.
///
/// The corpus is the annotation grammar of `simulate --kind movie` (every kind, RUNS runs of
/// 600 s from the seed); skip-gram with negative sampling as word2vec.c (32 dimensions, window
/// 5, 5 negatives, 5 epochs), on one thread so the seed fixes the vectors. Writes
/// OUT/vectors.bin (word2vec binary format, which gensim reads) and OUT/training.json.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon train-word2vec --out models/word2vec-movie --seed 0\n  brainrecon encode-runs --subject runs/sub-01 --text-model models/word2vec-movie/vectors.bin --out enc"
)]
#[command(mut_arg("json", |a| a.help("Print a summary as JSON")))]
pub struct Args {
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// Seed of the corpus and the training
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let vectors = train_word2vec_movie(&args.out, args.seed)?;
    let summary = serde_json::json!({
        "out": args.out,
        "words": vectors.words.len(),
        "dim": vectors.dim,
        "corpus_runs": CORPUS_RUNS,
        "corpus_seconds": CORPUS_SECONDS,
        "seconds": started.elapsed().as_secs_f64(),
    });
    if args.json.json {
        return crate::commands::print_json(&summary);
    }
    outln!(
        "trained word2vec-movie in {:.1} s: {} words × {} → {}",
        started.elapsed().as_secs_f64(),
        vectors.words.len(),
        vectors.dim,
        args.out.join("vectors.bin").display()
    )?;
    Ok(())
}
