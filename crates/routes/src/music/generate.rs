//! `music generate`: music for each decoded test clip, Brain2Music's generation step with open
//! parts. MusicLM (conditioned on the decoded MuLan embedding) is not released, so MusicGen is
//! conditioned on text instead: the caption of a caption bank nearest to the decoded CLAP
//! embedding in CLAP's joint audio–text space.
//!
//! ```text
//! <out>/generated/<track>.wav   16-bit PCM at the codec's rate (mono, or stereo checkpoints' 2)
//! <out>/generation.json         GenerationSummary: per clip the chosen caption and its cosine
//! ```
//!
//! With `exclude_test` the bank's rows whose `track` is one of the fit's test clips are left out,
//! so a clip's own caption is never the one chosen.

use super::embed::{Embedder, EmbeddingKind};
use super::fit::{MusicFitSummary, SUMMARY_FILE};
use super::retrieve::{genre_of, top_matches};
use crate::error::{Result, RouteError};
use crate::progress;
use brainrecon_audio::encodec::EncodecModel;
use brainrecon_audio::musicgen::{
    resolve_model_dir, Decoding, GenerationSettings, MusicgenForConditionalGeneration,
};
use brainrecon_core::fs::{read_json, write_json_atomic};
use brainrecon_formats::audio::wav;
use brainrecon_formats::npy;
use brainrecon_language::t5_tokenizer::T5Tokenizer;
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The generation's summary in its folder, [`GenerationSummary`].
pub const SUMMARY: &str = "generation.json";
/// facebook's MusicGen checkpoints sample with top-k 250 (used when a folder has no
/// generation_config.json).
const MUSICGEN_TOP_K: usize = 250;
/// facebook's MusicGen guidance scale (used when generation_config.json does not set one).
const MUSICGEN_GUIDANCE: f32 = 3.0;

/// What `brainrecon music generate` is asked.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct GenerateOptions {
    /// A `music fit` folder of CLAP embeddings.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "A `music fit` folder of CLAP embeddings (clap-audio or clap-text)"
        )
    )]
    pub fit: PathBuf,
    /// The caption bank: a TSV with a `caption` column (and optionally `track`), or a `.txt`
    /// file with one caption per line.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "The caption bank: TSV with a caption column (track optional) or .txt, one per line"
        )
    )]
    pub captions: PathBuf,
    /// A MusicGen folder or hub id (with T5's `tokenizer.json`).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value = "facebook/musicgen-small",
            help = "MusicGen: a folder (config.json, model.safetensors, tokenizer.json) or a cached hub id"
        )
    )]
    pub musicgen: String,
    /// The folder to write: `generated/<track>.wav` and `generation.json`.
    #[cfg_attr(feature = "cli", arg(long, help = "Output folder"))]
    pub out: PathBuf,
    /// Seconds of audio per clip.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 10.0, help = "Seconds of audio per clip")
    )]
    pub seconds: f64,
    /// Classifier-free guidance (None: generation_config.json's, else 3).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Classifier-free guidance (default: generation_config.json's, else 3)"
        )
    )]
    pub guidance: Option<f32>,
    /// Top-k sampling, 0 = greedy (None: generation_config.json's, else 250).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Top-k sampling, 0 = greedy (default: generation_config.json's, else 250)"
        )
    )]
    pub top_k: Option<usize>,
    /// Clip `i` draws from ChaCha8 seeded with `seed + i`.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 0,
            help = "Clip i samples from a ChaCha8 stream seeded with SEED + i"
        )
    )]
    pub seed: u64,
    /// Leave out the bank's captions of the fit's test clips.
    #[cfg_attr(feature = "cli", arg(long = "keep-test-captions", action = clap::ArgAction::SetFalse, help = "Let a test clip's own caption be chosen (left out by default)"))]
    pub exclude_test: bool,
    /// Draw progress bars.
    #[cfg_attr(feature = "cli", arg(skip))]
    pub progress: bool,
}

/// One caption of the bank.
#[derive(Debug, Clone, PartialEq)]
pub struct BankCaption {
    /// The caption's text.
    pub caption: String,
    /// The `track` column (`blues.00042`), when the bank has one.
    pub track: Option<String>,
}

