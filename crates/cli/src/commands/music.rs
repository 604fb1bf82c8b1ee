//! `brainrecon music …`: the Brain2Music route (decode music embeddings, identify, retrieve,
//! generate).

use super::{device, print_json, show_progress, usage};
use brainrecon_routes::music::generate::{generate_music, GenerateOptions};
use brainrecon_routes::music::{
    fit_music, retrieve, EmbeddingKind, MusicFitOptions, RetrieveOptions, WindowSpec,
};
use std::path::{Path, PathBuf};

/// Music from brain activity: decode music embeddings from fMRI, then retrieve or generate music
#[derive(clap::Subcommand)]
pub enum MusicCommand {
    Fit(FitArgs),
    Retrieve(RetrieveArgs),
    Generate(GenerateArgs),
    Demo(DemoArgs),
}

pub fn run(command: MusicCommand) -> anyhow::Result<()> {
    match command {
        MusicCommand::Fit(args) => fit(args),
        MusicCommand::Retrieve(args) => retrieve_command(args),
        MusicCommand::Generate(args) => generate_command(args),
        MusicCommand::Demo(args) => demo(args),
    }
}

/// Decode music embeddings of 10-s windows from the fMRI inside them (Brain2Music): one ridge
/// model per atlas ROI (alpha by K-fold CV over clips), the best ROIs' predictions averaged,
/// scored by identification accuracy on the test clips (chance 0.5).
///
/// Windows: each clip of the events (genre, track, start; ds003720's columns) is cut into
/// windows of --window seconds advanced --step; a window's target is the embedding of its
/// audio (clap-audio, encodec) or of its clip's caption (clap-text), its fMRI the mean of the
/// scans acquired inside it (shifted by --delay), test clips averaged over their repeats.
///
/// Every input (run set, model, the tracks the events name, atlas, captions) is checked before
/// the first window is embedded, and every problem is reported at once (exit 2). A clip may
/// end up to 0.1 s past the end of its track (its tail is then silence); further is refused.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon simulate --kind music --out sim-music\n  \
    brainrecon bids prepare --bids-root sim-music --subject 001 --task Training --task Test --mask sim-music/derivatives/mask/sub-001_mask.nii.gz --out runs-music\n  \
    brainrecon music fit --runs runs-music --stimuli sim-music/stimuli/genres --atlas sim-music/derivatives/atlas/sub-001_atlas-Destrieux_dseg.nii.gz --out music-fit"
)]
pub struct FitArgs {
    /// A run set of the Training and Test runs (`brainrecon bids prepare`)
    #[arg(long)]
    runs: PathBuf,
    /// The GTZAN folder: <genre>/<genre>.NNNNN.wav (also genres/ or genres_original/ inside)
    #[arg(long)]
    stimuli: PathBuf,
    /// Cortical ROI labels on the runs' grid (.nii/.nii.gz; e.g. Destrieux)
    #[arg(long)]
    atlas: PathBuf,
    /// index<TAB>name table of the atlas's labels (default: the atlas's .tsv beside it)
    #[arg(long)]
    atlas_names: Option<PathBuf>,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// clap-audio (MuLan-music's stand-in), clap-text (MuLan-text's) or encodec (SoundStream's)
    #[arg(long, default_value = "clap-audio")]
    embedding: String,
    /// CLAP: genres-clap (built in), a folder or a cached hub id (laion/clap-htsat-unfused);
    /// EnCodec: a folder or hub id (facebook/encodec_24khz)
    #[arg(long, default_value = "genres-clap")]
    model: String,
    /// track<TAB>start<TAB>caption per clip (clap-text)
    #[arg(long)]
    captions: Option<PathBuf>,
    /// ROIs whose predictions are averaged (the best by CV score)
    #[arg(long, default_value_t = 6)]
    top_rois: usize,
    /// Folds of the CV over clips
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Ridge penalties tried (default 10^0 … 10^6 in half decades)
    #[arg(long, value_delimiter = ',')]
    alphas: Option<Vec<f64>>,
    /// Seconds of audio per window
    #[arg(long, default_value_t = 10.0)]
    window: f64,
    /// Seconds between windows
    #[arg(long, default_value_t = 1.5)]
    step: f64,
    /// Seconds the scans are shifted after the audio (0: the scans inside the window)
    #[arg(long, default_value_t = 0.0)]
    delay: f64,
    /// The task whose runs are the test runs
    #[arg(long, default_value = "Test")]
    test_task: String,
    /// Keep each run's first clip (ds003720's analyses drop it: it repeats a clip)
    #[arg(long)]
    keep_first_clip: bool,
    /// ROIs with fewer voxels are left out
    #[arg(long, default_value_t = 10)]
    min_roi_voxels: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

fn default_alphas() -> Vec<f64> {
    (0..=12).map(|e| 10f64.powf(e as f64 * 0.5)).collect()
}

fn fit(args: FitArgs) -> anyhow::Result<()> {
    let opts = MusicFitOptions {
        runs: args.runs,
        stimuli: args.stimuli,
        atlas: args.atlas,
        atlas_names: args.atlas_names,
        out: args.out,
        embedding: EmbeddingKind::parse(&args.embedding)?,
        model: args.model,
        captions: args.captions,
        windows: WindowSpec {
            seconds: args.window,
            step: args.step,
            delay: args.delay,
        },
        top_rois: args.top_rois,
        folds: args.folds,
        alphas: args.alphas.unwrap_or_else(default_alphas),
        test_task: args.test_task,
        drop_first: !args.keep_first_clip,
        min_roi_voxels: args.min_roi_voxels,
        seed: args.seed,
        progress: show_progress(),
    };
    let summary = fit_music(&opts, &device(&args.device)?)?;
    if args.json {
        return print_json(&summary);
    }
    let kept: Vec<&str> = summary
        .rois
        .iter()
        .filter(|r| r.kept)
        .map(|r| r.name.as_str())
        .collect();
    outln!(
        "decoded {} ({} values) from {} ROIs, kept {}: identification {:.3} over {} test windows, {:.3} over {} test clips (chance 0.5)",
        summary.embedding.name(),
        summary.width,
        summary.rois.len(),
        kept.join(", "),
        summary.identification_windows,
        summary.test_windows,
        summary.identification_clips,
        summary.test_clips.len()
    )?;
    outln!("  written to {}", opts.out.display())?;
    Ok(())
}

/// Retrieve music for each decoded test clip: the nearest files of a library by cosine (each
/// file embedded once with the fit's model, the mean of its windows; cached in
/// LIBRARY/.brainrecon-cache), written as retrieval.json, playlist.m3u and index.html with
/// players for the heard clip and the matches. Files that do not decode are skipped with a
/// warning. Top-1 genre accuracy counts files whose folder or name is a GTZAN genre.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon music retrieve --fit music-fit --library sim-music/library --out music-page\n  \
    brainrecon music retrieve --fit music-fit --library fma_small --top-k 3 --out music-page"
)]
pub struct RetrieveArgs {
    /// A `music fit` folder
    #[arg(long)]
    fit: PathBuf,
    /// A folder of audio files (.wav, .flac, .mp3, .ogg), searched recursively
    #[arg(long)]
    library: PathBuf,
    /// Output folder for the page, the playlist and the heard clips
    #[arg(long)]
    out: PathBuf,
    /// Matches per clip
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Where library embeddings are cached (default LIBRARY/.brainrecon-cache)
    #[arg(long)]
    cache: Option<PathBuf>,
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

fn retrieve_command(args: RetrieveArgs) -> anyhow::Result<()> {
    let opts = RetrieveOptions {
        fit: args.fit,
        library: args.library,
        out: args.out,
        top_k: args.top_k,
        cache: args.cache,
        progress: show_progress(),
    };
    let summary = retrieve(&opts, &device(&args.device)?)?;
    if args.json {
        return print_json(&summary);
    }
    let share = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.1}%", 100.0 * v));
    outln!(
        "retrieved from {} library files ({} embedded now, {} skipped): top-1 genre accuracy {} (chance {})",
        summary.library_files,
        summary.embedded_now,
        summary.skipped.len(),
        share(summary.top1_genre_accuracy),
        share(summary.genre_chance)
    )?;
    outln!(
        "  page: {}\n  playlist: {}",
        summary.page.display(),
        summary.playlist.display()
    )?;
    Ok(())
}

