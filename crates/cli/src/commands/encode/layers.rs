//! `brainrecon encode layers`: one encoding model per layer of a network's features.

use super::{fit_blocks, print_rois, FitArgs};
use crate::commands::usage;
use brainrecon_data::atomic::{write_bytes_atomic, write_json_atomic};
use brainrecon_data::prepared::PreparedSubject;
use brainrecon_routes::decoders::Target;
use brainrecon_routes::encoding::chart::{layers_html, layers_svg, LayerResult};
use brainrecon_routes::encoding::{
    load_block, roi_coordinates, score, voxel_sets, write_stats, DesignOptions, EncodingData,
    FeatureBlock, FitOptions, VoxelSet,
};
use brainrecon_routes::features::{feature_paths, FeatureKind};
use brainrecon_routes::RouteError;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Encode every layer of BLIP's image tower or text decoder, and chart accuracy by layer.
///
/// For each layer L, the features KIND-lL computed by `brainrecon features --kind KIND
/// --layer all` are z-scored (mean and std over the training images), scaled by
/// 1/sqrt(width) and fit to the ROI's voxels exactly as `brainrecon encode` does (same
/// ridge, folds, permutation null and BH-FDR; features wider than there are training images
/// become their principal-component scores, which changes no prediction; `--pca K` keeps the
/// top K). `--kind blip-vision+blip-text` fits the joint model of both towers' layer L.
///
/// Writes to --out: lL/ for each layer (r.npy, p.npy, q.npy, the maps and summary.json as
/// `encode` writes them); layers.json (per layer: features, columns, and per ROI the voxels,
/// mean and median r and the share significant; the ROIs are --roi and its labels in
/// --atlases); layers.svg (mean test r by layer, one line per ROI) and layers.html (the chart
/// and its table on one self-contained page).
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon features --subject prepared/subj01 --kind blip-vision --layer all --model models/blip-capfilt-240\n  brainrecon encode layers --subject prepared/subj01 --kind blip-vision --layers all --pca 1024 --out encoding/blip-vision"
)]
pub struct Args {
    /// A prepared subject directory
    #[arg(long)]
    subject: PathBuf,
    /// blip-vision, blip-text, or blip-vision+blip-text (joint model of both, layer by layer)
    #[arg(long)]
    kind: String,
    /// `all` (every KIND-lL in the features directory) or layers, comma-separated (0 = embeddings)
    #[arg(long, default_value = "all")]
    layers: String,
    /// ROI the models are fit on
    #[arg(long, default_value = "nsdgeneral")]
    roi: String,
    /// Atlases whose labels are summarised per layer, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "streams,prf-visualrois")]
    atlases: Vec<String>,
    /// Output directory
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    fit: FitArgs,
    /// Print layers.json's content as JSON
    #[arg(long)]
    json: bool,
}

/// The kinds of `--kind` (joined with +), each one with per-layer arrays KIND-lL.
fn parse_kinds(text: &str) -> anyhow::Result<Vec<String>> {
    let kinds: Vec<String> = text.split('+').map(str::to_string).collect();
    for kind in &kinds {
        let layered = FeatureKind::parse(&format!("{kind}-l0"));
        if kinds.iter().filter(|k| *k == kind).count() > 1 || layered.is_err() {
            return Err(usage(format!(
                "--kind: expected blip-vision, blip-text or blip-vision+blip-text, found '{text}'"
            )));
        }
    }
    Ok(kinds)
}

/// Layers L with a KIND-lL array and its metadata in `dir`.
fn layers_on_disk(dir: &Path, kind: &str) -> BTreeSet<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    let prefix = format!("{kind}-l");
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            let layer: u8 = name
                .strip_prefix(&prefix)?
                .strip_suffix(".npy")?
                .parse()
                .ok()?;
            Some(usize::from(layer))
        })
        .filter(|&l: &usize| dir.join(format!("{prefix}{l}.json")).exists())
        .collect()
}

/// The kind of `kind` at `layer` (`blip-vision`, 3 → blip-vision-l3).
fn layer_kind(kind: &str, layer: usize) -> anyhow::Result<FeatureKind> {
    Ok(FeatureKind::parse(&format!("{kind}-l{layer}"))?)
}

/// Fails, naming the file, when a layer's array or metadata is missing (before any fit).
fn check_present(
    subject: &Path,
    kinds: &[String],
    layers: &[usize],
    dir: &Path,
) -> anyhow::Result<()> {
    for &layer in layers {
        for kind in kinds {
            let (array, meta) = feature_paths(dir, layer_kind(kind, layer)?);
            if !array.exists() || !meta.exists() {
                let on_disk: Vec<String> = layers_on_disk(dir, kind)
                    .iter()
                    .map(|l| l.to_string())
                    .collect();
                return Err(RouteError::Missing {
                    path: array,
                    what: format!(
                        "{kind} features of layer {layer} (layers on disk: {}); compute them with \
                         `brainrecon features --subject {} --kind {kind} --layer all --model MODEL`",
                        if on_disk.is_empty() { "none".into() } else { on_disk.join(", ") },
                        subject.display()
                    ),
                }
                .into());
            }
        }
    }
    Ok(())
}

