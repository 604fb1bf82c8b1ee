//! `music fit`: window embeddings of the stimuli, per-ROI ridge decoders, top-ROI ensembling
//! and the identification accuracy, written to a folder that `music retrieve` reads.
//!
//! ```text
//! <out>/music_fit.json         MusicFitSummary (options, ROI table, scores)
//! <out>/windows.tsv            split, clip, track, genre, window, offset per decoding sample
//! <out>/embeddings_train.npy   float32 (train windows, width): the targets
//! <out>/embeddings_test.npy    float32 (test windows, width): the true test embeddings
//! <out>/decoded_test.npy       float32 (test windows, width): the ensemble's predictions
//! <out>/decoded_clips.npy      float32 (test clips, width): each test clip's windows averaged
//! <out>/models/roi-<label>/    the kept ROIs' ridge models (columns: rois.json)
//! <out>/models/rois.json       every ROI: label, name, run-set columns
//! <out>/features/<embedding>/<run>.npy
//!                              float32 (TRs, width) per run: at each TR the embedding of the
//!                              window playing then (zeros between clips), the feature files
//!                              of `encode-runs --bands NAME=DIR` (encoding maps)
//! ```

use super::decode::{self, Roi, RoiRidge};
use super::embed::{Embedder, EmbeddingKind};
use super::inputs::{check_inputs, Checked};
use super::windows::{presentations, split_windows, ClipKey, WindowSpec, Windows};
use crate::error::{Result, RouteError};
use crate::progress;
use brainrecon_audio::clap::SeededChoices;
use brainrecon_core::fs::{write_bytes_atomic, write_json_atomic};
use brainrecon_datasets::ds003720::{gtzan_track, TRACK_END_TOLERANCE};
use brainrecon_datasets::runs::RunSet;
use brainrecon_formats::audio::{read_audio, Audio};
use brainrecon_formats::npy;
use candle_core::Device;
use faer::Mat;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The fit's summary in its folder, [`MusicFitSummary`].
pub const SUMMARY_FILE: &str = "music_fit.json";

/// What `brainrecon music fit` is asked (Denk et al. 2023's Brain2Music decoding on ds003720).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct MusicFitOptions {
    /// A run set (`bids prepare`) of the Training and Test runs.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "A run set of the Training and Test runs (`brainrecon bids prepare`)"
        )
    )]
    pub runs: PathBuf,
    /// The GTZAN folder (`<genre>/<genre>.NNNNN.wav`).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "The GTZAN folder: <genre>/<genre>.NNNNN.wav (also genres/ or genres_original/ inside)"
        )
    )]
    pub stimuli: PathBuf,
    /// Cortical ROI labels in the run set's volume (Destrieux).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Cortical ROI labels on the runs' grid (.nii/.nii.gz; e.g. Destrieux)"
        )
    )]
    pub atlas: PathBuf,
    /// The atlas' label names (`index<TAB>name`); `None`: the atlas' `.tsv` sibling if any, else
    /// `label N`.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "index<TAB>name table of the atlas's labels (default: the atlas's .tsv beside it)"
        )
    )]
    pub atlas_names: Option<PathBuf>,
    /// The folder to write (see the module documentation).
    #[cfg_attr(feature = "cli", arg(long, help = "Output folder"))]
    pub out: PathBuf,
    /// The embedding decoded.
    #[cfg_attr(feature = "cli", arg(long, default_value = "clap-audio", value_parser = EmbeddingKind::parse, help = "clap-audio (MuLan-music's stand-in), clap-text (MuLan-text's) or encodec (SoundStream's)"))]
    pub embedding: EmbeddingKind,
    /// CLAP (`genres-clap`, a folder or hub id) or EnCodec folder.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value = "genres-clap",
            help = "CLAP: genres-clap (built in), a folder or a cached hub id (laion/clap-htsat-unfused); EnCodec: a folder or hub id (facebook/encodec_24khz)"
        )
    )]
    pub model: String,
    /// `track<TAB>start<TAB>caption` (clap-text).
    #[cfg_attr(
        feature = "cli",
        arg(long, help = "track<TAB>start<TAB>caption per clip (clap-text)")
    )]
    pub captions: Option<PathBuf>,
    /// ROIs with the best CV score whose predictions are averaged.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 6,
            help = "ROIs whose predictions are averaged (the best by CV score)"
        )
    )]
    pub top_rois: usize,
    /// K of each ROI's K-fold CV, grouped by clip.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 5, help = "Folds of the CV over clips")
    )]
    pub folds: usize,
    /// The ridge penalty grid.
    #[cfg_attr(feature = "cli", arg(long, value_delimiter = ',', default_values_t = super::default_alphas(), hide_default_value = true, help = "Ridge penalties tried (default 10^0 … 10^6 in half decades)"))]
    pub alphas: Vec<f64>,
    /// Window length, step and scan delay (s).
    #[cfg_attr(feature = "cli", command(flatten))]
    pub windows: WindowSpec,
    /// The BIDS task whose runs are the test split (the rest train).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value = "Test",
            help = "The task whose runs are the test runs"
        )
    )]
    pub test_task: String,
    /// Drop each run's first clip (ds003720's analyses do: it repeats a clip and starts from rest).
    #[cfg_attr(feature = "cli", arg(long = "keep-first-clip", action = clap::ArgAction::SetFalse, help = "Keep each run's first clip (ds003720's analyses drop it: it repeats a clip)"))]
    pub drop_first: bool,
    /// Regions with fewer of the run set's voxels are left out.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 10,
            help = "ROIs with fewer voxels are left out"
        )
    )]
    pub min_roi_voxels: usize,
    /// Seed of CLAP's random choices (crops of audio longer than its input).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0, help = None::<&str>))]
    pub seed: u64,
    /// Draw progress bars.
    #[cfg_attr(feature = "cli", arg(skip))]
    pub progress: bool,
}

