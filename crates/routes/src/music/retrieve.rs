//! `music retrieve`: the decoded embedding of each test clip against a music library (the
//! paper used FMA): every audio file embedded once (cached beside the library), the top-k by
//! cosine, a playlist (M3U) and a page with players for the stimulus and what was retrieved.

use super::embed::Embedder;
use super::fit::{MusicFitSummary, SUMMARY_FILE};
use crate::error::{Result, RouteError};
use crate::progress;
use crate::score::report::relative_href;
use brainrecon_audio::clap::SeededChoices;
use brainrecon_core::fs::{read_json, write_bytes_atomic, write_json_atomic};
use brainrecon_datasets::ds003720::{gtzan_track, GTZAN_GENRES};
use brainrecon_formats::audio::{read_audio, wav};
use brainrecon_formats::npy;
use brainrecon_metrics::vector::cosine_similarity;
use brainrecon_nn::rng::fnv1a64;
use candle_core::Device;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File extensions a library scan reads.
pub const AUDIO_EXTENSIONS: [&str; 5] = ["wav", "flac", "mp3", "ogg", "oga"];
/// The library's cache folder (inside the library).
pub const CACHE_DIR: &str = ".brainrecon-cache";

/// What `brainrecon music retrieve` is asked.
#[derive(Debug, Clone)]
pub struct RetrieveOptions {
    /// A `music fit` folder.
    pub fit: PathBuf,
    /// The music library: a folder of audio files (the paper used FMA).
    pub library: PathBuf,
    /// The folder to write: `retrieval.json`, `playlist.m3u`, `index.html`, `stimuli/`.
    pub out: PathBuf,
    /// Library files kept per test clip, most similar first.
    pub top_k: usize,
    /// Where library embeddings are cached (default: `<library>/.brainrecon-cache`).
    pub cache: Option<PathBuf>,
    /// Draw progress bars.
    pub progress: bool,
}

/// One retrieved library file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Match {
    /// Relative to the library.
    pub path: String,
    /// Cosine between the clip's decoded embedding and the file's.
    pub score: f64,
    /// Its GTZAN genre, when its folder or name tells one ([`genre_of`]).
    pub genre: Option<String>,
}

/// What one decoded test clip retrieved.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClipRetrieval {
    /// The test clip's track (`blues.00042`).
    pub track: String,
    /// Its GTZAN genre.
    pub genre: String,
    /// The top-k library files, most similar first.
    pub matches: Vec<Match>,
}

/// `retrieval.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RetrievalSummary {
    /// The `music fit` folder.
    pub fit: PathBuf,
    /// The library searched.
    pub library: PathBuf,
    /// Audio files embedded in the library (skipped ones not counted).
    pub library_files: usize,
    /// Files that did not decode: (path, reason).
    pub skipped: Vec<(String, String)>,
    /// Of those, files embedded in this run (the rest came from the cache).
    pub embedded_now: usize,
    /// Library files kept per test clip.
    pub top_k: usize,
    /// One per decoded test clip.
    pub clips: Vec<ClipRetrieval>,
    /// Share of test clips whose genre wins top-1 among the library files of a known genre:
    /// the clip's most similar file of its genre is strictly more similar than every file of
    /// another genre (ties count against the clip, [`brainrecon_metrics::rank`]). None when no
    /// library file has a known genre.
    pub top1_genre_accuracy: Option<f64>,
    /// 1 / the number of genres in the library.
    pub genre_chance: Option<f64>,
    /// The fit's identification accuracy over test windows (chance 0.5).
    pub identification_windows: f64,
    /// The fit's identification accuracy over test clips.
    pub identification_clips: f64,
    /// `index.html`: players for each stimulus and what it retrieved.
    pub page: PathBuf,
    /// `playlist.m3u`: each stimulus, then its matches.
    pub playlist: PathBuf,
}

/// Audio files under `root`, relative paths sorted (hidden folders skipped).
pub fn scan_library(root: &Path) -> Result<Vec<String>> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                walk(&path, root, out)?;
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
        Ok(())
    }
    if !root.is_dir() {
        return Err(RouteError::Missing {
            path: root.to_path_buf(),
            what: "a music library folder".into(),
        });
    }
    let mut files = Vec::new();
    walk(root, root, &mut files).map_err(|e| brainrecon_core::DataError::io(root, e))?;
    files.sort();
    if files.is_empty() {
        return Err(RouteError::Missing {
            path: root.to_path_buf(),
            what: format!(
                "audio files ({}) in the library",
                AUDIO_EXTENSIONS.join(", ")
            ),
        });
    }
    Ok(files)
}

