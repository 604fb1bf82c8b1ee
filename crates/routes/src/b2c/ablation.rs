//! `brainrecon b2c ablation`: the paper's 2 × 2 (ROI patches × CLIP loss), one training per
//! cell with the same seed and steps, then reconstruction and evaluation; a Markdown and an
//! HTML table in the layout of the paper's Table 1 and a figure in that of its Figure 3.
//!
//! ```text
//! <out>/<cell>/model/     the cell's B2C folder (cells: none, patch, clip, patch+clip)
//! <out>/<cell>/recon/     its reconstructions and eval/
//! <out>/ablation.json     every cell's settings and values
//! <out>/ablation.md, ablation.html, figure.png
//! ```
//! Every step resumes: a finished training or reconstruction is reused.

use super::groups::Patch;
use super::train::{train, TrainOptions, TrainSummary};
use crate::error::Result;
use crate::linear::{Manifest, Method, ReconstructOptions};
use crate::score::evaluate::{evaluate, EvalOptions, EvalRow};
use crate::score::suite::Networks;
use brainrecon_core::fs::{write_bytes_atomic, write_json_atomic};
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::{DType, Device, StableDiffusion};
use brainrecon_formats::image::{read_png, write_png};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The paper's Table 1 (Ishizaki & Kobayashi), in [`COLUMNS`] order, for comparison.
pub const PAPER_TABLE_1: [(&str, [f64; 7]); 4] = [
    (
        "none",
        [0.6725, 0.0133, 0.0164, 3.0996, 0.0095, 0.0078, 0.4984],
    ),
    (
        "patch",
        [0.6096, 0.0049, 0.0105, 2.7721, 0.0063, 0.01423, 0.5214],
    ),
    (
        "clip",
        [0.4825, 0.0221, 0.0062, 2.1907, 0.0083, 0.5055, 0.6897],
    ),
    (
        "patch+clip",
        [0.5608, 0.0466, 0.0103, 1.6619, 0.0112, 0.5650, 0.7412],
    ),
];

/// Table 1's columns.
pub const COLUMNS: [&str; 7] = [
    "pixel MSE ↓",
    "PCC ↑",
    "SSIM ↑",
    "latent MSE ↓",
    "latent PCC ↑",
    "context cos ↑",
    "pairwise ID ↑",
];

/// One cell of the 2 × 2.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    /// The cell's folder name: `none`, `patch`, `clip` or `patch+clip`.
    pub name: String,
    /// The encoder's input patches.
    pub patch: Patch,
    /// Weight of the CLIP alignment loss (0: off).
    pub clip_loss: f64,
    /// The trained B2C folder, `<out>/<name>/model`.
    pub model: PathBuf,
    /// Its reconstructions, `<out>/<name>/recon`.
    pub recon: PathBuf,
    /// What its training did.
    pub training: TrainSummary,
    /// [`COLUMNS`] values: the mean over samples for the image and latent columns.
    pub values: [Option<f64>; 7],
}

/// The outcome of [`ablation`].
#[derive(Clone, Debug, Serialize)]
pub struct Ablation {
    /// The ablation folder.
    pub out: PathBuf,
    /// The four cells, in the paper's order.
    pub cells: Vec<Cell>,
    /// `ablation.md`: ours and the paper's Table 1.
    pub markdown: PathBuf,
    /// `ablation.html`: the same tables as a page.
    pub html: PathBuf,
    /// `figure.png`: test stimuli beside each cell's first reconstruction.
    pub figure: PathBuf,
}

/// How to run the 2 × 2.
pub struct AblationOptions<'a> {
    /// Training settings; `patch` and `clip_loss` are set per cell (`clip_loss` here is the
    /// weight of the cells with the CLIP loss).
    pub train: TrainOptions,
    /// Reconstruction settings of every cell (`method` is set to B2C).
    pub recon: ReconstructOptions,
    /// The features folder with the images' VAE latents and CLIP text contexts.
    pub features: PathBuf,
    /// The metric suite's networks, for each cell's evaluation.
    pub networks: &'a Networks,
    /// Precision of the reconstructions' weights (training runs in f32).
    pub dtype: DType,
    /// Where training and sampling run.
    pub device: Device,
    /// Rows of the figure.
    pub figure_rows: usize,
}

