//! A self-contained HTML evaluation report: header, metric table, decoding-accuracy plots and a
//! paged image grid. Everything is inline (CSS, SVG plots, PNG data URIs), so a page works offline
//! and survives being emailed.

use crate::error::ReportError;
use brainrecon_core::fs::write_bytes_atomic;
/// Standard padded base64, for data: URLs.
pub(crate) use brainrecon_core::text::base64_encode as base64;
/// Escapes text for HTML element content and quoted attribute values alike.
pub(crate) use brainrecon_core::text::escape_html as escape;
use brainrecon_core::DataError;
use brainrecon_formats::image::RgbImage;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Everything one report shows.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// e.g. "subj01 · linear route"
    pub title: String,
    /// The exact command line that produced the result.
    pub command: String,
    /// Diffusion model id or path.
    pub model: String,
    /// ("brainrecon", "0.1.0"), ...
    pub versions: Vec<(String, String)>,
    /// Grid column headers, e.g. ["stimulus", "decoded z", "sample 1", "sample 2"].
    pub columns: Vec<String>,
    /// One per test image; each has one cell per column.
    pub rows: Vec<GridRow>,
    /// The metric table; each row has one value per metric column.
    pub metrics: Vec<MetricRow>,
    /// e.g. ["PixCorr ↑", "SSIM ↑", "latent MSE ↓"].
    pub metric_columns: Vec<String>,
    /// The ridge decoders' accuracies, plotted (none for routes without decoders).
    pub decoders: Vec<DecoderAccuracy>,
    /// Further tables after the metrics (the field's metric suite, published rows).
    pub tables: Vec<Table>,
    /// Grid rows per page; 0 puts every row on one page.
    pub rows_per_page: usize,
    /// Grid images are downscaled to this many pixels on their longest side (never upscaled);
    /// 0 keeps them as they are.
    pub thumbnail: usize,
}

/// One grid row: a label, then one image per column (`None` renders an empty "missing" cell).
#[derive(Debug, Clone, Default)]
pub struct GridRow {
    /// Shown left of the images (the test image's id, and its decoded caption if any).
    pub label: String,
    /// One image per grid column.
    pub images: Vec<Option<RgbImage>>,
}

/// One metric-table row: one value per metric column (`None` renders "—").
#[derive(Debug, Clone, Default)]
pub struct MetricRow {
    /// The row's label (an image set or a published method).
    pub name: String,
    /// One value per column.
    pub values: Vec<Option<f64>>,
}

/// A titled table of values with a note under it (`None` renders "—").
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Shown above the table.
    pub title: String,
    /// Column headers (the row labels' column has none).
    pub columns: Vec<String>,
    /// The rows, each with one value per column.
    pub rows: Vec<MetricRow>,
    /// Plain text, shown under the table.
    pub note: String,
}

/// Accuracy of one ridge decoder.
#[derive(Debug, Clone, Default)]
pub struct DecoderAccuracy {
    /// "z" or "c".
    pub name: String,
    /// e.g. "streams/early".
    pub roi: String,
    /// Voxels in the ROI.
    pub n_voxels: usize,
    /// Per-target CV score (Pearson r or R²) at the chosen alpha.
    pub cv_score: Vec<f64>,
    /// Per-target Pearson r on the test set (may be empty).
    pub test_r: Vec<f64>,
    /// Share of targets whose alpha sits at the edge of the grid.
    pub alpha_at_edge: f64,
}