/// One ROI's line of the summary.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RoiScore {
    /// The region's atlas value.
    pub label: i64,
    /// Its name.
    pub name: String,
    /// The run set's voxels in it.
    pub n_voxels: usize,
    /// Mean K-fold R² of the best alphas.
    pub cv_score: f64,
    /// Identification accuracy of this ROI's own test predictions (windows).
    pub test_identification: f64,
    /// Whether it is among the top ROIs of the ensemble.
    pub kept: bool,
}

/// `music_fit.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MusicFitSummary {
    /// Always [`FORMAT`].
    pub format: String,
    /// The run set fitted on.
    pub runs: PathBuf,
    /// The GTZAN folder.
    pub stimuli: PathBuf,
    /// The embedding decoded.
    pub embedding: EmbeddingKind,
    /// The embedding model as named.
    pub model: String,
    /// Values per embedding.
    pub width: usize,
    /// Window length, step and scan delay (s).
    pub windows: WindowSpec,
    /// K of each ROI's K-fold CV.
    pub folds: usize,
    /// The ridge penalty grid.
    pub alphas: Vec<f64>,
    /// ROIs averaged in the ensemble.
    pub top_rois: usize,
    /// Distinct training clips.
    pub train_clips: usize,
    /// Training samples (windows).
    pub train_windows: usize,
    /// The test clips, in the order of `decoded_clips.npy`.
    pub test_clips: Vec<ClipKey>,
    /// Test samples (windows, averaged over repeats).
    pub test_windows: usize,
    /// Every ROI fitted, in atlas-label order.
    pub rois: Vec<RoiScore>,
    /// Identification accuracy of the ensemble over test windows (chance 0.5).
    pub identification_windows: f64,
    /// The same over test clips (each clip's windows averaged).
    pub identification_clips: f64,
    /// Seed of CLAP's random choices.
    pub seed: u64,
}

/// The `format` of a [`MusicFitSummary`].
pub const FORMAT: &str = "brainrecon-music-fit 1";

/// Captions by track (`blues.00042`) from a caption table (see
/// [`super::generate::read_caption_bank`]); rows without a track are not a clip's.
pub fn read_captions(path: &Path) -> Result<BTreeMap<String, String>> {
    Ok(super::generate::read_caption_bank(path)?
        .into_iter()
        .filter_map(|row| row.track.map(|track| (track, row.caption)))
        .collect())
}