/// One generated clip.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GeneratedClip {
    /// The heard test clip.
    pub track: String,
    /// Its GTZAN genre.
    pub genre: String,
    /// The bank's caption nearest to the decoded embedding.
    pub caption: String,
    /// The caption's `track`, when the bank names one.
    pub caption_track: Option<String>,
    /// The caption's genre, when its track names a GTZAN genre.
    pub caption_genre: Option<String>,
    /// Cosine between the decoded embedding and the caption's CLAP text embedding.
    pub cosine: f64,
    /// Relative to the output folder.
    pub file: String,
}

/// `generation.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GenerationSummary {
    /// The `music fit` folder whose decoded clips were used.
    pub fit: PathBuf,
    /// The fit's embedding.
    pub embedding: EmbeddingKind,
    /// The CLAP model that embedded the captions (the fit's).
    pub clap_model: String,
    /// The caption bank.
    pub captions: PathBuf,
    /// Captions searched (after the test clips' own were left out).
    pub bank_size: usize,
    /// Rows left out because their track is a test clip's.
    pub excluded: usize,
    /// The MusicGen model as named.
    pub musicgen: String,
    /// The codec's sampling rate (Hz).
    pub sample_rate: u32,
    /// Audio channels (1, or 2 for stereo checkpoints).
    pub channels: usize,
    /// Codec frames per clip and the audio they decode to.
    pub frames: usize,
    /// Audio samples per channel of a clip.
    pub samples: usize,
    /// Seconds of audio per clip: samples / sample_rate.
    pub seconds: f64,
    /// Tokens generated per clip: the frames plus the codebook delay.
    pub max_new_tokens: usize,
    /// Classifier-free guidance scale (1 = none).
    pub guidance: f32,
    /// 0 = greedy.
    pub top_k: usize,
    /// Sampling temperature (generation_config.json's).
    pub temperature: f32,
    /// Clip `i` drew from ChaCha8 seeded with `seed + i`.
    pub seed: u64,
    /// One per decoded test clip.
    pub clips: Vec<GeneratedClip>,
    /// Share of clips whose genre wins top-1 among the bank's captions of a known genre: the
    /// clip's most similar caption of its genre is strictly more similar than every caption of
    /// another genre (ties count against the clip, [`brainrecon_metrics::rank`]); None when no
    /// caption's track has a known genre.
    pub caption_genre_accuracy: Option<f64>,
    /// 1 / the number of genres among the bank's captions.
    pub genre_chance: Option<f64>,
}

/// Reads a caption bank: a `.txt` file with one caption per line, else a tab-separated table
/// whose header has a `caption` column and optionally `track` (quotes around tracks dropped).
pub fn read_caption_bank(path: &Path) -> Result<Vec<BankCaption>> {
    let text = brainrecon_core::text::read_text(path)?;
    let is_txt = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("txt"));
    let bank = if is_txt {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| BankCaption {
                caption: l.to_string(),
                track: None,
            })
            .collect()
    } else {
        read_caption_table(path, &text)?
    };
    if bank.is_empty() {
        return Err(RouteError::mismatch(
            path,
            "caption",
            "at least one caption",
            "none",
        ));
    }
    Ok(bank)
}

fn read_caption_table(path: &Path, text: &str) -> Result<Vec<BankCaption>> {
    let mut lines = text.lines().enumerate();
    let header: Vec<&str> = lines
        .next()
        .map_or(Vec::new(), |(_, l)| l.split('\t').collect());
    let column = |name: &str| header.iter().position(|h| h.trim() == name);
    let Some(caption) = column("caption") else {
        return Err(RouteError::mismatch(
            path,
            "header",
            "a tab-separated header with a caption column (track optional), or a .txt file of one caption per line",
            format!("{:?}", header.join("\t")),
        ));
    };
    let track = column("track");
    let mut out = Vec::new();
    for (i, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split('\t').collect();
        let text = cells.get(caption).map_or("", |c| c.trim());
        if text.is_empty() {
            return Err(RouteError::mismatch(
                path,
                format!("line {}: caption", i + 1),
                "a caption",
                "an empty cell",
            ));
        }
        let track = track
            .and_then(|t| cells.get(t))
            .map(|t| t.trim().trim_matches('\'').to_string());
        out.push(BankCaption {
            caption: text.to_string(),
            track: track.filter(|t| !t.is_empty()),
        });
    }
    Ok(out)
}