/// The layers to fit: every layer all kinds have on disk, or the listed ones.
fn select_layers(
    text: &str,
    kinds: &[String],
    dir: &Path,
    subject: &Path,
) -> anyhow::Result<Vec<usize>> {
    if text != "all" {
        return text
            .split(',')
            .map(|l| {
                l.trim().parse::<u8>().map(usize::from).map_err(|_| {
                    usage(format!(
                        "--layers: expected all or layer numbers (0 = embeddings), comma-separated, found '{l}'"
                    ))
                })
            })
            .collect();
    }
    let mut common: Option<BTreeSet<usize>> = None;
    for kind in kinds {
        let found = layers_on_disk(dir, kind);
        common = Some(match common {
            None => found,
            Some(c) => c.intersection(&found).copied().collect(),
        });
    }
    let layers: Vec<usize> = common.unwrap_or_default().into_iter().collect();
    if layers.is_empty() {
        return Err(RouteError::Missing {
            path: dir.join(format!("{}-l0.npy", kinds[0])),
            what: format!(
                "per-layer features; compute them with `brainrecon features --subject {} --kind {} --layer all --model MODEL`",
                subject.display(),
                kinds[0]
            ),
        }
        .into());
    }
    Ok(layers)
}

/// Loads the blocks of one layer (one per kind).
fn layer_blocks(
    subject: &PreparedSubject,
    kinds: &[String],
    layer: usize,
    dir: &Path,
) -> anyhow::Result<Vec<FeatureBlock>> {
    kinds
        .iter()
        .map(|kind| {
            let target = Target::Features(layer_kind(kind, layer)?);
            Ok(load_block(subject, &target, dir)?)
        })
        .collect()
}

/// What every layer's fit shares.
struct Sweep<'a> {
    subject: &'a PreparedSubject,
    data: EncodingData,
    fit: FitOptions,
    pca: Option<usize>,
    coords: Vec<[usize; 3]>,
    sets: Vec<VoxelSet>,
    out: &'a Path,
}

impl Sweep<'_> {
    /// Fits one layer's blocks and writes its maps and summary into OUT/lL.
    fn fit_layer(&self, layer: usize, blocks: &[FeatureBlock]) -> anyhow::Result<LayerResult> {
        let refs: Vec<&FeatureBlock> = blocks.iter().collect();
        let options = DesignOptions {
            standardize: true,
            pca: self.pca,
        };
        let fitted = fit_blocks(&self.data, &refs, options, &self.fit)?;
        let stats = score(&self.data, &fitted.predicted, &self.fit)?;
        let features = refs.iter().map(|b| b.name.as_str()).collect::<Vec<_>>();
        let result = LayerResult {
            layer,
            features: features.join("+"),
            n_features: fitted.n_features,
            design_width: fitted.width,
            reduction: fitted.reduction,
            rois: self.sets.iter().map(|s| s.summarize(&stats)).collect(),
        };
        let dir = self.out.join(format!("l{layer}"));
        write_stats(&dir, self.subject, &self.coords, &stats)?;
        write_json_atomic(&dir.join("summary.json"), &result)?;
        Ok(result)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    args.fit.check()?;
    let started = std::time::Instant::now();
    let kinds = parse_kinds(&args.kind)?;
    let subject = PreparedSubject::open(&args.subject)?;
    let dir = args.fit.features_dir(&subject);
    let layers = select_layers(&args.layers, &kinds, &dir, &args.subject)?;
    check_present(&args.subject, &kinds, &layers, &dir)?;
    let data = EncodingData::load(&subject, &args.roi)?;
    let fit = args.fit.options(&data)?;
    let coords = roi_coordinates(&subject, &data.roi)?;
    let sets = voxel_sets(&subject, &data.roi, &coords, Some(&args.atlases))?;
    let sweep = Sweep {
        subject: &subject,
        data,
        fit,
        pca: args.fit.pca,
        coords,
        sets,
        out: &args.out,
    };
    let mut results = Vec::with_capacity(layers.len());
    for &layer in &layers {
        let blocks = layer_blocks(&subject, &kinds, layer, &dir)?;
        let result = sweep.fit_layer(layer, &blocks)?;
        if !args.json {
            outln!(
                "layer {layer}: {} ({} columns)",
                result.features,
                result.design_width
            )?;
        }
        results.push(result);
    }
    let summary = write_summary(&args, &sweep, &results)?;
    if args.json {
        return crate::commands::print_json(&summary);
    }
    if let Some(last) = results.last() {
        print_rois(&last.rois)?;
    }
    outln!(
        "encoded {} layers of {} in {:.1} s; wrote {}",
        results.len(),
        args.kind,
        started.elapsed().as_secs_f64(),
        args.out.join("layers.json").display()
    )?;
    Ok(())
}

/// layers.svg, layers.html, then layers.json (last: it marks a complete directory).
fn write_summary(
    args: &Args,
    sweep: &Sweep,
    results: &[LayerResult],
) -> anyhow::Result<serde_json::Value> {
    let title = format!(
        "{} · {} · encoding by layer",
        sweep.subject.meta.subject, args.kind
    );
    let svg = layers_svg(&title, results).map_err(|e| usage(format!("layers chart: {e}")))?;
    write_bytes_atomic(&args.out.join("layers.svg"), svg.as_bytes())?;
    let command: Vec<String> = std::env::args().collect();
    let html = layers_html(&title, &command.join(" "), &svg, results);
    write_bytes_atomic(&args.out.join("layers.html"), html.as_bytes())?;
    let summary = serde_json::json!({
        "subject": sweep.subject.meta.subject,
        "subject_dir": args.subject,
        "kind": args.kind,
        "roi": sweep.data.roi.name,
        "atlases": args.atlases,
        "standardized": true,
        "pca": sweep.pca,
        "n_train_rows": sweep.data.train.rows,
        "n_test_images": sweep.data.test.rows,
        "cv": args.fit.cv,
        "permutations": sweep.fit.permutations,
        "block_size": sweep.fit.block_size,
        "seed": sweep.fit.seed,
        "layers": results,
    });
    write_json_atomic(&args.out.join("layers.json"), &summary)?;
    Ok(summary)
}