/// The targets of a split's windows: (windows, width) row-major. Audio windows are cut from
/// their clip's track (`start + offset`), resampled and embedded a batch at a time; samples
/// come clip by clip, so one track and one batch are in memory.
fn window_targets(
    opts: &MusicFitOptions,
    embedder: &Embedder,
    windows: &Windows,
    captions: Option<&BTreeMap<String, String>>,
) -> Result<Vec<f32>> {
    if opts.embedding == EmbeddingKind::ClapText {
        return caption_targets(opts, embedder, windows, captions.expect("checked"));
    }
    let spec = &opts.windows;
    let mut choices = SeededChoices::new(opts.seed);
    let mut current: Option<(String, Audio)> = None;
    let mut out = Vec::with_capacity(windows.samples.len() * embedder.width());
    for batch in windows.samples.chunks(super::embed::BATCH) {
        let mut audio = Vec::with_capacity(batch.len());
        for s in batch {
            let clip = &windows.clips[s.clip];
            let name = clip.track_name();
            if current.as_ref().is_none_or(|(n, _)| *n != name) {
                let path = gtzan_track(&opts.stimuli, &clip.genre, clip.track)?;
                current = Some((name, read_audio(&path)?));
            }
            let track = &current.as_ref().expect("just read").1;
            // Inside the clip, whose end may lie a tolerated tail past a short track's.
            let cut = track.clip_padded(
                clip.start + s.offset,
                spec.seconds.min(clip.duration),
                TRACK_END_TOLERANCE,
            )?;
            audio.push(cut.to_mono_at(embedder.rate())?.samples);
        }
        out.extend(embedder.embed_audio(&audio, &mut choices)?);
    }
    Ok(out)
}

/// clap-text: each clip's caption embedded once, repeated for its windows.
fn caption_targets(
    opts: &MusicFitOptions,
    embedder: &Embedder,
    windows: &Windows,
    captions: &BTreeMap<String, String>,
) -> Result<Vec<f32>> {
    let path = opts.captions.as_ref().expect("checked");
    let per_clip: Vec<String> = windows
        .clips
        .iter()
        .map(|c| {
            captions.get(&c.track_name()).cloned().ok_or_else(|| {
                RouteError::mismatch(
                    path,
                    "track",
                    format!("a caption of {}", c.track_name()),
                    "none",
                )
            })
        })
        .collect::<Result<_>>()?;
    let clip_rows = embedder.embed_text(&per_clip)?;
    let w = embedder.width();
    Ok(windows
        .samples
        .iter()
        .flat_map(|s| clip_rows[s.clip * w..(s.clip + 1) * w].to_vec())
        .collect())
}

fn check(opts: &MusicFitOptions) -> Result<()> {
    let usage = |m: String| Err(RouteError::Usage(m));
    if opts.embedding == EmbeddingKind::ClapText && opts.captions.is_none() {
        return usage(
            "--embedding clap-text needs --captions FILE (track, caption per clip)".into(),
        );
    }
    if opts.folds < 2 {
        return usage(format!("--folds: expected 2 or more, found {}", opts.folds));
    }
    if opts.top_rois == 0 {
        return usage("--top-rois: expected 1 or more".into());
    }
    let w = &opts.windows;
    if !(w.seconds > 0.0
        && w.step > 0.0
        && w.delay.is_finite()
        && w.seconds.is_finite()
        && w.step.is_finite())
    {
        return usage(format!(
            "--window {} / --step {} / --delay {}: expected positive seconds (delay any)",
            w.seconds, w.step, w.delay
        ));
    }
    if opts.alphas.is_empty() || opts.alphas.iter().any(|a| !(a.is_finite() && *a > 0.0)) {
        return usage(format!(
            "--alphas: expected positive numbers, found {:?}",
            opts.alphas
        ));
    }
    Ok(())
}