/// A file's genre: its folder's name or its name's first part, when that is a GTZAN genre.
pub fn genre_of(rel: &str) -> Option<String> {
    let parts: Vec<&str> = rel.split('/').collect();
    let folder = parts.len().checked_sub(2).map(|i| parts[i]);
    let stem = parts.last().and_then(|f| f.split('.').next());
    [folder, stem]
        .into_iter()
        .flatten()
        .find(|p| GTZAN_GENRES.contains(p))
        .map(str::to_string)
}

/// The cache's index: one entry per embedded file, its row in `embeddings.npy`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct CacheIndex {
    model: String,
    embedding: String,
    window: f64,
    width: usize,
    entries: Vec<CacheEntry>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct CacheEntry {
    path: String,
    bytes: u64,
    modified_ns: u128,
}

fn file_stamp(root: &Path, rel: &str) -> Option<CacheEntry> {
    let meta = std::fs::metadata(root.join(rel)).ok()?;
    let modified_ns = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(CacheEntry {
        path: rel.to_string(),
        bytes: meta.len(),
        modified_ns,
    })
}

/// One library file's embedding: the mean of its consecutive `window`-second windows.
fn embed_file(embedder: &Embedder, path: &Path, window: f64, seed: u64) -> Result<Vec<f32>> {
    let audio = read_audio(path)?.to_mono_at(embedder.rate())?;
    let len = ((window * embedder.rate() as f64).round() as usize).max(1);
    let windows: Vec<Vec<f32>> = if audio.samples.len() <= len {
        vec![audio.samples.clone()]
    } else {
        audio
            .samples
            .chunks(len)
            .filter(|c| c.len() * 2 >= len)
            .map(<[f32]>::to_vec)
            .collect()
    };
    let rows = embedder.embed_audio(&windows, &mut SeededChoices::new(seed))?;
    let width = embedder.width();
    Ok((0..width)
        .map(|c| rows.iter().skip(c).step_by(width).sum::<f32>() / windows.len() as f32)
        .collect())
}

