//! Text features of per-second annotations: Word2Vec (the embedded `word2vec-movie`, or a
//! word2vec file) or a transformers language model's hidden states, mean-pooled per line.

use super::embedded::{word2vec_movie, WORD2VEC_MOVIE};
use crate::error::{Result, RouteError};
use brainrecon_language::text_model::{
    all_layers, annotation_features, load_text_model, TextModel,
};
use brainrecon_language::text_tokenizer::TextTokenizer;
use brainrecon_language::word2vec::{words_of, Word2Vec};
use candle_core::Device;
use std::path::Path;

/// Which hidden states of a language model (ignored by Word2Vec).
#[derive(Clone, Debug, PartialEq)]
pub enum LayerChoice {
    /// The last hidden state.
    Last,
    /// Hidden state L (0 = the embeddings, L = after block L).
    One(usize),
    /// Every hidden state, each written as its own file.
    All,
}

impl LayerChoice {
    /// `last`, `all` or a hidden-state index (0 = the embeddings).
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "last" => Ok(LayerChoice::Last),
            "all" => Ok(LayerChoice::All),
            n => n.parse().map(LayerChoice::One).map_err(|_| {
                RouteError::Usage(format!(
                    "--layer {n:?}: expected a hidden-state index (0 = embeddings), last or all"
                ))
            }),
        }
    }
}

/// A model that turns lines of text into vectors.
pub enum TextFeaturizer {
    /// Word vectors: a line's row is the mean of its in-vocabulary words' vectors.
    Word2Vec {
        /// `word2vec-movie` or the vectors' file, as named.
        name: String,
        /// The word vectors and their vocabulary.
        vectors: Word2Vec,
    },
    /// A transformers language model: a line's row is its tokens' mean hidden state.
    Language {
        /// The model folder or id, as named.
        name: String,
        /// The loaded model.
        model: Box<TextModel>,
        /// Its tokenizer.
        tokenizer: Box<TextTokenizer>,
        /// The hidden-state indices read (0 = the embeddings).
        layers: Vec<usize>,
    },
}

/// Features of some lines: per layer a name and a row-major [lines, dim] matrix.
pub struct LineFeatures {
    /// Per layer, its name (`word2vec`, `layer-12`) and the rows, row-major `[lines, dim]`.
    pub layers: Vec<(String, Vec<f32>)>,
    /// Values per row.
    pub dim: usize,
    /// Words (Word2Vec) or lines (truncated, language models) the model could not use fully.
    pub skipped: usize,
    /// Words seen (Word2Vec; 0 for language models): `skipped / words` is the share out of
    /// the vocabulary.
    pub words: usize,
}

impl LineFeatures {
    /// True when every value is zero (no line had a usable word).
    pub fn all_zero(&self) -> bool {
        self.layers.iter().all(|(_, v)| v.iter().all(|&x| x == 0.0))
    }

    /// Share of the words out of the vocabulary (Word2Vec), if any words were seen.
    pub fn out_of_vocabulary(&self) -> Option<f64> {
        (self.words > 0).then(|| self.skipped as f64 / self.words as f64)
    }
}

/// `word2vec-movie`, a word2vec file (`.bin`, `.txt`, `.vec`), or a language model folder or
/// Hugging Face model id.
pub fn load_featurizer(spec: &str, layer: &LayerChoice, device: &Device) -> Result<TextFeaturizer> {
    if spec == WORD2VEC_MOVIE {
        return Ok(TextFeaturizer::Word2Vec {
            name: spec.into(),
            vectors: word2vec_movie()?,
        });
    }
    let path = Path::new(spec);
    let is_vectors = path.is_file()
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("bin" | "txt" | "vec")
        );
    if is_vectors {
        return Ok(TextFeaturizer::Word2Vec {
            name: spec.into(),
            vectors: Word2Vec::load(path)?,
        });
    }
    let (model, tokenizer) = load_text_model(spec, device)?;
    let last = model.num_hidden_states() - 1;
    let layers = match layer {
        LayerChoice::Last => vec![last],
        LayerChoice::All => all_layers(&model),
        LayerChoice::One(l) if *l <= last => vec![*l],
        LayerChoice::One(l) => {
            return Err(RouteError::Usage(format!(
                "--layer {l}: {spec} has hidden states 0..={last} (0 = embeddings)"
            )))
        }
    };
    Ok(TextFeaturizer::Language {
        name: spec.into(),
        model: Box::new(model),
        tokenizer: Box::new(tokenizer),
        layers,
    })
}