/// The fit's summary and decoded clip embeddings, refused unless they are CLAP's.
fn read_fit(fit_dir: &Path) -> Result<(MusicFitSummary, Vec<f32>)> {
    let fit: MusicFitSummary = read_json(&fit_dir.join(SUMMARY_FILE))?;
    if fit.embedding == EmbeddingKind::Encodec {
        return Err(RouteError::Usage(format!(
            "{}: the fit decoded encodec embeddings; music generate picks the caption nearest to \
             the decoded embedding in CLAP's joint audio-text space, so it needs a fit of \
             --embedding clap-audio or clap-text",
            fit_dir.join(SUMMARY_FILE).display()
        )));
    }
    let path = fit_dir.join("decoded_clips.npy");
    let decoded = npy::read_f32(&path)?;
    if decoded.shape != [fit.test_clips.len(), fit.width] {
        return Err(RouteError::mismatch(
            &path,
            "shape",
            format!("[{}, {}] (music_fit.json)", fit.test_clips.len(), fit.width),
            format!("{:?}", decoded.shape),
        ));
    }
    // A decoder that outputs NaN is refused, not scored (brainrecon_metrics::rank).
    brainrecon_metrics::require_finite(&path.display().to_string(), &decoded.data, fit.width)?;
    Ok((fit, decoded.data))
}

/// The bank without the test clips' own captions (when `exclude`), and how many were dropped.
fn searchable_bank(
    bank: Vec<BankCaption>,
    fit: &MusicFitSummary,
    exclude: bool,
    path: &Path,
) -> Result<(Vec<BankCaption>, usize)> {
    let total = bank.len();
    if !exclude {
        return Ok((bank, 0));
    }
    let test: BTreeSet<String> = fit.test_clips.iter().map(|c| c.track_name()).collect();
    let kept: Vec<BankCaption> = bank
        .into_iter()
        .filter(|b| !b.track.as_ref().is_some_and(|t| test.contains(t)))
        .collect();
    if kept.is_empty() {
        return Err(RouteError::mismatch(
            path,
            "caption",
            "captions other than the test clips' own (or --keep-test-captions)",
            format!("only the test clips' {total}"),
        ));
    }
    let dropped = total - kept.len();
    Ok((kept, dropped))
}

/// Generation settings: the options over generation_config.json's values over facebook's.
struct Settings {
    max_new_tokens: usize,
    frames: usize,
    guidance: f32,
    top_k: usize,
    temperature: f32,
}

fn settings(
    opts: &GenerateOptions,
    model: &MusicgenForConditionalGeneration,
    codec: &EncodecModel,
    dir: &Path,
) -> Result<Settings> {
    let rate = codec.config.frame_rate();
    if !(opts.seconds.is_finite() && opts.seconds > 0.0) {
        return Err(RouteError::Usage(format!(
            "--seconds: expected a positive number, found {}",
            opts.seconds
        )));
    }
    let frames = ((opts.seconds * rate as f64).round() as usize).max(1);
    let decoder = &model.config.decoder;
    let max_new_tokens = frames + decoder.channel_codebooks() - 1;
    let limit = decoder.max_position_embeddings;
    if max_new_tokens > limit {
        let most = (limit + 1 - decoder.channel_codebooks()) as f64 / rate as f64;
        return Err(RouteError::Usage(format!(
            "--seconds {}: {} generates at most {most:.2} s ({limit} positions at the codec's {rate} frames per second)",
            opts.seconds,
            dir.display()
        )));
    }
    let file: Value = read_json(&dir.join("generation_config.json")).unwrap_or(Value::Null);
    let defaults = &model.generation;
    let guidance = opts
        .guidance
        .unwrap_or(if file.get("guidance_scale").is_some() {
            defaults.guidance_scale
        } else {
            MUSICGEN_GUIDANCE
        });
    if !(guidance.is_finite() && guidance >= 1.0) {
        return Err(RouteError::Usage(format!(
            "--guidance: expected a number ≥ 1 (1 = none), found {guidance}"
        )));
    }
    let top_k = opts.top_k.unwrap_or(match file.is_object() {
        true if defaults.do_sample => defaults.top_k,
        true => 0,
        false => MUSICGEN_TOP_K,
    });
    Ok(Settings {
        max_new_tokens,
        frames,
        guidance,
        top_k,
        temperature: defaults.temperature,
    })
}