/// Library embeddings, reusing the cache for files whose size and time are unchanged. Files
/// that fail to decode are skipped with a warning.
fn library_embeddings(
    embedder: &Embedder,
    fit: &MusicFitSummary,
    opts: &RetrieveOptions,
    files: &[String],
) -> Result<LibraryEmbeddings> {
    let cache_dir = opts
        .cache
        .clone()
        .unwrap_or_else(|| opts.library.join(CACHE_DIR));
    let key = fnv1a64(format!("{}|{}", fit.model, fit.windows.seconds).as_bytes());
    let tag = format!("{}-{key:016x}", fit.embedding.audio_space().name());
    let (index_path, rows_path) = (
        cache_dir.join(format!("{tag}.json")),
        cache_dir.join(format!("{tag}.npy")),
    );
    let mut cached: BTreeMap<String, (CacheEntry, Vec<f32>)> = BTreeMap::new();
    if let (Ok(index), Ok(rows)) = (
        read_json::<CacheIndex>(&index_path),
        npy::read_f32(&rows_path),
    ) {
        if index.width == embedder.width() && rows.data.len() == index.entries.len() * index.width {
            for (i, e) in index.entries.into_iter().enumerate() {
                cached.insert(
                    e.path.clone(),
                    (
                        e,
                        rows.data[i * index.width..(i + 1) * index.width].to_vec(),
                    ),
                );
            }
        }
    }
    let bar = progress::bar(files.len() as u64, "library", opts.progress);
    let (mut kept, mut rows, mut skipped, mut fresh) = (Vec::new(), Vec::new(), Vec::new(), 0usize);
    let mut entries = Vec::new();
    for rel in files {
        bar.inc(1);
        let stamp = file_stamp(&opts.library, rel);
        if let (Some(stamp), Some((entry, row))) = (&stamp, cached.get(rel)) {
            if entry == stamp {
                kept.push(rel.clone());
                rows.push(row.clone());
                entries.push(stamp.clone());
                continue;
            }
        }
        match embed_file(
            embedder,
            &opts.library.join(rel),
            fit.windows.seconds,
            fit.seed,
        ) {
            Ok(row) => {
                fresh += 1;
                kept.push(rel.clone());
                if let Some(stamp) = stamp {
                    entries.push(stamp);
                }
                rows.push(row);
            }
            Err(e) if e.is_user_error() => {
                bar.suspend(|| {
                    eprintln!("warning: skipped {}: {e}", opts.library.join(rel).display())
                });
                skipped.push((rel.clone(), e.to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    bar.finish_and_clear();
    if kept.is_empty() {
        return Err(RouteError::Missing {
            path: opts.library.clone(),
            what: "a library file that decodes (every one was skipped)".into(),
        });
    }
    if fresh > 0 && entries.len() == kept.len() {
        let index = CacheIndex {
            model: fit.model.clone(),
            embedding: fit.embedding.name().into(),
            window: fit.windows.seconds,
            width: embedder.width(),
            entries,
        };
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let saved = std::fs::create_dir_all(&cache_dir)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                npy::write(&rows_path, &[kept.len(), embedder.width()], &flat)
                    .map_err(|e| e.to_string())
            })
            .and_then(|_| write_json_atomic(&index_path, &index).map_err(|e| e.to_string()));
        if let Err(e) = saved {
            eprintln!("warning: the library's embeddings were not cached ({e}); they will be computed again next time");
        }
    }
    Ok(LibraryEmbeddings {
        files: kept,
        rows,
        skipped,
        embedded_now: fresh,
    })
}

/// The library's files that decoded and their embeddings.
struct LibraryEmbeddings {
    /// Relative to the library.
    files: Vec<String>,
    rows: Vec<Vec<f32>>,
    /// (file, reason)
    skipped: Vec<(String, String)>,
    embedded_now: usize,
}

/// Cosine similarity; 0 where a vector is all zeros (no direction to rank by).
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    cosine_similarity(a, b)
        .ok()
        .filter(|c| !c.is_nan())
        .unwrap_or(0.0)
}

/// The `k` library rows most similar to `query` by cosine, best first (ties: earlier file).
pub fn top_matches(query: &[f32], rows: &[Vec<f32>], k: usize) -> Vec<(usize, f64)> {
    let mut scored: Vec<(usize, f64)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (i, cosine(query, r)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

/// Whether the clip's `genre` wins top-1 among the library files of a known genre (`genres`,
/// one per row of `rows`): its best file of that genre is strictly more similar to `query`
/// than every file of another genre; ties count against it ([`brainrecon_metrics::rank`]).
/// None when no file has a known genre.
pub fn genre_top1(
    query: &[f32],
    rows: &[Vec<f32>],
    genres: &[Option<String>],
    genre: &str,
) -> Option<bool> {
    let known: Vec<(f64, bool)> = rows
        .iter()
        .zip(genres)
        .filter_map(|(r, g)| g.as_ref().map(|g| (cosine(query, r), g == genre)))
        .collect();
    if known.is_empty() {
        return None;
    }
    let own = known
        .iter()
        .filter(|k| k.1)
        .map(|k| k.0)
        .fold(f64::NEG_INFINITY, f64::max);
    let others = known.iter().filter(|k| !k.1).map(|k| k.0);
    Some(brainrecon_metrics::at_least_as_good(own, others) == 0)
}

/// Retrieves the library's nearest files for every decoded test clip and writes
/// `retrieval.json`, `playlist.m3u`, `index.html` and the stimulus clips under `stimuli/`.
pub fn retrieve(opts: &RetrieveOptions, device: &Device) -> Result<RetrievalSummary> {
    if opts.top_k == 0 {
        return Err(RouteError::Usage("--top-k: expected 1 or more".into()));
    }
    let fit: MusicFitSummary = read_json(&opts.fit.join(SUMMARY_FILE))?;
    let decoded = npy::read_f32(&opts.fit.join("decoded_clips.npy"))?;
    if decoded.shape != [fit.test_clips.len(), fit.width] {
        return Err(RouteError::mismatch(
            &opts.fit.join("decoded_clips.npy"),
            "shape",
            format!("[{}, {}] (music_fit.json)", fit.test_clips.len(), fit.width),
            format!("{:?}", decoded.shape),
        ));
    }
    // A decoder that outputs NaN is refused, not scored (brainrecon_metrics::rank).
    brainrecon_metrics::require_finite(
        &opts.fit.join("decoded_clips.npy").display().to_string(),
        &decoded.data,
        fit.width,
    )?;
    let files = scan_library(&opts.library)?;
    let embedder = Embedder::load(fit.embedding.audio_space(), &fit.model, device)?;
    let LibraryEmbeddings {
        files: kept,
        rows,
        skipped,
        embedded_now: fresh,
    } = library_embeddings(&embedder, &fit, opts, &files)?;
    for (file, row) in kept.iter().zip(&rows) {
        brainrecon_metrics::require_finite(
            &format!(
                "the embedding of library file {}",
                opts.library.join(file).display()
            ),
            row,
            0,
        )?;
    }
    let file_genres: Vec<Option<String>> = kept.iter().map(|k| genre_of(k)).collect();
    let mut judged = Vec::new();
    let mut clips = Vec::new();
    for (c, key) in fit.test_clips.iter().enumerate() {
        let query = &decoded.data[c * fit.width..(c + 1) * fit.width];
        judged.extend(genre_top1(query, &rows, &file_genres, &key.genre));
        let matches = top_matches(query, &rows, opts.top_k)
            .into_iter()
            .map(|(i, score)| Match {
                path: kept[i].clone(),
                score,
                genre: genre_of(&kept[i]),
            })
            .collect();
        clips.push(ClipRetrieval {
            track: key.track_name(),
            genre: key.genre.clone(),
            matches,
        });
    }
    let genres: std::collections::BTreeSet<&String> = file_genres.iter().flatten().collect();
    std::fs::create_dir_all(opts.out.join("stimuli"))
        .map_err(|e| brainrecon_core::DataError::io(&opts.out, e))?;
    let summary = RetrievalSummary {
        fit: opts.fit.clone(),
        library: opts.library.clone(),
        library_files: kept.len(),
        skipped,
        embedded_now: fresh,
        top_k: opts.top_k,
        top1_genre_accuracy: (!judged.is_empty())
            .then(|| judged.iter().filter(|&&b| b).count() as f64 / judged.len() as f64),
        genre_chance: (!genres.is_empty()).then(|| 1.0 / genres.len() as f64),
        clips,
        identification_windows: fit.identification_windows,
        identification_clips: fit.identification_clips,
        page: opts.out.join("index.html"),
        playlist: opts.out.join("playlist.m3u"),
    };
    write_stimulus_clips(&fit, &opts.out)?;
    let library_href = relative_href(&opts.out, &opts.library);
    write_bytes_atomic(
        &summary.playlist,
        super::page::playlist(&summary, &library_href).as_bytes(),
    )?;
    write_bytes_atomic(
        &summary.page,
        super::page::page(&summary, &fit, &library_href).as_bytes(),
    )?;
    write_json_atomic(&opts.out.join("retrieval.json"), &summary)?;
    Ok(summary)
}

/// The heard clips, cut from their tracks as the scanner played them: `stimuli/<track>.wav`.
fn write_stimulus_clips(fit: &MusicFitSummary, out: &Path) -> Result<()> {
    for key in &fit.test_clips {
        let track = read_audio(&gtzan_track(&fit.stimuli, &key.genre, key.track)?)?;
        let clip = track.clip(key.start, key.duration.min(track.duration() - key.start))?;
        wav::write_pcm16(
            &out.join(format!("stimuli/{}.wav", key.track_name())),
            clip.rate,
            1,
            &clip.samples,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genres_come_from_the_folder_or_the_gtzan_name() {
        assert_eq!(genre_of("jazz/jazz.00012.wav").as_deref(), Some("jazz"));
        assert_eq!(genre_of("fma/000/rock.000123.mp3").as_deref(), Some("rock"));
        assert_eq!(genre_of("fma/000/000123.mp3"), None);
    }

    #[test]
    fn matches_are_ranked_by_cosine() {
        let rows = vec![
            vec![1.0, 0.0],
            vec![0.6, 0.8],
            vec![-1.0, 0.0],
            vec![2.0, 0.1],
        ];
        let top = top_matches(&[1.0, 0.0], &rows, 3);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![0, 3, 1]);
        assert!((top[2].1 - 0.6).abs() < 1e-6);
    }

    #[test]
    fn genre_top1_counts_ties_against_the_clip() {
        let rows = vec![
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![1.0, 0.1],
            vec![5.0, 5.0],
        ];
        let genres: Vec<Option<String>> = ["jazz", "rock", "rock"]
            .iter()
            .map(|g| Some(g.to_string()))
            .chain([None])
            .collect();
        // a perfect query for jazz: its jazz file beats both rock files
        assert_eq!(genre_top1(&[1.0, 0.0], &rows, &genres, "jazz"), Some(true));
        assert_eq!(genre_top1(&[0.0, 1.0], &rows, &genres, "jazz"), Some(false));
        // a zero query ties every file: not a hit, whatever the genre
        for g in ["jazz", "rock"] {
            assert_eq!(genre_top1(&[0.0, 0.0], &rows, &genres, g), Some(false));
        }
        // a genre the library lacks never wins; no known genre: not judged
        assert_eq!(genre_top1(&[1.0, 0.0], &rows, &genres, "pop"), Some(false));
        assert_eq!(
            genre_top1(&[1.0, 0.0], &rows, &[None, None, None, None], "jazz"),
            None
        );
    }

    #[test]
    fn links_climb_out_of_the_page_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/page")).unwrap();
        std::fs::create_dir_all(dir.path().join("lib/x")).unwrap();
        assert_eq!(
            relative_href(&dir.path().join("a/page"), &dir.path().join("lib")),
            "../../lib"
        );
    }
}