/// Fits the route and writes its folder (see the module's documentation). Every external
/// input is checked first, all problems reported together (`inputs`), before any window is
/// embedded.
pub fn fit_music(opts: &MusicFitOptions, device: &Device) -> Result<MusicFitSummary> {
    check(opts)?;
    // Every external input before any work: a wrong path is reported in a second, not after
    // the windows are embedded.
    let Checked {
        runs,
        shown,
        embedder,
        captions,
        rois,
    } = check_inputs(opts, device)?;
    let train = split_windows(&runs, &shown, false, &opts.windows)?;
    let test = split_windows(&runs, &shown, true, &opts.windows)?;
    for (split, w) in [("training", &train), ("test", &test)] {
        if w.clips.len() < 2 {
            return Err(RouteError::mismatch(
                &opts.runs.join("runset.json"),
                "runs",
                format!(
                    "{split} clips (task {})",
                    if split == "test" {
                        opts.test_task.as_str()
                    } else {
                        "other than the test task"
                    }
                ),
                w.clips.len(),
            ));
        }
    }
    let width = embedder.width();
    let bar = progress::bar(2, "embedding windows", opts.progress);
    let y_train = window_targets(opts, &embedder, &train, captions.as_ref())?;
    bar.inc(1);
    let y_test = window_targets(opts, &embedder, &test, captions.as_ref())?;
    bar.finish_and_clear();
    let groups: Vec<i64> = train.samples.iter().map(|s| s.clip as i64).collect();
    let bar = progress::bar(rois.len() as u64, "ROI decoders", opts.progress);
    let ridge = RoiRidge {
        alphas: opts.alphas.clone(),
        folds: opts.folds,
    };
    let decoders = decode::fit_rois(
        &rois,
        (&train.fmri, train.n_voxels),
        &decode::matrix(&y_train, width),
        &groups,
        &ridge,
        &|i| bar.set_position(i as u64),
    )?;
    bar.finish_and_clear();
    let truth = decode::matrix(&y_test, width);
    let x_test = (test.fmri.as_slice(), test.n_voxels);
    let predictions: Vec<Mat<f32>> = decoders
        .iter()
        .map(|d| decode::predict_roi(d, &rois[d.roi], x_test))
        .collect::<Result<_>>()?;
    let kept = decode::top_decoders(&decoders, opts.top_rois);
    let ensemble = decode::mean_prediction(
        &kept
            .iter()
            .map(|&k| predictions[k].clone())
            .collect::<Vec<_>>(),
    );
    let clip_of: Vec<usize> = test.samples.iter().map(|s| s.clip).collect();
    let decoded_clips = decode::group_means(&ensemble, &clip_of, test.clips.len());
    let true_clips = decode::group_means(&truth, &clip_of, test.clips.len());
    let roi_scores = rois
        .iter()
        .zip(&decoders)
        .map(|(roi, d)| {
            Ok(RoiScore {
                label: roi.label,
                name: roi.name.clone(),
                n_voxels: roi.columns.len(),
                cv_score: d.cv_score,
                test_identification: decode::identification(&predictions[d.roi], &truth)?.0,
                kept: kept.contains(&d.roi),
            })
        })
        .collect::<Result<_>>()?;
    let summary = MusicFitSummary {
        format: FORMAT.into(),
        runs: opts.runs.clone(),
        stimuli: opts.stimuli.clone(),
        embedding: opts.embedding,
        model: opts.model.clone(),
        width,
        windows: opts.windows,
        folds: opts.folds,
        alphas: opts.alphas.clone(),
        top_rois: opts.top_rois,
        train_clips: train.clips.len(),
        train_windows: train.samples.len(),
        test_clips: test.clips.clone(),
        test_windows: test.samples.len(),
        rois: roi_scores,
        identification_windows: decode::identification(&ensemble, &truth)?.0,
        identification_clips: decode::identification(&decoded_clips, &true_clips)?.0,
        seed: opts.seed,
    };
    let all_shown = presentations(&runs, &opts.test_task, false)?;
    let lookup = window_lookup(&[(&train, &y_train), (&test, &y_test)], width);
    write_run_features(
        &runs,
        &all_shown,
        &lookup,
        width,
        &opts.windows,
        &opts.out.join("features").join(opts.embedding.name()),
    )?;
    let written = Written {
        train: &train,
        test: &test,
        y_train: &y_train,
        y_test: &y_test,
        ensemble: &ensemble,
        decoded_clips: &decoded_clips,
    };
    write_outputs(opts, &summary, &written, &rois, &decoders, &kept)?;
    Ok(summary)
}

