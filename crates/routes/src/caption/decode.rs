//! `brainrecon caption`: BLIP's text decoder writes a caption for every test image from its
//! decoded image tokens (the ridge prediction of `fit --target blip`), as the published
//! `decode_captions.py` does: the tokens are the cross-attention states (all attended), the
//! prompt is "a picture of " (`[DEC]` first, no trailing `[SEP]`), beam search with 3 beams,
//! lengths 5 to 20 (prompt included), repetition penalty 1.5, and the prompt is stripped.
//!
//! `--source features` captions the stimuli's own BLIP tokens instead: the captioner's ceiling.

use super::{CaptionItem, CaptionsFile, ScoredCaption, CAPTIONS_FORMAT};
use crate::decode::decoders::Decoder;
use crate::decode::features::{load_features, rows_for_ids, FeatureKind};
use crate::error::{Result, RouteError};
use crate::progress::bar;
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_language::blip::BlipForConditionalGeneration;
use brainrecon_language::generate::{beam_search, BeamScoring, BeamSearchConfig};
use brainrecon_language::wordpiece::BlipTokenizer;
use brainrecon_zoo::shapes_blip::data::PROMPT;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The search settings (the published ones by default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaptionOptions {
    /// Beam width (3; 1 runs greedy search).
    pub num_beams: usize,
    /// Longest caption in tokens, prompt included (20).
    pub max_length: usize,
    /// Shortest caption in tokens, prompt included (5).
    pub min_length: usize,
    /// CTRL's repetition penalty on tokens already written (1.5; 1 = off).
    pub repetition_penalty: f64,
    /// Which transformers version's beam scoring to follow (4.15's, as the published code).
    #[serde(with = "scoring_name")]
    pub scoring: BeamScoring,
    /// The text the caption starts from ("a picture of "), stripped afterwards.
    pub prompt: String,
    /// Only the first N test images.
    pub limit: Option<usize>,
}

impl Default for CaptionOptions {
    fn default() -> Self {
        CaptionOptions {
            num_beams: 3,
            max_length: 20,
            min_length: 5,
            repetition_penalty: 1.5,
            scoring: BeamScoring::Published,
            prompt: PROMPT.to_string(),
            limit: None,
        }
    }
}

/// Where the image tokens come from.
pub enum TokenSource<'a> {
    /// The ridge prediction of a `fit --target blip` decoder for the test betas.
    Decoded(&'a Decoder),
    /// The stimuli's own tokens in a features folder (the ceiling).
    Features(&'a Path),
}

/// A loaded captioner and what names it.
pub struct Captioner<'a> {
    /// The BLIP captioner.
    pub model: &'a BlipForConditionalGeneration,
    /// Its WordPiece tokenizer.
    pub tokenizer: &'a BlipTokenizer,
    /// The captioner as named, recorded in the captions file.
    pub name: String,
    /// A hash of its files, recorded too.
    pub fingerprint: String,
    /// Where the tokens go.
    pub device: Device,
}

/// The test images' ids (first `limit`) and their image tokens, row-major (n, N·D), with the
/// per-image shape [N, D].
fn test_tokens(
    subject: &PreparedSubject,
    source: &TokenSource,
    captioner: &Captioner,
    limit: Option<usize>,
) -> Result<(Vec<usize>, Vec<f32>, Vec<usize>)> {
    let mut ids = subject.test_stimulus_ids()?;
    ids.truncate(limit.unwrap_or(usize::MAX));
    let width = captioner.model.vision_model.config.hidden_size;
    let (shape, rows, origin) = match source {
        TokenSource::Decoded(decoder) => {
            let origin = decoder.dir.join(brainrecon_ridge::MODEL_FILE);
            if decoder.target != "blip" {
                return Err(RouteError::mismatch(
                    &origin,
                    "target",
                    "a BLIP decoder (`brainrecon fit --target blip`)",
                    &decoder.target,
                ));
            }
            let (_, mut rows) = decoder.predict_test(subject)?;
            rows.truncate(ids.len() * decoder.model.n_targets());
            (decoder.target_shape.clone(), rows, origin)
        }
        TokenSource::Features(dir) => {
            let (meta, values) = load_features(subject, dir, FeatureKind::BlipVision(None))?;
            let rows = rows_for_ids(subject, &values, meta.width(), &ids)?;
            (meta.shape, rows, dir.join("blip-vision.json"))
        }
    };
    if shape.len() != 2 || shape[1] != width {
        return Err(RouteError::mismatch(
            &origin,
            "target_shape",
            format!(
                "[tokens, {width}]: image tokens of the captioner {}",
                captioner.name
            ),
            format!("{shape:?} (fit on another model's features?)"),
        ));
    }
    Ok((ids, rows, shape))
}

/// The beams of one image's tokens [1, N, D], best first, prompt stripped.
fn caption_one(
    captioner: &Captioner,
    tokens: Tensor,
    prompt: &[u32],
    options: &CaptionOptions,
) -> Result<Vec<ScoredCaption>> {
    let mut session = captioner.model.caption_session(&tokens)?;
    let search = BeamSearchConfig {
        num_beams: options.num_beams,
        max_length: options.max_length,
        min_length: options.min_length,
        repetition_penalty: options.repetition_penalty as f32,
        length_penalty: 1.0,
        eos_token_id: captioner.tokenizer.sep_id,
        scoring: options.scoring,
    };
    let output = beam_search(&mut session, prompt, &search)?;
    output
        .hypotheses
        .into_iter()
        .map(|h| {
            let generated = &h.tokens[prompt.len().min(h.tokens.len())..];
            Ok(ScoredCaption {
                text: captioner
                    .tokenizer
                    .decode(generated, true)?
                    .trim()
                    .to_string(),
                score: h.score.map(f64::from),
            })
        })
        .collect()
}

/// The scoring by name in captions.json ([`BeamScoring::name`]).
mod scoring_name {
    use brainrecon_language::generate::BeamScoring;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(scoring: &BeamScoring, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(scoring.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BeamScoring, D::Error> {
        let name = String::deserialize(d)?;
        BeamScoring::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown beam scoring '{name}'")))
    }
}

/// Captions every test image into `out/captions.json`.
pub fn caption_test_images(
    subject: &PreparedSubject,
    source: &TokenSource,
    captioner: &Captioner,
    options: &CaptionOptions,
    out: &Path,
    show_progress: bool,
) -> Result<CaptionsFile> {
    let (ids, rows, shape) = test_tokens(subject, source, captioner, options.limit)?;
    let true_captions = subject.captions()?;
    let width: usize = shape.iter().product();
    let prompt = captioner.tokenizer.caption_prompt(&options.prompt)?;
    let progress = bar(ids.len() as u64, "captions", show_progress);
    let mut items = Vec::with_capacity(ids.len());
    for (row, &id) in ids.iter().enumerate() {
        let tokens = Tensor::from_vec(
            rows[row * width..(row + 1) * width].to_vec(),
            (1, shape[0], shape[1]),
            &captioner.device,
        )?;
        let beams = caption_one(captioner, tokens, &prompt, options)?;
        items.push(CaptionItem {
            id,
            caption: beams.first().map(|b| b.text.clone()).unwrap_or_default(),
            beams,
            true_captions: true_captions.get(&id).cloned().unwrap_or_default(),
        });
        progress.inc(1);
    }
    progress.finish_and_clear();
    let file = CaptionsFile {
        format: CAPTIONS_FORMAT.into(),
        subject: subject.meta.subject.clone(),
        subject_dir: subject.root.clone(),
        source: match source {
            TokenSource::Decoded(decoder) => decoder.dir.display().to_string(),
            TokenSource::Features(_) => "features".into(),
        },
        captioner: captioner.name.clone(),
        captioner_fingerprint: captioner.fingerprint.clone(),
        settings: serde_json::to_value(options).expect("options serialise"),
        items,
    };
    std::fs::create_dir_all(out).map_err(|e| brainrecon_core::DataError::io(out, e))?;
    file.save(out)?;
    Ok(file)
}

/// `brainrecon caption` as the command line asks for it.
#[derive(Debug, Clone)]
pub struct CaptionRequest {
    /// The prepared subject.
    pub subject: std::path::PathBuf,
    /// The folder with the blip/ decoder (`--source decoded`).
    pub decoders: Option<std::path::PathBuf>,
    /// `decoded` or `features`.
    pub source: String,
    /// The features folder of `--source features` (default: SUBJECT/features).
    pub features: Option<std::path::PathBuf>,
    /// The captioner (a folder, cached id or shapes-blip).
    pub blip: String,
    /// The output folder (captions.json).
    pub out: std::path::PathBuf,
    /// The search; `scoring` is set from `beam_scoring`.
    pub options: CaptionOptions,
    /// published, transformers4 or transformers5.
    pub beam_scoring: String,
    /// Where the models run.
    pub device: brainrecon_core::Device,
    /// Draw a progress bar.
    pub progress: bool,
}

/// `published`, `transformers4` or `transformers5`: how finished beams are scored.
pub fn beam_scoring(name: &str) -> Result<BeamScoring> {
    BeamScoring::parse(name).ok_or_else(|| {
        RouteError::Usage(format!(
            "--beam-scoring: expected published, transformers4 or transformers5, found '{name}'"
        ))
    })
}

/// Checks `request`, loads the decoder and captioner, and captions the test images.
pub fn caption_request(request: &CaptionRequest) -> Result<CaptionsFile> {
    let r = request;
    let o = &r.options;
    let scoring = beam_scoring(&r.beam_scoring)?;
    if o.num_beams == 0 || o.max_length <= o.min_length.max(1) {
        return Err(RouteError::Usage(format!(
            "--beams must be ≥ 1 and --max-length ({}) greater than --min-length ({})",
            o.max_length, o.min_length
        )));
    }
    let options = CaptionOptions {
        scoring,
        ..o.clone()
    };
    let subject = PreparedSubject::open(&r.subject)?;
    let device = crate::decode::options::open_device(r.device)?;
    let decoder = match (r.source.as_str(), &r.decoders) {
        ("decoded", Some(dir)) => Some(Decoder::load(&dir.join("blip"))?),
        ("decoded", None) => {
            return Err(RouteError::Usage(
                "--source decoded needs --decoders DIR".into(),
            ))
        }
        ("features", _) => None,
        (other, _) => {
            return Err(RouteError::Usage(format!(
                "--source: expected decoded or features, found '{other}'"
            )))
        }
    };
    let features = r
        .features
        .clone()
        .unwrap_or_else(|| crate::decode::decoders::default_features_dir(&subject));
    let source = match &decoder {
        Some(decoder) => TokenSource::Decoded(decoder),
        None => TokenSource::Features(&features),
    };
    let loaded = super::load_captioner(&r.blip, &device)?;
    let captioner = Captioner {
        model: &loaded.model,
        tokenizer: &loaded.tokenizer,
        name: r.blip.clone(),
        fingerprint: loaded.fingerprint.clone(),
        device: device.clone(),
    };
    caption_test_images(&subject, &source, &captioner, &options, &r.out, r.progress)
}

impl CaptionsFile {
    /// What the command prints of captions written to `out`: the first ten beside what was
    /// seen, their scores against the seen images' captions, and where they are.
    pub fn text(&self, out: &Path) -> String {
        use std::fmt::Write;
        let mut text = String::new();
        for item in self.items.iter().take(10) {
            let truth = item.true_captions.first().map(String::as_str).unwrap_or("");
            let _ = writeln!(text, "{:>6}  {}   (seen: {truth})", item.id, item.caption);
        }
        let path = out.join(super::CAPTIONS_FILE);
        if let Ok(s) = super::scores::score_captions(self, &path, None) {
            let _ = writeln!(
                text,
                "against the seen images' captions: BLEU-1 {:.1}, BLEU-4 {:.1}, ROUGE-L {:.1}, CIDEr {:.1} \
                 (eval adds METEOR and CLIP-S)",
                s.bleu_1, s.bleu_4, s.rouge_l, s.cider
            );
        }
        let _ = writeln!(text, "{} captions → {}", self.items.len(), path.display());
        text
    }
}
