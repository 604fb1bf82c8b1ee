//! The video route's HTML report: each test clip's stimulus and reconstruction side by side,
//! animated (GIFs), with the rule's readings, SSIM and 2-way score; the summary beside
//! MinD-Video's published numbers, every value with its chance level; the scores per test
//! segment and position in it.
//!
//! ```text
//! <out>/index.html
//! <out>/stimulus/<segment>-<tr>.gif   the stimulus clips (written here, at their own size)
//! ```

use super::evaluate::VideoEvalSummary;
use super::stimuli::{StimulusClips, StimulusTr};
use crate::error::Result;
use crate::score::report::escape;
use crate::score::report::relative_href;
use brainrecon_core::fs::write_bytes_atomic;
use brainrecon_formats::cifti::cc2017::Split;
use brainrecon_formats::video::write_gif;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Writes the stimulus GIFs and `index.html` into `out`; returns the page's path.
pub fn write_report(
    summary: &VideoEvalSummary,
    stimuli: &Path,
    fps: f64,
    out: &Path,
) -> Result<PathBuf> {
    let frames = (fps * 2.0).round().max(1.0) as usize;
    let mut clips = StimulusClips::new(stimuli, frames as f64 / fps, frames);
    let mut rows = String::new();
    for row in &summary.rows {
        let name = format!("{}-{}", row.segment, row.tr);
        let stimulus_gif = out.join("stimulus").join(format!("{name}.gif"));
        if !stimulus_gif.is_file() {
            let at = StimulusTr {
                split: Split::Test,
                segment: row.segment,
                tr: row.tr,
            };
            write_gif(&stimulus_gif, &clips.clip(at)?, fps)?;
        }
        let recon_gif = summary
            .reconstructed
            .join("clips")
            .join(format!("{name}.gif"));
        let _ = writeln!(
            rows,
            "<tr><td>test{} TR {}</td><td><img src=\"{}\" alt=\"stimulus\"></td>\
             <td><img src=\"{}\" alt=\"reconstruction\"></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{:.3}</td><td>{:.1}</td><td>{:.2}</td></tr>",
            row.segment,
            row.tr,
            escape(&relative_href(out, &stimulus_gif)),
            escape(&relative_href(out, &recon_gif)),
            escape(&row.stimulus_reading),
            escape(&row.reconstruction_reading),
            escape(row.decoded_caption.as_deref().unwrap_or("–")),
            row.ssim,
            row.psnr,
            row.two_way,
        );
    }
    let page = page(summary, &rows);
    let path = out.join("index.html");
    write_bytes_atomic(&path, page.as_bytes())?;
    Ok(path)
}

/// Rows for MinD-Video's classifier scores that were computed.
fn classifier_rows(s: &VideoEvalSummary) -> String {
    [
        ("2-way-I (ViT-B/16, per frame)", &s.two_way_i, ""),
        ("2-way-V (VideoMAE, per clip)", &s.two_way_v, "0.839"),
        ("50-way-V (VideoMAE, per clip)", &s.fifty_way_v, "0.197"),
    ]
    .iter()
    .filter_map(|(name, score, published)| {
        score.as_ref().map(|v| {
            format!(
                "<tr><td>{name}</td><td>{:.3}</td><td>{:.3}</td><td>{published}</td></tr>\n",
                v.value, v.chance
            )
        })
    })
    .collect()
}

/// The table of scores per segment and position in it.
fn breakdown_table(s: &VideoEvalSummary) -> String {
    let mut rows = String::new();
    for g in &s.breakdown {
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{}–{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td>\
             <td>{:.3}</td><td>{:.3}</td></tr>",
            escape(&g.group),
            g.first_tr,
            g.last_tr,
            g.clips,
            g.two_way,
            g.direction,
            g.colour,
            g.shape,
            g.ssim,
        );
    }
    format!(
        "<h2>By segment and position in the segment</h2>\n<p>Early, middle and late: the \
         first, middle and last third of a segment's stimulus TRs.</p>\n<table>\n<tr><th>clips \
         of</th><th>TRs</th><th>clips</th><th>2-way</th><th>motion direction</th><th>colour</th>\
         <th>shape</th><th>SSIM</th></tr>\n{rows}</table>\n"
    )
}

fn page(s: &VideoEvalSummary, rows: &str) -> String {
    let fifty = s
        .fifty_way
        .as_ref()
        .map(|f| format!("{:.3} (chance {:.3}, quoted 0.020)", f.value, f.chance))
        .unwrap_or_else(|| "–".into());
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>brainrecon: video \
         reconstruction</title><style>body{{font-family:sans-serif;margin:2em}}\
         td,th{{padding:4px 8px;border-bottom:1px solid #ddd}}img{{width:128px;\
         image-rendering:pixelated}}</style></head><body>\n<h1>Video reconstruction</h1>\n\
         <p>{} test clips; classes from: {}.</p>\n<table>\n<tr><th>metric</th><th>ours</th>\
         <th>chance</th><th>MinD-Video (CC2017, published)</th></tr>\n\
         {}<tr><td>2-way top-1 (the classes above)</td><td>{:.3}</td><td>{:.3} (quoted {:.2})</td><td></td></tr>\n\
         <tr><td>50-way top-1 (the classes above)</td><td>{}</td><td></td><td></td></tr>\n\
         <tr><td>motion direction</td><td>{:.3}</td><td>{:.3}</td><td></td></tr>\n\
         <tr><td>colour</td><td>{:.3}</td><td>{:.3}</td><td></td></tr>\n\
         <tr><td>shape</td><td>{:.3}</td><td>{:.3}</td><td></td></tr>\n\
         <tr><td>SSIM ({}²)</td><td>{:.3}</td><td></td><td>0.171</td></tr>\n\
         <tr><td>PSNR</td><td>{:.2}</td><td></td><td></td></tr>\n</table>\n{}\
         <h2>Clips</h2>\n<table>\n<tr><th>clip</th><th>stimulus</th><th>reconstruction</th>\
         <th>stimulus read</th><th>reconstruction read</th><th>decoded caption</th><th>SSIM</th><th>PSNR</th>\
         <th>2-way</th></tr>\n{}</table>\n</body></html>\n",
        s.clips,
        escape(&s.classifier),
        classifier_rows(s),
        s.two_way.value,
        s.two_way.chance,
        s.nominal_chance_two_way,
        fifty,
        s.direction.value,
        s.direction.chance,
        s.colour.value,
        s.colour.chance,
        s.shape.value,
        s.shape.chance,
        s.frame_size,
        s.ssim,
        s.psnr,
        breakdown_table(s),
        rows
    )
}
