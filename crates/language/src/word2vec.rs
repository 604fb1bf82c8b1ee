//! Word2Vec (skip-gram with negative sampling, Mikolov et al. 2013), the baseline language
//! model of Nakagi et al.: annotations become the mean of their words' vectors.
//!
//! Training follows the reference `word2vec.c` (and gensim, which reimplements it): vocabulary
//! of words seen at least `min_count` times, frequent words subsampled, a window shrunk at
//! random per centre word, negatives drawn from the unigram distribution raised to 0.75, the
//! learning rate decayed linearly to 1e-4 of its start. It runs on one thread so that a seed
//! gives the same vectors everywhere.
//!
//! Vectors are read and written in the word2vec formats (`KeyedVectors.save_word2vec_format`):
//! text (`<count> <dim>` then `word v1 … vd` per line) or binary (the same header, then
//! `word ` and `dim` little-endian f32 per word).

use brainrecon_nn::{ModelError, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Training settings, named as gensim's `Word2Vec` arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Word2VecConfig {
    /// `vector_size`.
    pub dim: usize,
    pub window: usize,
    /// `negative`: noise words per (centre, context) pair.
    pub negative: usize,
    pub min_count: usize,
    pub epochs: usize,
    /// `alpha`: the starting learning rate.
    pub alpha: f32,
    /// `sample`: threshold of frequent-word subsampling (0 = off).
    pub sample: f64,
    pub seed: u64,
}

impl Default for Word2VecConfig {
    /// gensim's defaults with skip-gram (`sg=1`).
    fn default() -> Self {
        Word2VecConfig {
            dim: 100,
            window: 5,
            negative: 5,
            min_count: 5,
            epochs: 5,
            alpha: 0.025,
            sample: 1e-3,
            seed: 1,
        }
    }
}

/// Word vectors: `vectors` is [words, dim] row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Word2Vec {
    pub words: Vec<String>,
    pub dim: usize,
    pub vectors: Vec<f32>,
    index: HashMap<String, usize>,
}

impl Word2Vec {
    /// Vectors [words.len(), dim]. Panics when the sizes disagree (a programming error).
    pub fn new(words: Vec<String>, dim: usize, vectors: Vec<f32>) -> Self {
        assert_eq!(
            vectors.len(),
            words.len() * dim,
            "vectors must be [words, dim]"
        );
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i))
            .collect();
        Word2Vec {
            words,
            dim,
            vectors,
            index,
        }
    }

    /// The vector of `word`, if it is in the vocabulary.
    pub fn vector(&self, word: &str) -> Option<&[f32]> {
        let i = *self.index.get(word)?;
        Some(&self.vectors[i * self.dim..(i + 1) * self.dim])
    }

    /// Mean of the vectors of `text`'s words ([`words_of`]) that are in the vocabulary; zeros
    /// when none is (an empty annotation: silence carries no words). Returns the vector and
    /// how many words were out of the vocabulary.
    pub fn mean_vector(&self, text: &str) -> (Vec<f32>, usize) {
        let mut sum = vec![0.0f32; self.dim];
        let (mut found, mut missing) = (0usize, 0usize);
        for word in words_of(text) {
            match self.vector(&word) {
                Some(v) => {
                    sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
                    found += 1;
                }
                None => missing += 1,
            }
        }
        if found > 0 {
            sum.iter_mut().for_each(|s| *s /= found as f32);
        }
        (sum, missing)
    }

    /// Cosine similarity of two vocabulary words.
    pub fn similarity(&self, a: &str, b: &str) -> Option<f32> {
        let (a, b) = (self.vector(a)?, self.vector(b)?);
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        Some(dot / (norm(a) * norm(b)).max(f32::MIN_POSITIVE))
    }

    /// Writes the word2vec binary (`binary`) or text format, atomically.
    pub fn save(&self, path: &Path, binary: bool) -> Result<()> {
        let mut bytes = format!("{} {}\n", self.words.len(), self.dim).into_bytes();
        for (word, v) in self.words.iter().zip(self.vectors.chunks(self.dim)) {
            bytes.extend_from_slice(word.as_bytes());
            if binary {
                bytes.push(b' ');
                v.iter()
                    .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
            } else {
                v.iter()
                    .for_each(|x| bytes.extend_from_slice(format!(" {x}").as_bytes()));
            }
            bytes.push(b'\n');
        }
        let tmp = path.with_extension("partial");
        let io = |source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::write(&tmp, &bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    /// Reads either word2vec format (binary when the bytes after the header are not text).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses the bytes of a word2vec file; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        parse_word2vec(bytes).map_err(|message| ModelError::Config {
            path: path.to_path_buf(),
            what: "word2vec file (`<count> <dim>` header, then one word and its vector each)"
                .into(),
            message,
        })
    }
}