/// Writes `path` (report.html) and, when rows exceed rows_per_page, further self-contained pages
/// next to it (report-page-2.html, ...), each linking to the others. Atomic writes (temp file then
/// rename). Returns the paths written, first page first.
pub fn write_report(path: &Path, report: &Report) -> Result<Vec<PathBuf>, ReportError> {
    validate(path, report)?;
    let per_page = if report.rows_per_page == 0 {
        report.rows.len().max(1)
    } else {
        report.rows_per_page
    };
    let n_pages = report.rows.len().div_ceil(per_page).max(1);
    let paths: Vec<PathBuf> = (1..=n_pages).map(|k| page_path(path, k)).collect();
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();

    // Shared by every page; rendered once.
    let head = render_head(report);
    let metrics = render_metrics(report);
    let tables: String = report.tables.iter().map(render_table).collect();
    let decoders = render_decoders(report).map_err(|(what, detail)| ReportError::Render {
        path: path.to_path_buf(),
        what,
        detail,
    })?;

    let mut pages = Vec::with_capacity(n_pages);
    for k in 1..=n_pages {
        let start = (k - 1) * per_page;
        let end = (start + per_page).min(report.rows.len());
        let mut html = String::new();
        html.push_str(&page_open(report, k, n_pages));
        html.push_str(&head);
        html.push_str(&render_nav(&names, k));
        html.push_str(&metrics);
        html.push_str(&tables);
        html.push_str(&decoders);
        html.push_str(&render_grid(path, report, start, end)?);
        html.push_str(&render_nav(&names, k));
        html.push_str("</body>\n</html>\n");
        pages.push(html);
    }
    // Later pages first, so report.html never links to a page that is not there yet.
    for (page, html) in paths.iter().zip(&pages).rev() {
        write_bytes_atomic(page, html.as_bytes())?;
    }
    // Pages left over from an earlier, longer report would otherwise be linked from nowhere.
    // The last goes first: a run killed among them leaves pages n+1.. in a row, which the next
    // run finds (removing the first first would hide the rest from it for good).
    let stale: Vec<PathBuf> = (n_pages + 1..)
        .map(|k| page_path(path, k))
        .take_while(|p| p.is_file())
        .collect();
    for page in stale.iter().rev() {
        std::fs::remove_file(page).map_err(|e| DataError::io(page, e))?;
    }
    Ok(paths)
}

fn validate(path: &Path, report: &Report) -> Result<(), ReportError> {
    let invalid = |what: String| ReportError::Invalid {
        path: path.to_path_buf(),
        what,
    };
    if path.file_name().is_none() {
        return Err(invalid("expected a file name for the report".into()));
    }
    for row in &report.rows {
        if row.images.len() != report.columns.len() {
            return Err(invalid(format!(
                "grid row {:?}: expected {} images (one per column), found {}",
                row.label,
                report.columns.len(),
                row.images.len()
            )));
        }
        for (column, image) in report.columns.iter().zip(&row.images) {
            if let Some(image) = image {
                if image.width == 0 || image.height == 0 {
                    return Err(invalid(format!(
                        "grid row {:?}, column {column:?}: expected a non-empty image, found {}×{}",
                        row.label, image.width, image.height
                    )));
                }
            }
        }
    }
    for row in &report.metrics {
        if row.values.len() != report.metric_columns.len() {
            return Err(invalid(format!(
                "metric row {:?}: expected {} values (one per metric column), found {}",
                row.name,
                report.metric_columns.len(),
                row.values.len()
            )));
        }
    }
    Ok(())
}

