//! The whole of `brainrecon encode layers`: one encoding model per layer of a network's
//! features, each written to `l<L>/`, then the chart (layers.svg, layers.html) and
//! layers.json.

use super::chart::{layers_html, layers_svg, LayerResult};
use super::job::{fit_blocks, FitRequest};
use super::{
    load_block, roi_coordinates, score, voxel_sets, write_stats, DesignOptions, EncodingData,
    FeatureBlock, FitOptions, VoxelSet,
};
use crate::decoders::Target;
use crate::error::{Result, RouteError};
use crate::features::{feature_paths, FeatureKind};
use brainrecon_core::fs::{write_bytes_atomic, write_json_atomic};
use brainrecon_datasets::prepared::PreparedSubject;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn usage(message: impl Into<String>) -> RouteError {
    RouteError::Usage(message.into())
}

/// One `brainrecon encode layers` run.
pub struct LayersOptions {
    /// The prepared subject.
    pub subject_dir: PathBuf,
    /// blip-vision, blip-text or blip-vision+blip-text.
    pub kind: String,
    /// `all` (every layer on disk) or layer numbers, comma-separated.
    pub layers: String,
    /// The ROI.
    pub roi: String,
    /// Atlases whose labels overlapping the ROI get their own rows.
    pub atlases: Vec<String>,
    /// The output folder.
    pub out: PathBuf,
    /// The fit and the null.
    pub fit: FitRequest,
    /// The command line, shown on the HTML page.
    pub command: String,
}

fn parse_kinds(text: &str) -> Result<Vec<String>> {
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

/// Layers with both `<kind>-l<L>.npy` and its .json in `dir`.
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

fn layer_kind(kind: &str, layer: usize) -> Result<FeatureKind> {
    FeatureKind::parse(&format!("{kind}-l{layer}"))
}

fn check_present(subject: &Path, kinds: &[String], layers: &[usize], dir: &Path) -> Result<()> {
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
                });
            }
        }
    }
    Ok(())
}

fn select_layers(text: &str, kinds: &[String], dir: &Path, subject: &Path) -> Result<Vec<usize>> {
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
        });
    }
    Ok(layers)
}

fn layer_blocks(
    subject: &PreparedSubject,
    kinds: &[String],
    layer: usize,
    dir: &Path,
) -> Result<Vec<FeatureBlock>> {
    kinds
        .iter()
        .map(|kind| {
            let target = Target::Features(layer_kind(kind, layer)?);
            load_block(subject, &target, dir)
        })
        .collect()
}

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
    fn fit_layer(&self, layer: usize, blocks: &[FeatureBlock]) -> Result<LayerResult> {
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

/// Fits every selected layer (calling `each` after each one), writes the chart and
/// layers.json, and returns layers.json's content with the per-layer results.
pub fn encode_layers<E: From<RouteError>>(
    opts: &LayersOptions,
    mut each: impl FnMut(&LayerResult) -> std::result::Result<(), E>,
) -> std::result::Result<(serde_json::Value, Vec<LayerResult>), E> {
    opts.fit.check()?;
    let kinds = parse_kinds(&opts.kind)?;
    let subject = PreparedSubject::open(&opts.subject_dir).map_err(RouteError::from)?;
    let dir = opts.fit.features_dir(&subject);
    let layers = select_layers(&opts.layers, &kinds, &dir, &opts.subject_dir)?;
    check_present(&opts.subject_dir, &kinds, &layers, &dir)?;
    let data = EncodingData::load(&subject, &opts.roi)?;
    let fit = opts.fit.options(&data)?;
    let coords = roi_coordinates(&subject, &data.roi)?;
    let sets = voxel_sets(&subject, &data.roi, &coords, Some(&opts.atlases))?;
    let sweep = Sweep {
        subject: &subject,
        data,
        fit,
        pca: opts.fit.pca,
        coords,
        sets,
        out: &opts.out,
    };
    let mut results = Vec::with_capacity(layers.len());
    for &layer in &layers {
        let blocks = layer_blocks(&subject, &kinds, layer, &dir)?;
        let result = sweep.fit_layer(layer, &blocks)?;
        each(&result)?;
        results.push(result);
    }
    let summary = write_summary(opts, &sweep, &results)?;
    Ok((summary, results))
}

fn write_summary(
    opts: &LayersOptions,
    sweep: &Sweep,
    results: &[LayerResult],
) -> Result<serde_json::Value> {
    let title = format!(
        "{} · {} · encoding by layer",
        sweep.subject.meta.subject, opts.kind
    );
    let svg = layers_svg(&title, results).map_err(|e| usage(format!("layers chart: {e}")))?;
    write_bytes_atomic(&opts.out.join("layers.svg"), svg.as_bytes())?;
    let html = layers_html(&title, &opts.command, &svg, results);
    write_bytes_atomic(&opts.out.join("layers.html"), html.as_bytes())?;
    let summary = serde_json::json!({
        "subject": sweep.subject.meta.subject,
        "subject_dir": opts.subject_dir,
        "kind": opts.kind,
        "roi": sweep.data.roi.name,
        "atlases": opts.atlases,
        "standardized": true,
        "pca": sweep.pca,
        "n_train_rows": sweep.data.train.rows,
        "n_test_images": sweep.data.test.rows,
        "cv": opts.fit.cv,
        "permutations": sweep.fit.permutations,
        "block_size": sweep.fit.block_size,
        "seed": sweep.fit.seed,
        "layers": results,
    });
    write_json_atomic(&opts.out.join("layers.json"), &summary)?;
    Ok(summary)
}
