//! Skip-gram with negative sampling (Mikolov et al. 2013) as the reference `word2vec.c` (and
//! gensim, which reimplements it) trains it: vocabulary of words seen at least `min_count`
//! times, frequent words subsampled, a window shrunk at random per centre word, negatives drawn
//! from the unigram distribution raised to 0.75, the learning rate decayed linearly to 1e-4 of
//! its start. It runs on one thread so that a seed gives the same vectors everywhere.
//!
//! The sentences come through [`Sentences`], read once for the vocabulary and once per epoch,
//! so a corpus on disk (`brainrecon train-word2vec --corpus`) is streamed, never held whole.

use brainrecon_language::word2vec::Word2Vec;
use brainrecon_nn::{ModelError, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

use super::config::Word2VecConfig;
use super::data::{corpus_lines, sentences, CORPUS_RUNS, CORPUS_SECONDS};
use brainrecon_core::fs::write_json_atomic;
use std::path::{Path, PathBuf};

/// Training sentences (each already split into words) that can be read more than once.
pub trait Sentences {
    /// Calls `each` on every sentence, in the same order every time.
    fn visit(&self, each: &mut dyn FnMut(&[String])) -> Result<()>;
}

impl Sentences for [Vec<String>] {
    fn visit(&self, each: &mut dyn FnMut(&[String])) -> Result<()> {
        self.iter().for_each(|s| each(s));
        Ok(())
    }
}

/// The vocabulary: words seen at least `min_count` times, most frequent first (ties by
/// spelling, so the order does not depend on hashing), with their counts.
fn build_vocabulary(
    sentences: &(impl Sentences + ?Sized),
    min_count: usize,
) -> Result<(Vec<String>, Vec<u64>)> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    sentences.visit(&mut |sentence| {
        for word in sentence {
            match counts.get_mut(word.as_str()) {
                Some(count) => *count += 1,
                None => {
                    counts.insert(word.clone(), 1);
                }
            }
        }
    })?;
    let mut kept: Vec<(String, u64)> = counts
        .into_iter()
        .filter(|&(_, c)| c as usize >= min_count.max(1))
        .collect();
    kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(kept.into_iter().unzip())
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
    train_word2vec_from(sentences, config, false).map(|(vectors, _)| vectors)
}

/// [`train_word2vec`] on any [`Sentences`], with a progress bar over the words of all epochs
/// when `show_progress`. Also returns how many of the sentences' words the vocabulary holds
/// (occurrences, counted in the vocabulary pass).
pub fn train_word2vec_from(
    sentences: &(impl Sentences + ?Sized),
    config: &Word2VecConfig,
    show_progress: bool,
) -> Result<(Word2Vec, u64)> {
    let (words, counts) = build_vocabulary(sentences, config.min_count)?;
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
    let progress = brainrecon_core::progress::bar(planned as u64, "word2vec", show_progress);
    let mut seen = 0u64;
    for _ in 0..config.epochs {
        sentences.visit(&mut |sentence| {
            let ids: Vec<usize> = sentence
                .iter()
                .filter_map(|w| index.get(w.as_str()).copied())
                .collect();
            seen += ids.len() as u64;
            progress.inc(ids.len() as u64);
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
        })?;
    }
    progress.finish_and_clear();
    Ok((Word2Vec::new(words, d, input), total))
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

/// What `train-word2vec` reports of a [`train_word2vec_movie`] run (fields in the order JSON
/// objects list their keys, sorted).
#[derive(Clone, Debug, serde::Serialize)]
pub struct MovieTraining {
    /// Runs of annotations in the corpus, and seconds per run.
    pub corpus_runs: usize,
    /// Seconds of annotations per run.
    pub corpus_seconds: usize,
    /// Width of a vector.
    pub dim: usize,
    /// The model folder written.
    pub out: PathBuf,
    /// Wall-clock time of the run.
    pub seconds: f64,
    /// Words in the vocabulary.
    pub words: usize,
}

impl MovieTraining {
    /// The report of `vectors`, written to `out` in `seconds`.
    pub fn new(out: &Path, vectors: &Word2Vec, seconds: f64) -> Self {
        MovieTraining {
            corpus_runs: CORPUS_RUNS,
            corpus_seconds: CORPUS_SECONDS,
            dim: vectors.dim,
            out: out.to_path_buf(),
            seconds,
            words: vectors.words.len(),
        }
    }

    /// The run in one line for people.
    pub fn text(&self) -> String {
        format!(
            "trained word2vec-movie in {:.1} s: {} words × {} → {}",
            self.seconds,
            self.words,
            self.dim,
            self.out.join("vectors.bin").display()
        )
    }
}

/// Trains the vectors on the grammar's annotations and writes `out/vectors.bin` and
/// `out/training.json`. Returns the vectors.
pub fn train_word2vec_movie(out: &Path, seed: u64) -> Result<Word2Vec> {
    let corpus = corpus_lines(seed);
    let config = Word2VecConfig::word2vec_movie(seed);
    let vectors = train_word2vec(&sentences(&corpus), &config)?;
    write_word2vec(
        out,
        &vectors,
        &serde_json::json!({
            "command": format!("brainrecon train-word2vec --out {} --seed {seed}", out.display()),
            "corpus": {"runs": CORPUS_RUNS, "seconds": CORPUS_SECONDS, "lines": corpus.len()},
            "config": config,
            "words": vectors.words.len(),
        }),
    )?;
    Ok(vectors)
}

/// Writes a model folder: `out/vectors.bin` (word2vec's binary format) and `out/training.json`
/// (`training`), replacing `out` whole only once both are written.
pub fn write_word2vec(out: &Path, vectors: &Word2Vec, training: &serde_json::Value) -> Result<()> {
    brainrecon_core::fs::write_folder_atomic(out, |dir| -> Result<()> {
        vectors.save(&dir.join("vectors.bin"), true)?;
        write_json_atomic(&dir.join("training.json"), training)?;
        Ok(())
    })
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
    fn keep_probability_is_word2vec_c() {
        // word2vec.c: (sqrt(cn / (sample * train_words)) + 1) * (sample * train_words) / cn
        let p = keep_probability(1000, 100_000, 1e-3);
        assert!((p - ((10f64).sqrt() + 1.0) * 100.0 / 1000.0).abs() < 1e-12);
    }
}
