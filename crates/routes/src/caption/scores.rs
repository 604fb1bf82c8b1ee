//! Caption metrics of a captions file for `brainrecon eval` and `brainrecon caption`: BLEU-1…4,
//! METEOR (with the user's `meteor-1.5.jar`), ROUGE-L and CIDEr as pycocoevalcap computes them
//! against each test image's true captions, the report's table with the published rows, and
//! each grid row's caption text.

use super::CaptionsFile;
use crate::error::{Result, RouteError};
use crate::score::evaluate::{EvalContext, EvalExtras, ReportSection};
use crate::score::report::{MetricRow, Table};
use brainrecon_metrics::{caption_scores, caption_scores_with_meteor, CaptionScores, MeteorFiles};
use std::path::{Path, PathBuf};

/// Column headers of the caption table (the order papers print).
pub const CAPTION_COLUMNS: [&str; 7] = [
    "BLEU-1 ↑",
    "BLEU-4 ↑",
    "METEOR ↑",
    "ROUGE-L ↑",
    "CIDEr ↑",
    "CLIP-S ↑",
    "RefCLIP-S ↑",
];

/// Published subj01 rows (BrainHub's evaluation, 982 test images): SDRecon is this route.
pub const PUBLISHED_CAPTION_ROWS: [(&str, [f64; 7]); 3] = [
    (
        "SDRecon (Takagi & Nishimoto, this route), NSD subj01",
        [36.2, 3.4, 10.0, 25.1, 13.8, 61.1, 66.4],
    ),
    (
        "MindEye2, NSD subj01",
        [54.8, 18.2, 17.5, 43.8, 55.7, 67.5, 73.7],
    ),
    (
        "UMBRAE, NSD subj01",
        [59.4, 19.0, 19.5, 43.7, 61.1, 67.8, 73.5],
    ),
];

/// The text metrics of `file`'s captions against the true ones (METEOR when `meteor_jar` is
/// given). `path` names the file in errors.
pub fn score_captions(
    file: &CaptionsFile,
    path: &Path,
    meteor_jar: Option<&Path>,
) -> Result<CaptionScores> {
    if let Some(item) = file.items.iter().find(|i| i.true_captions.is_empty()) {
        return Err(RouteError::mismatch(
            path,
            "true_captions",
            "the seen image's captions (stimuli/captions.json of the subject)",
            format!("none for image {}", item.id),
        ));
    }
    let hypotheses: Vec<&str> = file.items.iter().map(|i| i.caption.as_str()).collect();
    let references: Vec<Vec<&str>> = file
        .items
        .iter()
        .map(|i| i.true_captions.iter().map(String::as_str).collect())
        .collect();
    Ok(match meteor_jar {
        Some(jar) => {
            caption_scores_with_meteor(&hypotheses, &references, &MeteorFiles::from_jar(jar))?
        }
        None => caption_scores(&hypotheses, &references)?,
    })
}

/// The report's caption table: this run, then the published rows.
pub fn caption_table(scores: &CaptionScores) -> Table {
    let ours = MetricRow {
        name: format!("this run ({} test images)", scores.n_items),
        values: vec![
            Some(scores.bleu_1),
            Some(scores.bleu_4),
            scores.meteor,
            Some(scores.rouge_l),
            Some(scores.cider),
            scores.clip_s,
            scores.ref_clip_s,
        ],
    };
    let published = PUBLISHED_CAPTION_ROWS
        .iter()
        .map(|(name, values)| MetricRow {
            name: format!("published: {name}"),
            values: values.iter().map(|v| Some(*v)).collect(),
        });
    Table {
        title: "Decoded captions".into(),
        columns: CAPTION_COLUMNS.iter().map(|c| c.to_string()).collect(),
        rows: std::iter::once(ours).chain(published).collect(),
        note: "pycocoevalcap's BLEU, METEOR (needs --meteor-jar: pycocoevalcap's meteor-1.5.jar), \
               ROUGE-L and CIDEr against each image's true captions, ×100; CLIP-S and RefCLIP-S \
               need CLIP ViT-B/32. Published rows: NSD subj01, 982 images (BrainHub); a \
               synthetic subject's captions are not comparable with them."
            .into(),
    }
}

/// "decoded: … · seen: …" for the grid row of image `id`.
pub fn caption_label(file: &CaptionsFile, id: usize) -> Option<String> {
    let item = file.items.iter().find(|i| i.id == id)?;
    let seen = item.true_captions.first().map(String::as_str).unwrap_or("");
    Some(format!("decoded: {} · seen: {seen}", item.caption))
}

/// Adds CLIP-S and RefCLIP-S to `scores`: `model` embeds the seen `images` (in `file`'s item
/// order) and the captions with clipscore.py's prefix.
pub fn add_clip_scores(
    scores: CaptionScores,
    file: &CaptionsFile,
    images: &[brainrecon_formats::image::RgbImage],
    model: &brainrecon_diffusion::clip_model::ClipModel,
) -> Result<CaptionScores> {
    let captions: Vec<String> = file.items.iter().map(|i| i.caption.clone()).collect();
    let truths: Vec<Vec<String>> = file.items.iter().map(|i| i.true_captions.clone()).collect();
    let embeddings = super::clip_score::clip_score_embeddings(model, images, &captions, &truths)?;
    let (references, counts) = embeddings.flat_references();
    let clip = brainrecon_metrics::clip_scores(
        &embeddings.flat_images(),
        &embeddings.flat_captions(),
        embeddings.dim(),
        Some(brainrecon_metrics::ReferenceEmbeddings {
            embeddings: &references,
            counts: &counts,
        }),
    )?;
    Ok(scores.with_clip(&clip))
}

/// The caption route's part of an evaluation: the decoded captions scored against the seen
/// images' captions, their table, and each image's captions beside it in the grid.
struct CaptionExtras<'a> {
    path: PathBuf,
    file: CaptionsFile,
    context: EvalContext<'a>,
}

impl EvalExtras for CaptionExtras<'_> {
    fn section(&self) -> Result<ReportSection> {
        let (path, file, cx) = (&self.path, &self.file, &self.context);
        let scores = score_captions(file, path, cx.options.meteor_jar)?;
        let scores = match cx.options.clip_score_model {
            Some(model) => {
                let seen = file
                    .items
                    .iter()
                    .map(|item| {
                        cx.stimuli.get(item.id).ok_or_else(|| {
                            RouteError::mismatch(path, "items", "images of the subject", item.id)
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                add_clip_scores(scores, file, &seen, model)?
            }
            None => scores,
        };
        Ok(ReportSection {
            tables: vec![caption_table(&scores)],
            captions: Some(scores),
        })
    }

    fn label(&self, id: usize) -> Option<String> {
        caption_label(&self.file, id)
    }
}

/// The caption route's extras when there are captions to score (`--captions`, or the run's own
/// for `--method caption`), else none.
pub fn eval_extras<'a>(context: &EvalContext<'a>) -> Result<Option<Box<dyn EvalExtras + 'a>>> {
    let asked = context.options.captions;
    let Some(path) = asked.or(context.manifest.captions.as_deref()) else {
        return Ok(None);
    };
    let (path, file) = CaptionsFile::load_for(path, context.subject)?;
    Ok(Some(Box::new(CaptionExtras {
        path,
        file,
        context: EvalContext { ..*context },
    })))
}