type Lookup<'a> = BTreeMap<(String, usize), &'a [f32]>;

/// Each (track, window)'s embedding.
fn window_lookup<'a>(splits: &[(&Windows, &'a Vec<f32>)], width: usize) -> Lookup<'a> {
    let mut map = BTreeMap::new();
    for (w, y) in splits {
        for (i, s) in w.samples.iter().enumerate() {
            map.insert(
                (w.clips[s.clip].track_name(), s.window),
                &y[i * width..(i + 1) * width],
            );
        }
    }
    map
}

/// Per run, per TR: the embedding of the window playing at the TR's time (the clip's window
/// `k` from `k · step` after its onset on; the last window to the clip's end), zeros when no
/// clip plays or its window was not embedded.
fn write_run_features(
    runs: &RunSet,
    shown: &[super::windows::Presentation],
    lookup: &Lookup,
    width: usize,
    spec: &WindowSpec,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| brainrecon_core::DataError::io(dir, e))?;
    for (r, info) in runs.runs().iter().enumerate() {
        let mut rows = vec![0f32; info.n_trs * width];
        for p in shown.iter().filter(|p| p.run == r) {
            let e = &p.event;
            let count = spec.count(e.duration);
            for t in 0..info.n_trs {
                let since = info.start_seconds + t as f64 * runs.tr() - e.onset;
                if !(since >= -1e-9 && since < e.duration - 1e-9) {
                    continue;
                }
                let k = ((since / spec.step + 1e-9).floor() as usize).min(count - 1);
                if let Some(row) = lookup.get(&(e.track_name(), k)) {
                    rows[t * width..(t + 1) * width].copy_from_slice(row);
                }
            }
        }
        npy::write(
            &dir.join(format!("{}.npy", info.name)),
            &[info.n_trs, width],
            &rows,
        )?;
    }
    Ok(())
}

struct Written<'a> {
    train: &'a Windows,
    test: &'a Windows,
    y_train: &'a [f32],
    y_test: &'a [f32],
    ensemble: &'a Mat<f32>,
    decoded_clips: &'a Mat<f32>,
}

fn windows_table(train: &Windows, test: &Windows) -> String {
    let mut table = String::from("split\tclip\ttrack\tgenre\twindow\toffset\n");
    for (split, w) in [("train", train), ("test", test)] {
        for s in &w.samples {
            let c = &w.clips[s.clip];
            table.push_str(&format!(
                "{split}\t{}\t{}\t{}\t{}\t{:.2}\n",
                s.clip,
                c.track_name(),
                c.genre,
                s.window,
                s.offset
            ));
        }
    }
    table
}

fn write_outputs(
    opts: &MusicFitOptions,
    summary: &MusicFitSummary,
    w: &Written,
    rois: &[Roi],
    decoders: &[decode::RoiDecoder],
    kept: &[usize],
) -> Result<()> {
    let out = &opts.out;
    std::fs::create_dir_all(out.join("models"))
        .map_err(|e| brainrecon_core::DataError::io(out, e))?;
    let width = summary.width;
    npy::write(
        &out.join("embeddings_train.npy"),
        &[w.train.samples.len(), width],
        w.y_train,
    )?;
    npy::write(
        &out.join("embeddings_test.npy"),
        &[w.test.samples.len(), width],
        w.y_test,
    )?;
    npy::write(
        &out.join("decoded_test.npy"),
        &[w.ensemble.nrows(), width],
        &decode::row_major(w.ensemble),
    )?;
    npy::write(
        &out.join("decoded_clips.npy"),
        &[w.decoded_clips.nrows(), width],
        &decode::row_major(w.decoded_clips),
    )?;
    write_bytes_atomic(
        &out.join("windows.tsv"),
        windows_table(w.train, w.test).as_bytes(),
    )?;
    write_json_atomic(&out.join("models/rois.json"), &rois)?;
    for &k in kept {
        decoders[k]
            .model
            .save(out.join(format!("models/roi-{}", rois[decoders[k].roi].label)))?;
    }
    // Last: its presence marks a finished fit.
    write_json_atomic(&out.join(SUMMARY_FILE), summary)?;
    Ok(())
}