/// Per test clip, the index of the bank's nearest caption and its cosine, and whether the
/// clip's genre wins top-1 among the captions of a known genre (ties against it:
/// [`super::retrieve::genre_top1`]; None when no caption's track has a known genre).
fn nearest_captions(
    fit: &MusicFitSummary,
    decoded: &[f32],
    bank: &[BankCaption],
    genres: &[String],
    device: &Device,
    show: bool,
) -> Result<Vec<(usize, f64, Option<bool>)>> {
    let embedder = Embedder::load(EmbeddingKind::ClapText, &fit.model, device)?;
    if embedder.width() != fit.width {
        return Err(RouteError::mismatch(
            Path::new(&fit.model),
            "projection_dim",
            format!("{} (the fit's width)", fit.width),
            embedder.width(),
        ));
    }
    let bar = progress::bar(bank.len() as u64, "caption bank", show);
    let mut rows = Vec::with_capacity(bank.len());
    for chunk in bank.chunks(32) {
        let texts: Vec<String> = chunk.iter().map(|b| b.caption.clone()).collect();
        let flat = embedder.embed_text(&texts)?;
        rows.extend(flat.chunks(fit.width).map(<[f32]>::to_vec));
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let caption_genres: Vec<Option<String>> = bank
        .iter()
        .map(|b| b.track.as_deref().and_then(genre_of))
        .collect();
    Ok(decoded
        .chunks(fit.width)
        .zip(genres)
        .map(|(query, genre)| {
            let (pick, cosine) = top_matches(query, &rows, 1)[0];
            let hit = super::retrieve::genre_top1(query, &rows, &caption_genres, genre);
            (pick, cosine, hit)
        })
        .collect())
}

/// One clip's audio: [channels × samples] interleaved.
fn generate_clip(
    model: &MusicgenForConditionalGeneration,
    codec: &EncodecModel,
    ids: Vec<u32>,
    s: &Settings,
    seed: u64,
    device: &Device,
) -> Result<(Vec<f32>, usize)> {
    let n = ids.len();
    let input = Tensor::from_vec(ids, (1, n), device)?;
    // transformers' processor passes a mask of ones; guidance zeroes it for the unconditional half
    let mask = Tensor::ones((1, n), candle_core::DType::U32, device)?;
    let decoding = if s.top_k == 0 {
        Decoding::Greedy
    } else {
        Decoding::Sample {
            top_k: s.top_k,
            temperature: s.temperature,
        }
    };
    let settings = GenerationSettings {
        max_new_tokens: s.max_new_tokens,
        guidance_scale: s.guidance,
        decoding,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let audio = model.generate_audio(codec, &input, Some(&mask), &settings, &mut rng)?;
    let (_, channels, samples) = audio.dims3()?;
    let audio = audio
        .squeeze(0)?
        .t()?
        .contiguous()?
        .flatten_all()?
        .to_vec1::<f32>()?;
    debug_assert_eq!(audio.len(), channels * samples);
    Ok((audio, channels))
}

/// Generates a clip per decoded test clip and writes the output folder (see the module docs).
pub fn generate_music(opts: &GenerateOptions, device: &Device) -> Result<GenerationSummary> {
    let (fit, decoded) = read_fit(&opts.fit)?;
    let (bank, excluded) = searchable_bank(
        read_caption_bank(&opts.captions)?,
        &fit,
        opts.exclude_test,
        &opts.captions,
    )?;
    let dir = resolve_model_dir(&opts.musicgen)?;
    let tokenizer = T5Tokenizer::from_dir(&dir)?;
    let model = MusicgenForConditionalGeneration::load_dir(&dir, device)?;
    let codec = model.load_audio_codec(device)?;
    let s = settings(opts, &model, &codec, &dir)?;
    let text_vocab = model.config.text_encoder.vocab_size;
    let clip_genres: Vec<String> = fit.test_clips.iter().map(|k| k.genre.clone()).collect();
    let nearest = nearest_captions(&fit, &decoded, &bank, &clip_genres, device, opts.progress)?;
    let out_dir = opts.out.join("generated");
    std::fs::create_dir_all(&out_dir).map_err(|e| brainrecon_core::DataError::io(&out_dir, e))?;
    let rate = codec.config.sampling_rate as u32;
    let bar = progress::bar(fit.test_clips.len() as u64, "generating", opts.progress);
    let (mut clips, mut samples, mut channels) = (Vec::new(), 0, 1);
    for (c, (key, &(pick, cosine, _))) in fit.test_clips.iter().zip(&nearest).enumerate() {
        let chosen = &bank[pick];
        let ids = tokenizer.encode(&chosen.caption)?;
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= text_vocab) {
            return Err(RouteError::mismatch(
                tokenizer.path(),
                "vocabulary",
                format!("token ids below the T5 encoder's vocab_size {text_vocab}"),
                format!("id {bad} in {:?}", chosen.caption),
            ));
        }
        let (audio, ch) = generate_clip(
            &model,
            &codec,
            ids,
            &s,
            opts.seed.wrapping_add(c as u64),
            device,
        )?;
        (samples, channels) = (audio.len() / ch, ch);
        let file = format!("generated/{}.wav", key.track_name());
        wav::write_pcm16(&opts.out.join(&file), rate, ch as u16, &audio)?;
        clips.push(GeneratedClip {
            track: key.track_name(),
            genre: key.genre.clone(),
            caption: chosen.caption.clone(),
            caption_track: chosen.track.clone(),
            caption_genre: chosen.track.as_deref().and_then(genre_of),
            cosine,
            file,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let judged: Vec<bool> = nearest.iter().filter_map(|n| n.2).collect();
    let genres: BTreeSet<String> = bank
        .iter()
        .filter_map(|b| b.track.as_deref().and_then(genre_of))
        .collect();
    let summary = GenerationSummary {
        fit: opts.fit.clone(),
        embedding: fit.embedding,
        clap_model: fit.model.clone(),
        captions: opts.captions.clone(),
        bank_size: bank.len(),
        excluded,
        musicgen: opts.musicgen.clone(),
        sample_rate: rate,
        channels,
        frames: s.frames,
        samples,
        seconds: samples as f64 / rate as f64,
        max_new_tokens: s.max_new_tokens,
        guidance: s.guidance,
        top_k: s.top_k,
        temperature: s.temperature,
        seed: opts.seed,
        clips,
        caption_genre_accuracy: (!judged.is_empty())
            .then(|| judged.iter().filter(|&&b| b).count() as f64 / judged.len() as f64),
        genre_chance: (!genres.is_empty()).then(|| 1.0 / genres.len() as f64),
    };
    write_json_atomic(&opts.out.join(SUMMARY), &summary)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caption_banks_read_tables_and_text_files() {
        let dir = tempfile::tempdir().unwrap();
        let tsv = dir.path().join("bank.tsv");
        std::fs::write(&tsv, "track\tstart\tcaption\n'jazz.00003'\t0.0\tA jazz tune.\n\nrock.00001\t5.0\tA rock song.\n").unwrap();
        let bank = read_caption_bank(&tsv).unwrap();
        assert_eq!(bank.len(), 2);
        assert_eq!(
            bank[0],
            BankCaption {
                caption: "A jazz tune.".into(),
                track: Some("jazz.00003".into())
            }
        );
        let txt = dir.path().join("bank.txt");
        std::fs::write(&txt, "first caption\n\n  second caption \n").unwrap();
        let bank = read_caption_bank(&txt).unwrap();
        assert_eq!(
            bank.iter().map(|b| b.caption.as_str()).collect::<Vec<_>>(),
            ["first caption", "second caption"]
        );
        assert!(bank.iter().all(|b| b.track.is_none()));
        std::fs::write(&tsv, "track\tcaption\n").unwrap();
        let e = read_caption_bank(&tsv).unwrap_err().to_string();
        assert!(
            e.contains("bank.tsv") && e.contains("at least one caption"),
            "{e}"
        );
        std::fs::write(&tsv, "track\ttext\nrock.00001\tA rock song.\n").unwrap();
        let e = read_caption_bank(&tsv).unwrap_err().to_string();
        assert!(e.contains("caption column"), "{e}");
        std::fs::write(&tsv, "track\tcaption\nrock.00001\t \n").unwrap();
        let e = read_caption_bank(&tsv).unwrap_err().to_string();
        assert!(e.contains("line 2: caption"), "{e}");
    }
}
