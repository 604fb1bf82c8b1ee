//! The whole of `brainrecon encode layers`: one encoding model per layer of a network's
//! features, each written to `l<L>/`, then the chart (layers.svg, layers.html) and
//! layers.json.

use super::chart::{layers_html, layers_svg, LayerResult};
use super::job::{fit_blocks, FitRequest};
use super::{
    cortex_for, load_block, roi_coordinates, score, voxel_sets, write_stats, DesignOptions,
    EncodingData, FeatureBlock, FitOptions, RoiLabels, VoxelSet,
};
use crate::decode::decoders::Target;
use crate::decode::features::{feature_paths, FeatureKind};
use crate::error::{Result, RouteError};
use brainrecon_core::fs::{write_bytes_atomic, write_json_atomic};
use brainrecon_cortex::report::{html_section, write_cortex_maps, MapKind, VoxelMapSpec};
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
    /// Where the best-layer map is drawn on the cortex (`auto`: a simulation's on fsaverage5).
    pub cortex: brainrecon_cortex::report::CortexChoice,
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
    /// The layer's result, and its test r per voxel (NaN where not significant).
    fn fit_layer(&self, layer: usize, blocks: &[FeatureBlock]) -> Result<(LayerResult, Vec<f64>)> {
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
        let significant_r = stats
            .r
            .iter()
            .zip(&stats.significant)
            .map(|(&r, &s)| if s { r } else { f64::NAN })
            .collect();
        Ok((result, significant_r))
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
    let mut significant_r = Vec::with_capacity(layers.len());
    for &layer in &layers {
        let blocks = layer_blocks(&subject, &kinds, layer, &dir)?;
        let (result, r) = sweep.fit_layer(layer, &blocks)?;
        each(&result)?;
        results.push(result);
        significant_r.push(r);
    }
    let cortex = best_layer_maps(opts, &sweep, &layers, &significant_r)?;
    let summary = write_summary(opts, &sweep, &results, cortex.as_deref())?;
    Ok((summary, results))
}

/// What `encode layers` prints at the end for people: the last layer's ROI table, then the
/// layers encoded in `seconds` and where layers.json went.
pub fn layers_text(opts: &LayersOptions, results: &[LayerResult], seconds: f64) -> String {
    let table = results
        .last()
        .map_or(String::new(), |last| super::roi_table(&last.rois));
    format!(
        "{table}encoded {} layers of {} in {seconds:.1} s; wrote {}\n",
        results.len(),
        opts.kind,
        opts.out.join("layers.json").display()
    )
}

/// Each voxel's layer of largest significant test r (NaN where no layer is significant):
/// Takagi & Nishimoto's best-layer map. `significant_r` is (layers, voxels).
pub fn best_layer(significant_r: &[Vec<f64>]) -> Vec<f64> {
    let voxels = significant_r.first().map_or(0, Vec::len);
    (0..voxels)
        .map(|v| {
            (0..significant_r.len())
                .filter(|&l| significant_r[l][v].is_finite())
                .max_by(|&a, &b| significant_r[a][v].total_cmp(&significant_r[b][v]))
                .map_or(f64::NAN, |l| l as f64)
        })
        .collect()
}

/// The best-layer map and the largest significant r on the cortex (OUT/cortex/); the
/// report's section, or `None` when no cortex applies.
fn best_layer_maps(
    opts: &LayersOptions,
    sweep: &Sweep,
    layers: &[usize],
    significant_r: &[Vec<f64>],
) -> Result<Option<String>> {
    let Some((placed, labels)) = cortex_for(sweep.subject, &sweep.coords, &opts.cortex)? else {
        return Ok(None);
    };
    let best = best_layer(significant_r);
    let largest: Vec<f64> = best
        .iter()
        .enumerate()
        .map(|(v, &l)| {
            if l.is_finite() {
                significant_r[l as usize][v]
            } else {
                f64::NAN
            }
        })
        .collect();
    let maps = [
        VoxelMapSpec {
            name: format!("best layer, {} (q ≤ 0.05)", opts.kind),
            values: &best,
            kind: MapKind::Categorical {
                names: layers.iter().map(|l| format!("layer {l}")).collect(),
            },
        },
        VoxelMapSpec {
            name: format!("test r of the best layer, {}", opts.kind),
            values: &largest,
            kind: MapKind::Signed { threshold: None },
        },
    ];
    let label_spec = labels.as_ref().map(RoiLabels::spec);
    let figures = write_cortex_maps(
        &opts.out.join("cortex"),
        &placed,
        &maps,
        label_spec.as_ref(),
    )?;
    Ok(Some(html_section(&figures, "cortex")))
}

fn write_summary(
    opts: &LayersOptions,
    sweep: &Sweep,
    results: &[LayerResult],
    cortex_section: Option<&str>,
) -> Result<serde_json::Value> {
    let title = format!(
        "{} · {} · encoding by layer",
        sweep.subject.meta.subject, opts.kind
    );
    let svg = layers_svg(&title, results).map_err(|e| usage(format!("layers chart: {e}")))?;
    write_bytes_atomic(&opts.out.join("layers.svg"), svg.as_bytes())?;
    let html = layers_html(&title, &opts.command, &svg, results, cortex_section);
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