/// Table 1's values from an evaluation's rows.
fn table_values(rows: &[EvalRow]) -> [Option<f64>; 7] {
    let mean = rows
        .iter()
        .find(|r| r.name.starts_with("reconstruction (mean"));
    let context = rows.iter().find(|r| r.context_cosine.is_some());
    [
        mean.and_then(|r| r.mse),
        mean.and_then(|r| r.pixcorr),
        mean.and_then(|r| r.ssim),
        mean.and_then(|r| r.latent_mse),
        mean.and_then(|r| r.latent_pcc),
        context.and_then(|r| r.context_cosine),
        context.and_then(|r| r.context_two_way),
    ]
}

/// Trains, reconstructs and evaluates one cell.
#[allow(clippy::too_many_arguments)]
fn run_cell(
    subject: &PreparedSubject,
    model: &str,
    out: &Path,
    name: &str,
    patch: Patch,
    clip_loss: f64,
    options: &AblationOptions,
    show_progress: bool,
) -> Result<Cell> {
    let cell_dir = out.join(name);
    let (model_dir, recon_dir) = (cell_dir.join("model"), cell_dir.join("recon"));
    let train_options = TrainOptions {
        patch,
        clip_loss,
        ..options.train.clone()
    };
    let sd = StableDiffusion::load(model, DType::F32, &options.device)?;
    let bar = crate::progress::bar(
        train_options.steps as u64,
        &format!("b2c {name}"),
        show_progress,
    );
    let training = train(
        subject,
        &sd,
        model,
        &options.features,
        &model_dir,
        &train_options,
        show_progress,
        &mut |step, _, loss| {
            bar.set_position(step as u64);
            bar.set_message(format!("b2c {name} {:.4}", loss.total));
        },
    )?;
    bar.finish_and_clear();
    let mut sd = StableDiffusion::load(model, options.dtype, &options.device)?;
    let b2c = super::load(&model_dir, subject, &mut sd)?;
    let recon = ReconstructOptions {
        method: Method::B2c,
        ..options.recon.clone()
    };
    let command = format!("brainrecon b2c ablation (cell {name})");
    super::reconstruct::reconstruct(
        subject,
        &sd,
        model,
        &b2c,
        None,
        &recon,
        &recon_dir,
        &command,
        show_progress,
    )?;
    let eval = evaluate(
        subject,
        &recon_dir,
        &EvalOptions {
            suite: options.networks,
            rows_per_page: 50,
            thumbnail: 96,
            command: command.clone(),
            captions: None,
            meteor_jar: None,
            clip_score_model: None,
        },
        super::metrics::extras,
    )?;
    Ok(Cell {
        name: name.into(),
        patch,
        clip_loss,
        model: model_dir,
        recon: recon_dir,
        training,
        values: table_values(&eval.rows),
    })
}

/// Runs the 2 × 2 into `out`.
pub fn ablation(
    subject: &PreparedSubject,
    model: &str,
    out: &Path,
    options: &AblationOptions,
    show_progress: bool,
) -> Result<Ablation> {
    options.train.check()?;
    if options.train.clip_loss <= 0.0 {
        return Err(crate::RouteError::Usage(
            "--clip-loss: the ablation compares no CLIP loss with a positive weight; give one > 0"
                .into(),
        ));
    }
    let mut cells = Vec::new();
    for (name, patch, clip) in [
        ("none", Patch::None, 0.0),
        ("patch", Patch::Roi, 0.0),
        ("clip", Patch::None, options.train.clip_loss),
        ("patch+clip", Patch::Roi, options.train.clip_loss),
    ] {
        cells.push(run_cell(
            subject,
            model,
            out,
            name,
            patch,
            clip,
            options,
            show_progress,
        )?);
    }
    let markdown = out.join("ablation.md");
    let html = out.join("ablation.html");
    let figure = out.join("figure.png");
    write_bytes_atomic(
        &markdown,
        markdown_table(&cells, subject, options).as_bytes(),
    )?;
    write_bytes_atomic(&html, html_table(&cells, subject).as_bytes())?;
    write_figure(subject, &cells, &figure, options.figure_rows)?;
    let result = Ablation {
        out: out.to_path_buf(),
        cells,
        markdown,
        html,
        figure,
    };
    write_json_atomic(&out.join("ablation.json"), &result)?;
    Ok(result)
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.4}"))
}

