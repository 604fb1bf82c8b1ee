//! Word2Vec (skip-gram with negative sampling, Mikolov et al. 2013), the baseline language
//! model of Nakagi et al.: annotations become the mean of their words' vectors.
//!
//! The skip-gram trainer (as `word2vec.c`) lives with the project's own vectors in the model
//! zoo (`brainrecon_zoo::word2vec_movie::train`).
//!
//! Vectors are read and written in the word2vec formats (`KeyedVectors.save_word2vec_format`):
//! text (`<count> <dim>` then `word v1 … vd` per line) or binary (the same header, then
//! `word ` and `dim` little-endian f32 per word).

use brainrecon_nn::{ModelError, Result};
use std::collections::HashMap;
use std::path::Path;

/// Word vectors: `vectors` is [words, dim] row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Word2Vec {
    /// The vocabulary, in row order.
    pub words: Vec<String>,
    /// Width of a vector.
    pub dim: usize,
    /// [words, dim], row-major.
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
        Ok(brainrecon_core::fs::write_bytes_atomic(path, &bytes)?)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
