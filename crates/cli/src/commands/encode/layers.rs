//! `brainrecon encode layers`: one encoding model per layer of a network's features.

use super::FitArgs;
use crate::commands::prelude::*;
use brainrecon_routes::encoding::layers::{encode_layers, layers_text, LayersOptions};

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
#[command(mut_arg("json", |a| a.help("Print layers.json's content as JSON")))]
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
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let opts = LayersOptions {
        subject_dir: args.subject,
        kind: args.kind,
        layers: args.layers,
        roi: args.roi,
        atlases: args.atlases,
        out: args.out,
        cortex: args.fit.cortex.choice()?,
        fit: args.fit.request()?,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let json = args.json.json;
    // each layer's line as it is done, for people
    let (summary, results) = encode_layers(&opts, |result| match json {
        true => Ok(()),
        false => outln!("{}", result.line()),
    })?;
    let seconds = started.elapsed().as_secs_f64();
    crate::commands::report(json, &summary, |_| layers_text(&opts, &results, seconds))
}