/// Lower-case words of `text`: runs of letters, digits and apostrophes. Japanese, written
/// without spaces, is first split into words by [`crate::japanese::segment`].
pub fn words_of(text: &str) -> Vec<String> {
    let split = |t: &str| -> Vec<String> {
        t.split(|c: char| !(c.is_alphanumeric() || c == '\''))
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    if crate::japanese::has_japanese(text) {
        crate::japanese::segment(text)
            .iter()
            .flat_map(|token| split(token))
            .collect()
    } else {
        split(text)
    }
}

fn parse_word2vec(bytes: &[u8]) -> std::result::Result<Word2Vec, String> {
    let header_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no header line")?;
    let header = std::str::from_utf8(&bytes[..header_end]).map_err(|_| "header is not text")?;
    let numbers: Vec<usize> = header
        .split_whitespace()
        .map(|t| {
            t.parse()
                .map_err(|_| format!("header {header:?}: not two counts"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let [count, dim] = numbers[..] else {
        return Err(format!("header {header:?}: expected `<count> <dim>`"));
    };
    if dim == 0 {
        return Err("dimension 0".into());
    }
    let body = &bytes[header_end + 1..];
    check_counts(count, dim, body.len())?;
    let text_body = std::str::from_utf8(body).ok().filter(|t| {
        t.lines()
            .next()
            .is_some_and(|l| l.split_whitespace().count() == dim + 1)
    });
    let (words, vectors) = match text_body {
        Some(text) => parse_text_rows(text, count, dim)?,
        None => parse_binary_rows(body, count, dim)?,
    };
    Ok(Word2Vec::new(words, dim, vectors))
}

/// Refuses a header whose `count × dim` the file cannot hold, before anything is allocated
/// by it: a binary row takes at least `4·dim + 1` bytes, a text row at least `2·dim + 1`
/// (a word and `dim` numbers, each after a separator), so either way
/// `count · (2·dim + 1)` ≤ the body's length.
fn check_counts(count: usize, dim: usize, body: usize) -> std::result::Result<(), String> {
    let least = dim
        .checked_mul(2)
        .and_then(|d| d.checked_add(1))
        .and_then(|row| row.checked_mul(count));
    match least {
        Some(least) if least <= body => Ok(()),
        _ => Err(format!(
            "header says {count} words of {dim} values: at least {} bytes, but the file holds {body} after the header",
            least.map_or("more than 2^64".to_string(), |n| n.to_string())
        )),
    }
}

fn parse_text_rows(
    text: &str,
    count: usize,
    dim: usize,
) -> std::result::Result<(Vec<String>, Vec<f32>), String> {
    let mut words = Vec::with_capacity(count);
    let mut vectors = Vec::with_capacity(count * dim);
    for (line_no, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let mut fields = line.split_whitespace();
        let word = fields.next().unwrap_or_default();
        let values: Vec<f32> = fields
            .map(|f| f.parse::<f32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| format!("line {}: a value is not a number", line_no + 2))?;
        if values.len() != dim || values.iter().any(|v| !v.is_finite()) {
            return Err(format!(
                "line {}: expected {dim} finite values after the word",
                line_no + 2
            ));
        }
        words.push(word.to_string());
        vectors.extend(values);
    }
    if words.len() != count {
        return Err(format!("header says {count} words, found {}", words.len()));
    }
    Ok((words, vectors))
}

fn parse_binary_rows(
    body: &[u8],
    count: usize,
    dim: usize,
) -> std::result::Result<(Vec<String>, Vec<f32>), String> {
    let mut words = Vec::with_capacity(count);
    let mut vectors = Vec::with_capacity(count * dim);
    let mut at = 0;
    for k in 0..count {
        while body.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
            at += 1;
        }
        let end = body[at..]
            .iter()
            .position(|&b| b == b' ')
            .map(|p| at + p)
            .ok_or(format!("word {k}: truncated file"))?;
        let word =
            std::str::from_utf8(&body[at..end]).map_err(|_| format!("word {k}: not UTF-8"))?;
        let raw = body
            .get(end + 1..end + 1 + 4 * dim)
            .ok_or(format!("word {k} ({word}): truncated vector"))?;
        words.push(word.to_string());
        vectors.extend(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        at = end + 1 + 4 * dim;
    }
    if vectors.iter().any(|v| !v.is_finite()) {
        return Err("a vector value is not finite".into());
    }
    Ok((words, vectors))
}

/// The vocabulary: words seen at least `min_count` times, most frequent first (ties by
/// spelling, so the order does not depend on hashing), with their counts.
fn build_vocabulary(sentences: &[Vec<String>], min_count: usize) -> (Vec<String>, Vec<u64>) {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for word in sentences.iter().flatten() {
        *counts.entry(word.as_str()).or_default() += 1;
    }
    let mut kept: Vec<(&str, u64)> = counts
        .into_iter()
        .filter(|&(_, c)| c as usize >= min_count.max(1))
        .collect();
    kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    kept.into_iter().map(|(w, c)| (w.to_string(), c)).unzip()
}

/// word2vec.c's probability of keeping each occurrence of a word of count `count`.
fn keep_probability(count: u64, total: u64, sample: f64) -> f64 {
    if sample <= 0.0 {
        return 1.0;
    }
    let threshold = sample * total as f64;
    ((count as f64 / threshold).sqrt() + 1.0) * threshold / count as f64
}

/// Cumulative unigram^0.75 distribution (negatives are drawn by bisection).
fn noise_cumulative(counts: &[u64]) -> Vec<f64> {
    let mut total = 0.0;
    counts
        .iter()
        .map(|&c| {
            total += (c as f64).powf(0.75);
            total
        })
        .collect()
}

/// Trains skip-gram vectors on `sentences` (already split into words).
pub fn train_word2vec(sentences: &[Vec<String>], config: &Word2VecConfig) -> Result<Word2Vec> {
    let (words, counts) = build_vocabulary(sentences, config.min_count);
    if words.is_empty() || config.dim == 0 || config.epochs == 0 {
        return Err(ModelError::Invalid(format!(
            "word2vec: nothing to train ({} words of count ≥ {}, dim {}, epochs {})",
            words.len(),
            config.min_count,
            config.dim,
            config.epochs
        )));
    }
    let index: HashMap<&str, usize> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i))
        .collect();
    let total: u64 = counts.iter().sum();
    let keep: Vec<f64> = counts
        .iter()
        .map(|&c| keep_probability(c, total, config.sample))
        .collect();
    let noise = noise_cumulative(&counts);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let d = config.dim;
    let mut input: Vec<f32> = (0..words.len() * d)
        .map(|_| (rng.gen::<f32>() - 0.5) / d as f32)
        .collect();
    let mut output = vec![0.0f32; words.len() * d];
    let planned = (total as f64 * config.epochs as f64).max(1.0);
    let mut seen = 0u64;
    for _ in 0..config.epochs {
        for sentence in sentences {
            let ids: Vec<usize> = sentence
                .iter()
                .filter_map(|w| index.get(w.as_str()).copied())
                .collect();
            seen += ids.len() as u64;
            let kept: Vec<usize> = ids
                .into_iter()
                .filter(|&i| rng.gen::<f64>() < keep[i])
                .collect();
            let alpha =
                (config.alpha * (1.0 - seen as f64 / planned) as f32).max(config.alpha * 1e-4);
            let mut pairs = SkipGramStep {
                input: &mut input,
                output: &mut output,
                dim: d,
                alpha,
            };
            for (pos, &centre) in kept.iter().enumerate() {
                let reach = config.window - rng.gen_range(0..config.window.max(1));
                let lo = pos.saturating_sub(reach);
                let hi = (pos + reach).min(kept.len() - 1);
                for (ctx_pos, &context) in kept.iter().enumerate().take(hi + 1).skip(lo) {
                    if ctx_pos != pos {
                        let negatives: Vec<usize> = (0..config.negative)
                            .map(|_| draw_noise(&noise, &mut rng))
                            .collect();
                        pairs.train_pair(context, centre, &negatives);
                    }
                }
            }
        }
    }
    Ok(Word2Vec::new(words, d, input))
}

fn draw_noise(cumulative: &[f64], rng: &mut ChaCha8Rng) -> usize {
    let target = rng.gen::<f64>() * cumulative[cumulative.len() - 1];
    cumulative
        .partition_point(|&c| c <= target)
        .min(cumulative.len() - 1)
}

/// One SGD update of skip-gram with negative sampling.
struct SkipGramStep<'a> {
    input: &'a mut [f32],
    output: &'a mut [f32],
    dim: usize,
    alpha: f32,
}

impl SkipGramStep<'_> {
    /// Word `word`'s input vector learns to predict `target` (label 1) against `negatives`
    /// (label 0); as word2vec.c, a negative equal to the target is skipped.
    fn train_pair(&mut self, word: usize, target: usize, negatives: &[usize]) {
        let d = self.dim;
        let mut gradient = vec![0.0f32; d];
        let w = word * d;
        let samples = std::iter::once((target, 1.0f32)).chain(
            negatives
                .iter()
                .filter(|&&n| n != target)
                .map(|&n| (n, 0.0)),
        );
        for (other, label) in samples {
            let o = other * d;
            let (input, output) = (&self.input[w..w + d], &mut self.output[o..o + d]);
            let dot: f32 = input.iter().zip(output.iter()).map(|(a, b)| a * b).sum();
            let g = (label - sigmoid(dot)) * self.alpha;
            for ((grad, out), inp) in gradient.iter_mut().zip(output.iter_mut()).zip(input) {
                *grad += g * *out;
                *out += g * inp;
            }
        }
        for (v, grad) in self.input[w..w + d].iter_mut().zip(&gradient) {
            *v += grad;
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x.clamp(-30.0, 30.0)).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sentences from two topics whose words never meet.
    fn two_topics(n: usize, seed: u64) -> Vec<Vec<String>> {
        let topics = [
            ["cat", "dog", "horse", "cow", "sheep"],
            ["car", "bus", "train", "plane", "boat"],
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let topic = &topics[i % 2];
                (0..6)
                    .map(|_| topic[rng.gen_range(0..5)].to_string())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_header_count_the_file_cannot_hold_is_refused_before_allocating() {
        let path = Path::new("vectors.bin");
        for header in [
            "4611686018427387904 4\n",
            "1000000000 1000000000\n",
            "3 2\n",
        ] {
            let mut bytes = header.as_bytes().to_vec();
            bytes.extend_from_slice(b"cat ");
            bytes.extend_from_slice(&[0; 8]);
            let err = Word2Vec::from_bytes(&bytes, path).unwrap_err().to_string();
            assert!(
                err.contains("vectors.bin") && err.contains("the file holds"),
                "{err}"
            );
        }
        let mut good = b"1 2\ncat ".to_vec();
        good.extend_from_slice(&[0; 8]);
        assert!(Word2Vec::from_bytes(&good, path).is_ok());
    }

    #[test]
    fn words_of_one_topic_end_up_closer() {
        let config = Word2VecConfig {
            dim: 16,
            min_count: 1,
            epochs: 5,
            sample: 0.0,
            ..Default::default()
        };
        let model = train_word2vec(&two_topics(400, 3), &config).unwrap();
        let within = model.similarity("cat", "dog").unwrap();
        let across = model.similarity("cat", "bus").unwrap();
        assert!(within > across + 0.3, "within {within}, across {across}");
        let again = train_word2vec(&two_topics(400, 3), &config).unwrap();
        assert_eq!(model, again, "the seed fixes the vectors");
    }

    #[test]
    fn both_formats_round_trip() {
        let model = Word2Vec::new(
            vec!["a".into(), "b".into()],
            3,
            vec![0.5, -1.25, 3.0, 1e-3, 0.0, -7.5],
        );
        let dir = tempfile::tempdir().unwrap();
        for binary in [true, false] {
            let path = dir.path().join(format!("v{binary}.txt"));
            model.save(&path, binary).unwrap();
            assert_eq!(Word2Vec::load(&path).unwrap(), model);
        }
        let (mean, missing) = model.mean_vector("A, b and c");
        assert_eq!(missing, 2);
        assert_eq!(mean, vec![0.2505, -0.625, -2.25]);
        assert_eq!(model.mean_vector("").0, vec![0.0; 3]);
    }

    #[test]
    fn keep_probability_is_word2vec_c() {
        // word2vec.c: (sqrt(cn / (sample * train_words)) + 1) * (sample * train_words) / cn
        let p = keep_probability(1000, 100_000, 1e-3);
        assert!((p - ((10f64).sqrt() + 1.0) * 100.0 / 1000.0).abs() < 1e-12);
    }
}