/// Generate music for each decoded test clip: MusicGen conditioned on the caption of a caption
/// bank nearest to the decoded CLAP embedding (CLAP's joint audio-text space stands in for
/// MuLan's; MusicGen for MusicLM), written as OUT/generated/<track>.wav and generation.json.
///
/// The bank is a tab-separated table with a caption column (and a track column, e.g.
/// blues.00042) or a .txt file with one caption per line. The test clips' own captions are left
/// out unless --keep-test-captions. When the bank's tracks name GTZAN genres, the share of clips
/// whose chosen caption has the heard clip's genre is reported (chance 1 / genres).
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon music generate --fit music-fit --captions sim-music/stimuli/captions.tsv --musicgen facebook/musicgen-small --out music-generated\n  \
    brainrecon music generate --fit music-fit-clap --captions captions.txt --musicgen facebook/musicgen-small --seconds 10 --top-k 0 --out music-generated"
)]
pub struct GenerateArgs {
    /// A `music fit` folder of CLAP embeddings (clap-audio or clap-text)
    #[arg(long)]
    fit: PathBuf,
    /// The caption bank: TSV with a caption column (track optional) or .txt, one per line
    #[arg(long)]
    captions: PathBuf,
    /// MusicGen: a folder (config.json, model.safetensors, tokenizer.json) or a cached hub id
    #[arg(long, default_value = "facebook/musicgen-small")]
    musicgen: String,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// Seconds of audio per clip
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Classifier-free guidance (default: generation_config.json's, else 3)
    #[arg(long)]
    guidance: Option<f32>,
    /// Top-k sampling, 0 = greedy (default: generation_config.json's, else 250)
    #[arg(long)]
    top_k: Option<usize>,
    /// Clip i samples from a ChaCha8 stream seeded with SEED + i
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Let a test clip's own caption be chosen (left out by default)
    #[arg(long)]
    keep_test_captions: bool,
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

fn generate_command(args: GenerateArgs) -> anyhow::Result<()> {
    let opts = GenerateOptions {
        fit: args.fit,
        captions: args.captions,
        musicgen: args.musicgen,
        out: args.out,
        seconds: args.seconds,
        guidance: args.guidance,
        top_k: args.top_k,
        seed: args.seed,
        exclude_test: !args.keep_test_captions,
        progress: show_progress(),
    };
    let summary = generate_music(&opts, &device(&args.device)?)?;
    if args.json {
        return print_json(&summary);
    }
    let share = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let decoding = if summary.top_k == 0 {
        "greedy".to_string()
    } else {
        format!("top-k {}", summary.top_k)
    };
    outln!(
        "generated {} clips of {:.2} s ({} Hz, guidance {}, {decoding}) from {} captions: chosen caption's genre = heard genre {} (chance {})",
        summary.clips.len(),
        summary.seconds,
        summary.sample_rate,
        summary.guidance,
        summary.bank_size,
        share(summary.caption_genre_accuracy),
        share(summary.genre_chance)
    )?;
    outln!("  written to {}", opts.out.join("generated").display())?;
    Ok(())
}

/// Simulate a subject hearing music, prepare its runs, decode genres-clap embeddings and
/// retrieve music from a library nobody heard: a page with players (a few minutes on 2 cores)
#[derive(clap::Args)]
#[command(after_help = "Example:\n  brainrecon music demo --out music-demo\n  \
    brainrecon music demo --out music-demo-paper --size paper   (ds003720's 540 clips)")]
pub struct DemoArgs {
    /// Output folder (steps already done there are reused)
    #[arg(long)]
    out: PathBuf,
    /// small or paper
    #[arg(long, default_value = "small")]
    size: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn step(number: usize, title: &str, args: &[String]) -> anyhow::Result<()> {
    eprintln!("\n[{number}/4] {title}\n  brainrecon {}", args.join(" "));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::run_command_line(&refs)
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn demo(args: DemoArgs) -> anyhow::Result<()> {
    if !matches!(args.size.as_str(), "small" | "paper") {
        return Err(usage(format!(
            "--size: expected small or paper, found {:?}",
            args.size
        )));
    }
    let (sim, runs, fit, page) = (
        args.out.join("subject"),
        args.out.join("runs"),
        args.out.join("fit"),
        args.out.join("page"),
    );
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    if sim.join("truth/truth.json").is_file() {
        eprintln!("\n[1/4] simulated subject found in {}", sim.display());
    } else {
        let mut a = s(&[
            "simulate",
            "--kind",
            "music",
            "--out",
            &path(&sim),
            "--seed",
            &args.seed.to_string(),
        ]);
        if args.size == "paper" {
            a.extend(s(&["--size", "paper"]));
        }
        step(
            1,
            "simulate a subject hearing 15-s clips of 10 genres (ds003720's layout)",
            &a,
        )?;
    }
    step(
        2,
        "prepare the runs (detrend, z-score, brain mask)",
        &s(&[
            "bids",
            "prepare",
            "--bids-root",
            &path(&sim),
            "--subject",
            "001",
            "--task",
            "Training",
            "--task",
            "Test",
            "--mask",
            &path(&sim.join("derivatives/mask/sub-001_mask.nii.gz")),
            "--out",
            &path(&runs),
        ]),
    )?;
    step(
        3,
        "decode genres-clap embeddings of 10-s windows, one ridge per ROI, best 6 averaged",
        &s(&[
            "music",
            "fit",
            "--runs",
            &path(&runs),
            "--stimuli",
            &path(&sim.join("stimuli/genres")),
            "--atlas",
            &path(&sim.join("derivatives/atlas/sub-001_atlas-Destrieux_dseg.nii.gz")),
            "--out",
            &path(&fit),
            "--seed",
            &args.seed.to_string(),
        ]),
    )?;
    step(
        4,
        "retrieve music from a library nobody heard",
        &s(&[
            "music",
            "retrieve",
            "--fit",
            &path(&fit),
            "--library",
            &path(&sim.join("library")),
            "--out",
            &path(&page),
        ]),
    )?;
    outln!("open {} in a browser", page.join("index.html").display())?;
    Ok(())
}