/// Page 1 is `path` itself; page k is `<stem>-page-k.<ext>` beside it.
fn page_path(path: &Path, k: usize) -> PathBuf {
    if k == 1 {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-page-{k}.{}", ext.to_string_lossy()),
        None => format!("{stem}-page-{k}"),
    };
    path.with_file_name(name)
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{margin:0 0 .4em}h2{margin:1.4em 0 .5em;font-size:1.2em}
pre{background:#f4f4f4;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
table{border-collapse:collapse;margin:.3em 0}
th,td{border:1px solid #ccc;padding:.25em .5em;vertical-align:middle}
th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
p.note{font-size:.85em;color:#555;max-width:60em}
table.grid td{text-align:center}
table.grid img{display:block;margin:auto;image-rendering:auto}
td.missing{color:#999;font-style:italic;background:repeating-linear-gradient(45deg,#fafafa,#fafafa 6px,#f0f0f0 6px,#f0f0f0 12px)}
nav.pages{margin:1em 0}nav.pages a,nav.pages strong{margin-right:.5em}
.plots{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0}figcaption{font-size:.85em;color:#555;max-width:480px}
svg{max-width:100%;height:auto}
";

fn page_open(report: &Report, k: usize, n_pages: usize) -> String {
    let title = if n_pages > 1 {
        format!("{} — page {k} of {n_pages}", report.title)
    } else {
        report.title.clone()
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
        escape(&title)
    )
}

fn render_head(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "<header>\n<h1>{}</h1>", escape(&report.title));
    let _ = writeln!(
        s,
        "<p><strong>Model:</strong> <code>{}</code></p>",
        escape(&report.model)
    );
    let _ = writeln!(s, "<p><strong>Command:</strong></p>");
    let _ = writeln!(s, "<pre>{}</pre>", escape(&report.command));
    if !report.versions.is_empty() {
        s.push_str("<p><strong>Versions:</strong> ");
        let list: Vec<String> = report
            .versions
            .iter()
            .map(|(name, version)| format!("{} <code>{}</code>", escape(name), escape(version)))
            .collect();
        s.push_str(&list.join(", "));
        s.push_str("</p>\n");
    }
    s.push_str("</header>\n");
    s
}

fn render_nav(names: &[String], current: usize) -> String {
    if names.len() < 2 {
        return String::new();
    }
    let link = |k: usize, text: &str| {
        format!(
            "<a href=\"{}\">{}</a>",
            escape(&href(&names[k - 1])),
            escape(text)
        )
    };
    let mut s = String::from("<nav class=\"pages\">Pages: ");
    if current > 1 {
        s.push_str(&link(current - 1, "‹ previous"));
        s.push(' ');
    }
    for k in 1..=names.len() {
        if k == current {
            let _ = write!(s, "<strong>{k}</strong>");
        } else {
            s.push_str(&link(k, &k.to_string()));
        }
        s.push(' ');
    }
    if current < names.len() {
        s.push_str(&link(current + 1, "next ›"));
    }
    s.push_str("</nav>\n");
    s
}

fn render_metrics(report: &Report) -> String {
    let mut s = String::from("<section>\n<h2>Metrics</h2>\n");
    if report.metrics.is_empty() {
        s.push_str("<p>No metrics.</p>\n</section>\n");
        return s;
    }
    s.push_str("<table class=\"metrics\">\n<thead><tr><th></th>");
    for column in &report.metric_columns {
        let _ = write!(s, "<th>{}</th>", escape(column));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for row in &report.metrics {
        let _ = write!(s, "<tr><th>{}</th>", escape(&row.name));
        for value in &row.values {
            let _ = write!(s, "<td class=\"num\">{}</td>", fmt_opt(*value));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>\n</section>\n");
    s
}

fn render_table(table: &Table) -> String {
    let mut s = format!("<section>\n<h2>{}</h2>\n", escape(&table.title));
    s.push_str("<table class=\"metrics\">\n<thead><tr><th></th>");
    for column in &table.columns {
        let _ = write!(s, "<th>{}</th>", escape(column));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        let _ = write!(s, "<tr><th>{}</th>", escape(&row.name));
        for value in &row.values {
            let _ = write!(s, "<td class=\"num\">{}</td>", fmt_opt(*value));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>\n");
    if !table.note.is_empty() {
        let _ = writeln!(s, "<p class=\"note\">{}</p>", escape(&table.note));
    }
    s.push_str("</section>\n");
    s
}

/// Error as (what, detail), turned into [`ReportError::Render`] by the caller.
fn render_decoders(report: &Report) -> Result<String, (String, String)> {
    let mut s = String::from("<section>\n<h2>Decoding accuracy</h2>\n");
    if report.decoders.is_empty() {
        s.push_str("<p>No decoders.</p>\n</section>\n");
        return Ok(s);
    }
    s.push_str(
        "<table class=\"decoders\">\n<thead><tr><th>decoder</th><th>ROI</th><th>voxels</th>\
         <th>targets</th><th>mean CV score</th><th>mean test r</th><th>median test r</th>\
         <th>alpha at grid edge</th></tr></thead>\n<tbody>\n",
    );
    for d in &report.decoders {
        let _ = writeln!(
            s,
            "<tr><th>{}</th><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            escape(&d.name),
            escape(&d.roi),
            d.n_voxels,
            d.cv_score.len().max(d.test_r.len()),
            fmt_opt(mean(&d.cv_score)),
            fmt_opt(mean(&d.test_r)),
            fmt_opt(median(&d.test_r)),
            fmt_percent(d.alpha_at_edge),
        );
    }
    s.push_str("</tbody>\n</table>\n<div class=\"plots\">\n");
    for d in &report.decoders {
        let label = decoder_label(d);
        let svg =
            histogram_svg(d).map_err(|e| (format!("the histogram of decoder {label:?}"), e))?;
        let mut caption = format!(
            "Per-target scores of decoder {}: CV score at the chosen alpha",
            escape(&label)
        );
        caption.push_str(if d.test_r.is_empty() {
            " (no test set)."
        } else {
            " and Pearson r on the test set."
        });
        let dropped = d
            .cv_score
            .iter()
            .chain(&d.test_r)
            .filter(|v| !v.is_finite())
            .count();
        if dropped > 0 {
            let _ = write!(caption, " {dropped} non-finite value(s) left out.");
        }
        let _ = writeln!(
            s,
            "<figure class=\"plot\">\n{svg}<figcaption>{caption}</figcaption>\n</figure>"
        );
    }
    let svg =
        bars_svg(&report.decoders).map_err(|e| ("the bar chart of mean scores".to_string(), e))?;
    let _ = writeln!(
        s,
        "<figure class=\"plot\">\n{svg}<figcaption>Mean test r (and mean CV score) per \
         decoder and ROI.</figcaption>\n</figure>"
    );
    s.push_str("</div>\n</section>\n");
    Ok(s)
}

fn decoder_label(d: &DecoderAccuracy) -> String {
    format!("{} · {}", d.name, d.roi)
}

const CV_COLOUR: RGBColor = RGBColor(150, 150, 150);
const TEST_COLOUR: RGBColor = RGBColor(31, 119, 180);
const BINS: usize = 20;

/// Overlaid histograms of the per-target CV scores and test r of one decoder.
fn histogram_svg(d: &DecoderAccuracy) -> Result<String, String> {
    let finite = |v: &[f64]| -> Vec<f64> { v.iter().copied().filter(|x| x.is_finite()).collect() };
    let series = [
        ("CV score", finite(&d.cv_score), CV_COLOUR),
        ("test r", finite(&d.test_r), TEST_COLOUR),
    ];
    let values: Vec<&[f64]> = series.iter().map(|s| s.1.as_slice()).collect();
    let Binned {
        lo,
        hi,
        width,
        counts,
        top,
    } = binned(&values, BINS);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (480, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(decoder_label(d), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0u32..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("per-target score")
            .y_desc("targets")
            .draw()
            .map_err(|e| e.to_string())?;
        let mut labelled = false;
        for ((name, values, colour), c) in series.iter().zip(&counts) {
            if values.is_empty() {
                continue;
            }
            let style = colour.mix(0.55).filled();
            chart
                .draw_series(c.iter().enumerate().filter(|(_, &n)| n > 0).map(|(i, &n)| {
                    let x0 = lo + i as f64 * width;
                    Rectangle::new([(x0, 0), (x0 + width, n)], style)
                }))
                .map_err(|e| e.to_string())?
                .label(format!("{name} (n = {})", values.len()))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], style));
            labelled = true;
        }
        if labelled {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Shared histogram bins of several series of finite values.
pub(crate) struct Binned {
    pub lo: f64,
    pub hi: f64,
    pub width: f64,
    /// Per series, the count in each bin.
    pub counts: Vec<Vec<u32>>,
    /// One more than the largest count (the y range).
    pub top: u32,
}

/// Bins `series` into `bins` equal bins over their common range, zero kept in range so the
/// sign of the values shows at a glance.
pub(crate) fn binned(series: &[&[f64]], bins: usize) -> Binned {
    let (mut lo, mut hi) = series
        .iter()
        .flat_map(|s| s.iter())
        .fold((0f64, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if hi - lo < 1e-9 {
        lo -= 0.5;
        hi += 0.5;
    }
    let width = (hi - lo) / bins as f64;
    let counts: Vec<Vec<u32>> = series
        .iter()
        .map(|values| {
            let mut c = vec![0u32; bins];
            for &v in values.iter() {
                c[(((v - lo) / width).floor() as usize).min(bins - 1)] += 1;
            }
            c
        })
        .collect();
    let top = counts.iter().flatten().copied().max().unwrap_or(0) + 1;
    Binned {
        lo,
        hi,
        width,
        counts,
        top,
    }
}

/// Grouped bars: mean test r and mean CV score of every decoder.
fn bars_svg(decoders: &[DecoderAccuracy]) -> Result<String, String> {
    let n = decoders.len();
    let means: Vec<(Option<f64>, Option<f64>)> = decoders
        .iter()
        .map(|d| (mean(&d.test_r), mean(&d.cv_score)))
        .collect();
    let values = means.iter().flat_map(|&(a, b)| [a, b]).flatten();
    let (mut lo, mut hi) = values.fold((0f64, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi - lo < 1e-9 {
        hi += 0.1;
    }
    let pad = 0.1 * (hi - lo);
    if lo < 0.0 {
        lo -= pad;
    }
    hi += pad;

    let width = (140 * n as u32).clamp(360, 960);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption("mean score per decoder", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..n as f64, lo..hi)
            .map_err(|e| e.to_string())?;
        // Categorical x axis: the labels are drawn below, one per decoder.
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("mean score")
            .draw()
            .map_err(|e| e.to_string())?;
        for (name, colour, offset, pick) in [
            ("test r", TEST_COLOUR, 0.1, 0usize),
            ("CV score", CV_COLOUR, 0.5, 1usize),
        ] {
            let bars = means.iter().enumerate().filter_map(|(i, m)| {
                let v = if pick == 0 { m.0 } else { m.1 }?;
                let x0 = i as f64 + offset;
                Some(Rectangle::new([(x0, 0.0), (x0 + 0.4, v)], colour.filled()))
            });
            chart
                .draw_series(bars)
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| e.to_string())?;
        let style = ("sans-serif", 12)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        for (i, d) in decoders.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, lo));
            root.draw_text(&d.name, &style, (x, y + 4))
                .map_err(|e| e.to_string())?;
            root.draw_text(&d.roi, &style, (x, y + 18))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn render_grid(
    path: &Path,
    report: &Report,
    start: usize,
    end: usize,
) -> Result<String, ReportError> {
    let mut s = String::from("<section>\n");
    if report.rows.is_empty() {
        s.push_str("<h2>Images</h2>\n<p>No images.</p>\n</section>\n");
        return Ok(s);
    }
    let _ = writeln!(
        s,
        "<h2>Images (rows {}–{} of {})</h2>",
        start + 1,
        end,
        report.rows.len()
    );
    s.push_str("<table class=\"grid\">\n<thead><tr><th></th>");
    for column in &report.columns {
        let _ = write!(s, "<th>{}</th>", escape(column));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for row in &report.rows[start..end] {
        let _ = write!(s, "<tr><th>{}</th>", escape(&row.label));
        for (column, image) in report.columns.iter().zip(&row.images) {
            match image {
                None => s.push_str("<td class=\"missing\">missing</td>"),
                Some(image) => {
                    let thumb = thumbnail(image, report.thumbnail);
                    let png = encode_png(&thumb).map_err(|detail| ReportError::Render {
                        path: path.to_path_buf(),
                        what: format!("the image of row {:?}, column {column:?}", row.label),
                        detail,
                    })?;
                    let _ = write!(
                        s,
                        "<td><img src=\"data:image/png;base64,{}\" width=\"{}\" height=\"{}\" \
                         alt=\"{}\"></td>",
                        base64(&png),
                        thumb.width,
                        thumb.height,
                        escape(&format!("{} — {column}", row.label))
                    );
                }
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>\n</section>\n");
    Ok(s)
}

/// Downscales so the longest side is `longest` pixels, keeping the aspect ratio; never upscales.
fn thumbnail(image: &RgbImage, longest: usize) -> RgbImage {
    let side = image.height.max(image.width);
    if longest == 0 || side <= longest {
        return image.clone();
    }
    let scale = longest as f64 / side as f64;
    let h = ((image.height as f64 * scale).round() as usize).max(1);
    let w = ((image.width as f64 * scale).round() as usize).max(1);
    image.resize(h, w)
}

pub(crate) fn encode_png(image: &RgbImage) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, image.width as u32, image.height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&image.pixels)
        .map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Percent-encodes a file name for use as a relative link.
fn href(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Four significant digits; scientific notation outside 1e-3..1e5.
fn fmt_sig(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "∞" } else { "−∞" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    if (-3..5).contains(&magnitude) {
        format!("{:.*}", (3 - magnitude).max(0) as usize, v)
    } else {
        format!("{v:.3e}")
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(fmt_sig).unwrap_or_else(|| "—".into())
}

fn fmt_percent(share: f64) -> String {
    if share.is_finite() {
        format!("{:.1}%", 100.0 * share)
    } else {
        "—".into()
    }
}

/// Mean of the finite values; `None` when there are none.
fn mean(values: &[f64]) -> Option<f64> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    (!finite.is_empty()).then(|| finite.iter().sum::<f64>() / finite.len() as f64)
}

/// `numpy.median` of the finite values; `None` when there are none.
fn median(values: &[f64]) -> Option<f64> {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    (!finite.is_empty()).then(|| brainrecon_core::stats::median(&mut finite))
}

/// Figure 3's layout: one row per image, the stimulus then each condition, `cell` px squares
/// with a 4 px white gutter.
pub fn comparison_grid(rows: &[Vec<RgbImage>], cell: usize) -> RgbImage {
    let cols = rows.first().map_or(0, Vec::len);
    let gap = 4;
    let (w, h) = (cols * (cell + gap) + gap, rows.len() * (cell + gap) + gap);
    let mut pixels = vec![255u8; w * h * 3];
    for (r, row) in rows.iter().enumerate() {
        for (c, image) in row.iter().enumerate() {
            let im = image.resize(cell, cell);
            let (x0, y0) = (gap + c * (cell + gap), gap + r * (cell + gap));
            for y in 0..cell {
                let dst = ((y0 + y) * w + x0) * 3;
                pixels[dst..dst + cell * 3]
                    .copy_from_slice(&im.pixels[y * cell * 3..(y + 1) * cell * 3]);
            }
        }
    }
    RgbImage::new(h, w, pixels)
}

/// `target` as a link from a page in `from` (relative when both resolve, else a file URL).
pub fn relative_href(from: &Path, target: &Path) -> String {
    let (Ok(from), Ok(target)) = (from.canonicalize(), target.canonicalize()) else {
        return format!("file://{}", target.display());
    };
    let (a, b): (Vec<_>, Vec<_>) = (from.components().collect(), target.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_string(), a.len() - common).collect();
    parts.extend(
        b[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(size: usize, rgb: [u8; 3]) -> RgbImage {
        RgbImage::new(size, size, rgb.repeat(size * size))
    }

    fn report_with_rows(n: usize, per_page: usize) -> Report {
        Report {
            title: "subj01 · linear route".into(),
            command: "brainrecon eval --stimuli a --recons b".into(),
            model: "stabilityai/stable-diffusion-2-1".into(),
            versions: vec![("brainrecon".into(), "0.1.0".into())],
            columns: vec!["stimulus".into(), "decoded z".into()],
            rows: (0..n)
                .map(|i| GridRow {
                    label: format!("image {i}"),
                    images: vec![
                        Some(square(8, [i as u8 * 10, 0, 0])),
                        Some(square(8, [0, i as u8 * 10, 0])),
                    ],
                })
                .collect(),
            metrics: vec![MetricRow {
                name: "linear".into(),
                values: vec![Some(0.123456), None],
            }],
            metric_columns: vec!["PixCorr ↑".into(), "SSIM ↑".into()],
            tables: Vec::new(),
            decoders: vec![
                DecoderAccuracy {
                    name: "z".into(),
                    roi: "streams/early".into(),
                    n_voxels: 1000,
                    cv_score: (0..50).map(|i| i as f64 / 100.0 - 0.1).collect(),
                    test_r: (0..50).map(|i| i as f64 / 120.0).collect(),
                    alpha_at_edge: 0.05,
                },
                DecoderAccuracy {
                    name: "c".into(),
                    roi: "streams/ventral".into(),
                    n_voxels: 2000,
                    cv_score: vec![0.2, 0.3, f64::NAN],
                    test_r: vec![],
                    alpha_at_edge: 0.0,
                },
            ],
            rows_per_page: per_page,
            thumbnail: 128,
        }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    fn decode_base64(text: &str) -> Vec<u8> {
        let value = |c: u8| -> u32 {
            match c {
                b'A'..=b'Z' => (c - b'A') as u32,
                b'a'..=b'z' => (c - b'a' + 26) as u32,
                b'0'..=b'9' => (c - b'0' + 52) as u32,
                b'+' => 62,
                b'/' => 63,
                _ => panic!("not base64: {c}"),
            }
        };
        let mut out = Vec::new();
        for chunk in text.as_bytes().chunks(4) {
            let pad = chunk.iter().filter(|&&c| c == b'=').count();
            let n = chunk
                .iter()
                .map(|&c| if c == b'=' { 0 } else { value(c) })
                .fold(0u32, |n, v| n << 6 | v);
            out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
        }
        out
    }

    /// (width, height) of every inline PNG, read from the PNGs themselves.
    fn png_sizes(html: &str) -> Vec<(u32, u32)> {
        html.split("data:image/png;base64,")
            .skip(1)
            .map(|rest| {
                let data = decode_base64(&rest[..rest.find('"').unwrap()]);
                let info = png::Decoder::new(&data[..]).read_info().unwrap();
                (info.info().width, info.info().height)
            })
            .collect()
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_base64(&base64(&bytes)), bytes);
    }

    #[test]
    fn significant_digits() {
        assert_eq!(fmt_sig(0.123456), "0.1235");
        assert_eq!(fmt_sig(12.3456), "12.35");
        assert_eq!(fmt_sig(-0.5), "-0.5000");
        assert_eq!(fmt_sig(0.0), "0");
        assert_eq!(fmt_sig(1.5e-5), "1.500e-5");
        assert_eq!(fmt_sig(f64::NAN), "NaN");
        assert_eq!(fmt_opt(None), "—");
    }

    #[test]
    fn paging_writes_linked_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        let paths = write_report(&path, &report_with_rows(25, 10)).unwrap();
        let names: Vec<String> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["report.html", "report-page-2.html", "report-page-3.html"]
        );
        for (k, page) in paths.iter().enumerate() {
            let html = read(page);
            for (j, other) in names.iter().enumerate() {
                let link = format!("href=\"{other}\"");
                assert_eq!(html.contains(&link), j != k, "page {} → {other}", k + 1);
            }
            let rows = if k < 2 { 10 } else { 5 };
            assert_eq!(html.matches("<img ").count(), 2 * rows);
            assert!(html.contains(&format!("<th>image {}</th>", k * 10)));
            assert!(!html.contains(&format!("<th>image {}</th>", (k + 1) * 10)));
            // Self-contained: nothing fetched from elsewhere.
            for external in ["<link", "<script", "src=\"http", "url(", "@import"] {
                assert!(!html.contains(external), "{external} in page {}", k + 1);
            }
        }
        // Only the three pages remain: no temporary files.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);

        // A shorter report removes the pages it no longer has.
        let paths = write_report(&path, &report_with_rows(5, 10)).unwrap();
        assert_eq!(paths, vec![path.clone()]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(!read(&path).contains("<nav"));

        // What a run killed while removing stale pages leaves (the later ones go first, so
        // pages 2-3 of 2-4): the next run removes them all.
        for k in [2, 3] {
            std::fs::write(page_path(&path, k), b"stale").unwrap();
        }
        write_report(&path, &report_with_rows(5, 10)).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn text_is_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        let mut report = report_with_rows(2, 10);
        report.title = "<script>alert('x')</script>".into();
        report.command = "brainrecon eval --name \"a&b\" <in >out".into();
        report.model = "m<odel>".into();
        report.columns[0] = "<b>col</b>".into();
        report.rows[0].label = "row & <i>".into();
        report.metric_columns[0] = "r<2".into();
        report.decoders[0].roi = "<roi>".into();
        write_report(&path, &report).unwrap();
        let html = read(&path);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(
            html.contains("<pre>brainrecon eval --name &quot;a&amp;b&quot; &lt;in &gt;out</pre>")
        );
        // Under "Command:", once.
        assert_eq!(html.matches("Command:").count(), 1);
        assert_eq!(html.matches("brainrecon eval --name").count(), 1);
        assert!(html.contains("m&lt;odel&gt;"));
        assert!(html.contains("<th>&lt;b&gt;col&lt;/b&gt;</th>"));
        assert!(html.contains("<th>row &amp; &lt;i&gt;</th>"));
        assert!(html.contains("r&lt;2"));
        assert!(!html.contains("<roi>") && html.contains("&lt;roi&gt;"));
        assert!(!html.contains("<i>") && !html.contains("<b>"));
    }

    #[test]
    fn missing_cell_and_metric() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        let mut report = report_with_rows(2, 10);
        report.rows[1].images[0] = None;
        write_report(&path, &report).unwrap();
        let html = read(&path);
        assert_eq!(
            html.matches("<td class=\"missing\">missing</td>").count(),
            1
        );
        assert_eq!(html.matches("<img ").count(), 3);
        assert!(html.contains("<td class=\"num\">0.1235</td><td class=\"num\">—</td>"));
    }

    #[test]
    fn thumbnails_keep_aspect() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        let mut report = report_with_rows(1, 10);
        report.thumbnail = 16;
        let wide = RgbImage::new(30, 60, [9u8, 200, 30].repeat(30 * 60));
        let small = square(10, [1, 2, 3]);
        report.rows[0].images = vec![Some(wide), Some(small)];
        write_report(&path, &report).unwrap();
        let html = read(&path);
        assert!(html.contains("width=\"16\" height=\"8\""));
        assert!(html.contains("width=\"10\" height=\"10\""));
        assert_eq!(png_sizes(&html), vec![(16, 8), (10, 10)]);
        let tall = RgbImage::new(100, 7, vec![0; 100 * 7 * 3]);
        let t = thumbnail(&tall, 20);
        assert_eq!((t.height, t.width), (20, 1));
    }

    #[test]
    fn plots_are_inline_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        write_report(&path, &report_with_rows(1, 10)).unwrap();
        let html = read(&path);
        // Two histograms and one bar chart.
        assert_eq!(html.matches("<svg ").count(), 3);
        assert!(html.contains("z · streams/early"));
        assert!(html.contains("(no test set)"));
        assert!(html.contains("1 non-finite value(s) left out"));
    }

    #[test]
    fn mismatched_rows_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        let mut report = report_with_rows(2, 10);
        report.rows[1].images.pop();
        let err = write_report(&path, &report).unwrap_err().to_string();
        assert!(
            err.contains("report.html") && err.contains("expected 2 images"),
            "{err}"
        );
        let mut report = report_with_rows(2, 10);
        report.metrics[0].values.push(Some(1.0));
        let err = write_report(&path, &report).unwrap_err().to_string();
        assert!(err.contains("expected 2 values"), "{err}");
        assert!(!path.exists());
    }
}