impl TextFeaturizer {
    /// The model as named (recorded in `features.json`).
    pub fn name(&self) -> &str {
        match self {
            TextFeaturizer::Word2Vec { name, .. } | TextFeaturizer::Language { name, .. } => name,
        }
    }

    /// Mean-pooled features of `lines` (an empty line gives zeros).
    pub fn features(&self, lines: &[String]) -> Result<LineFeatures> {
        match self {
            TextFeaturizer::Word2Vec { vectors, .. } => {
                let mut values = Vec::with_capacity(lines.len() * vectors.dim);
                let (mut skipped, mut words) = (0, 0);
                for line in lines {
                    let (v, missing) = vectors.mean_vector(line);
                    values.extend(v);
                    skipped += missing;
                    words += words_of(line).len();
                }
                Ok(LineFeatures {
                    layers: vec![("word2vec".into(), values)],
                    dim: vectors.dim,
                    skipped,
                    words,
                })
            }
            TextFeaturizer::Language {
                model,
                tokenizer,
                layers,
                ..
            } => {
                let pooled = annotation_features(model, tokenizer, lines, layers)?;
                let mut out = Vec::with_capacity(layers.len());
                for (layer, tensor) in pooled.layers.iter().zip(&pooled.features) {
                    let values = tensor.flatten_all()?.to_vec1::<f32>()?;
                    out.push((format!("layer-{layer:02}"), values));
                }
                Ok(LineFeatures {
                    layers: out,
                    dim: model.hidden_size(),
                    skipped: pooled.truncated.len(),
                    words: 0,
                })
            }
        }
    }

    /// Features of lines given as text segments (one per annotator or utterance, see
    /// `ds005531::annotation_segments`): each line's row is the mean of its segments' rows, as
    /// Nakagi et al. average over annotators; a line without segments gives zeros.
    pub fn segment_features(&self, lines: &[Vec<String>]) -> Result<LineFeatures> {
        let mut flat: Vec<String> = lines.iter().flatten().cloned().collect();
        if flat.is_empty() {
            // No text at all: one empty line gives the width (and the rows stay zeros).
            flat.push(String::new());
        }
        let per_segment = self.features(&flat)?;
        let dim = per_segment.dim;
        let layers = per_segment
            .layers
            .into_iter()
            .map(|(name, values)| (name, mean_per_line(&values, lines, dim)))
            .collect();
        Ok(LineFeatures {
            layers,
            dim,
            skipped: per_segment.skipped,
            words: per_segment.words,
        })
    }
}

/// Row-major (lines, dim): the mean of each line's segment rows of `values` (segments, dim).
fn mean_per_line(values: &[f32], lines: &[Vec<String>], dim: usize) -> Vec<f32> {
    let mut out = vec![0f32; lines.len() * dim];
    let mut at = 0;
    for (row, segments) in out.chunks_exact_mut(dim.max(1)).zip(lines) {
        for k in 0..segments.len() {
            let seg = &values[(at + k) * dim..(at + k + 1) * dim];
            row.iter_mut().zip(seg).for_each(|(o, v)| *o += v);
        }
        if !segments.is_empty() {
            row.iter_mut().for_each(|o| *o /= segments.len() as f32);
        }
        at += segments.len();
    }
    out
}
