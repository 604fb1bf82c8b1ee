use super::usage;
use brainrecon_data::npy;
use brainrecon_data::runs::ds005531::{annotation_segments, Markup};
use brainrecon_routes::naturalistic::{load_featurizer, LayerChoice, TextFeaturizer};
use std::path::{Path, PathBuf};

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
    /// auto, ds005531 or plain: how a line is read (auto: ds005531 when lines carry its
    /// [HH:MM:SS] stamps)
    #[arg(long, default_value = "auto")]
    markup: String,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn annotation_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| brainrecon_data::DataError::io(path, e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(usage(format!(
            "{}: no annotation files (*.txt)",
            path.display()
        )));
    }
    Ok(files)
}

/// The annotation kind of `<title>_run-NN_<kind>_each1sec` (else the whole stem).
fn kind_of(stem: &str) -> &str {
    let base = stem.strip_suffix("_each1sec").unwrap_or(stem);
    match base.split_once("_run-") {
        Some((_, rest)) => rest.split_once('_').map_or(rest, |(_, kind)| kind),
        None => base,
    }
}

/// ds005531's markup when the first line with text starts with a `[…]` stamp.
fn detect_markup(lines: &[String]) -> Markup {
    match lines.iter().find(|l| !l.trim().is_empty()) {
        Some(line) if line.trim_start().starts_with('[') && line.contains(']') => Markup::Ds005531,
        _ => Markup::Plain,
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.pool != "mean" {
        return Err(usage(format!(
            "--pool: only mean exists, found {}",
            args.pool
        )));
    }
    let markup = match args.markup.as_str() {
        "auto" => None,
        "ds005531" => Some(Markup::Ds005531),
        "plain" => Some(Markup::Plain),
        other => {
            return Err(usage(format!(
                "--markup: expected auto, ds005531 or plain, found {other}"
            )))
        }
    };
    let files = annotation_files(&args.annotations)?;
    let device = super::device(&args.device)?;
    let featurizer = load_featurizer(&args.model, &LayerChoice::parse(&args.layer)?, &device)?;
    super::write_folder_atomic(&args.out, |dir| {
        files
            .iter()
            .try_for_each(|file| write_file_features(&featurizer, markup, file, dir))
    })?;
    outln!("{} annotation files → {}", files.len(), args.out.display())?;
    Ok(())
}

/// Features of one annotation file's lines, written as `<stem>.npy` (`<stem>.<layer>.npy` for
/// several layers) into `dir`; the warnings about words out of the vocabulary on stderr.
fn write_file_features(
    featurizer: &TextFeaturizer,
    markup: Option<Markup>,
    file: &Path,
    dir: &Path,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).map_err(|e| brainrecon_data::DataError::io(file, e))?;
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    let kind = kind_of(&stem);
    let markup = markup.unwrap_or_else(|| detect_markup(&lines));
    let segments: Vec<Vec<String>> = lines
        .iter()
        .map(|line| annotation_segments(markup, kind, line))
        .collect();
    let features = featurizer.segment_features(&segments)?;
    if features.all_zero() {
        eprintln!(
            "warning: {}: every row is zero ({} of {} words out of the vocabulary of {})",
            file.display(),
            features.skipped,
            features.words,
            featurizer.name()
        );
    }
    let several = features.layers.len() > 1;
    for (layer, values) in &features.layers {
        let name = if several {
            format!("{stem}.{layer}.npy")
        } else {
            format!("{stem}.npy")
        };
        npy::write(&dir.join(name), &[lines.len(), features.dim], values)?;
    }
    if features.skipped > 0 {
        let share = features
            .out_of_vocabulary()
            .map(|f| format!(" ({:.0}% of {} words)", 100.0 * f, features.words))
            .unwrap_or_default();
        eprintln!(
            "{}: {} words or lines not fully used (out of vocabulary or truncated){share}",
            file.display(),
            features.skipped
        );
    }
    Ok(())
}