/// "| patch | CLIP loss | values… |" rows of ours and the paper's.
fn markdown_table(cells: &[Cell], subject: &PreparedSubject, options: &AblationOptions) -> String {
    let mut md = format!(
        "# B2C ablation on {}\n\n{} training steps per cell, batch {}, seed {}; {} sample(s) per test image, {} DDIM steps, guidance {}.\n\n",
        subject.meta.subject,
        options.train.steps,
        options.train.batch,
        options.train.seed,
        options.recon.samples,
        options.recon.steps,
        options.recon.guidance
    );
    md.push_str(&format!(
        "| patch | CLIP loss | {} |\n|---|---|{}\n",
        COLUMNS.join(" | "),
        "---|".repeat(COLUMNS.len())
    ));
    for cell in cells {
        let values: Vec<String> = cell.values.iter().map(|v| fmt(*v)).collect();
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            mark(cell.patch == Patch::Roi),
            mark(cell.clip_loss > 0.0),
            values.join(" | ")
        ));
    }
    md.push_str("\nThe paper's Table 1 (real NSD, SD 1.4), for comparison:\n\n");
    md.push_str(&format!(
        "| patch | CLIP loss | {} |\n|---|---|{}\n",
        COLUMNS.join(" | "),
        "---|".repeat(COLUMNS.len())
    ));
    for (name, values) in PAPER_TABLE_1 {
        let values: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            mark(name.contains("patch")),
            mark(name.contains("clip")),
            values.join(" | ")
        ));
    }
    md
}

fn mark(on: bool) -> &'static str {
    if on {
        "✓"
    } else {
        ""
    }
}

fn html_table(cells: &[Cell], subject: &PreparedSubject) -> String {
    let head: String = COLUMNS.iter().map(|c| format!("<th>{c}</th>")).collect();
    let mut rows = String::new();
    for cell in cells {
        let values: String = cell
            .values
            .iter()
            .map(|v| format!("<td>{}</td>", fmt(*v)))
            .collect();
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td>{values}</tr>\n",
            mark(cell.patch == Patch::Roi),
            mark(cell.clip_loss > 0.0)
        ));
    }
    let mut paper = String::new();
    for (name, values) in PAPER_TABLE_1 {
        let values: String = values.iter().map(|v| format!("<td>{v}</td>")).collect();
        paper.push_str(&format!(
            "<tr><td>{}</td><td>{}</td>{values}</tr>\n",
            mark(name.contains("patch")),
            mark(name.contains("clip"))
        ));
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>B2C ablation · {s}</title>\
         <style>body{{font-family:sans-serif}}td,th{{padding:4px 10px;text-align:right}}</style></head><body>\
         <h1>B2C ablation · {s}</h1><table><tr><th>patch</th><th>CLIP loss</th>{head}</tr>\n{rows}</table>\
         <h2>The paper's Table 1 (real NSD)</h2><table><tr><th>patch</th><th>CLIP loss</th>{head}</tr>\n{paper}</table>\
         <p><img src=\"figure.png\" alt=\"stimulus, then one column per condition\"></p></body></html>\n",
        s = subject.meta.subject
    )
}

/// Figure 3's layout: the first `rows` test images, the stimulus then sample 1 of each cell.
fn write_figure(subject: &PreparedSubject, cells: &[Cell], path: &Path, rows: usize) -> Result<()> {
    let stimuli = subject.images()?;
    let first = match cells.first() {
        Some(cell) => Manifest::load(&cell.recon)?.ids,
        None => return Ok(()),
    };
    let mut grid = Vec::new();
    for id in first.iter().take(rows) {
        let mut row = vec![stimuli.get(*id).expect("test image in the store")];
        for cell in cells {
            row.push(read_png(
                &Manifest::sample_dir(&cell.recon, 1).join(format!("{id}.png")),
            )?);
        }
        grid.push(row);
    }
    write_png(path, &crate::score::report::comparison_grid(&grid, 96))?;
    Ok(())
}
