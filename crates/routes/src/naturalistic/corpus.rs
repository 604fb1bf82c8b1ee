//! A text corpus for word2vec (`brainrecon train-word2vec --corpus`): annotation files, or any
//! UTF-8 text with one sentence or annotation a line (a Wikipedia dump as WikiExtractor writes
//! it included: its `<doc …>` and `</doc>` lines are skipped). Lines are split into words as
//! the encoding route splits them (ds005531's markup where a file carries its `[HH:MM:SS]`
//! stamps, then `word2vec::words_of`, with TinySegmenter for Japanese), so the vectors'
//! vocabulary is the one `features text` and `encode-runs` look words up in. Files are
//! streamed, once for the vocabulary and once per epoch, never held whole.

use super::annotations::{has_stamp, kind_of, markup_name};
use crate::error::{Result, RouteError};
use brainrecon_core::text::for_each_line;
use brainrecon_core::DataError;
use brainrecon_datasets::ds005531::{annotation_segments, Markup};
use brainrecon_language::word2vec::words_of;
use brainrecon_zoo::word2vec_movie::train::{train_word2vec_from, write_word2vec, Sentences};
pub use brainrecon_zoo::word2vec_movie::Word2VecConfig;
use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// One corpus file and how its lines are read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CorpusFile {
    /// The file.
    pub path: PathBuf,
    /// How its lines are read, recorded as `ds005531` or `plain`.
    #[serde(serialize_with = "serialize_markup")]
    pub markup: Markup,
    /// Lines, and words after splitting (filled by the first pass).
    pub lines: usize,
    /// Words after splitting.
    pub words: usize,
    #[serde(skip)]
    kind: String,
}

fn serialize_markup<S: serde::Serializer>(
    markup: &Markup,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(markup_name(*markup))
}

/// The files of a corpus, in a fixed order.
#[derive(Debug)]
pub struct Corpus {
    files: RefCell<Vec<CorpusFile>>,
}

impl Corpus {
    /// `paths`: text files, or folders searched (recursively, in name order) for `*.txt` files
    /// and files without an extension (WikiExtractor's `wiki_00`); hidden entries are skipped.
    /// `markup` None decides per file: ds005531's when any of its lines carries the stamp.
    pub fn open(paths: &[PathBuf], markup: Option<Markup>) -> Result<Corpus> {
        let mut found = Vec::new();
        for path in paths {
            if path.is_dir() {
                let before = found.len();
                collect_text_files(path, &mut found)?;
                if found.len() == before {
                    return Err(RouteError::Usage(format!(
                        "--corpus {}: no text files (*.txt, or files without an extension) in the folder",
                        path.display()
                    )));
                }
            } else if path.is_file() {
                found.push(path.clone());
            } else {
                return Err(DataError::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
                )
                .into());
            }
        }
        let files = found
            .into_iter()
            .map(|path| {
                let markup = match markup {
                    Some(m) => m,
                    None => detect_markup(&path)?,
                };
                let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                Ok(CorpusFile {
                    kind: kind_of(&stem).to_string(),
                    markup,
                    path,
                    lines: 0,
                    words: 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Corpus {
            files: RefCell::new(files),
        })
    }

    /// The files with their counts (complete after the vocabulary pass).
    pub fn files(&self) -> Vec<CorpusFile> {
        self.files.borrow().clone()
    }
}

/// The `*.txt` files and files without an extension under `dir`, depth first in name order.
fn collect_text_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()).map_err(|e| DataError::io(dir, e)))
        .collect::<std::result::Result<_, _>>()?;
    paths.sort();
    for path in paths {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_text_files(&path, out)?;
        } else if path.extension().is_none_or(|x| x == "txt") {
            out.push(path);
        }
    }
    Ok(())
}

/// ds005531's markup when any line of `path` carries its stamp, as `features text --markup
/// auto` decides.
fn detect_markup(path: &Path) -> Result<Markup> {
    let mut stamped = false;
    for_each_line(path, |_, line| {
        stamped = stamped || has_stamp(line);
        Ok(())
    })?;
    Ok(if stamped {
        Markup::Ds005531
    } else {
        Markup::Plain
    })
}

/// WikiExtractor's article markers, which are no text.
fn is_document_marker(line: &str) -> bool {
    let line = line.trim();
    line == "</doc>" || (line.starts_with("<doc ") && line.ends_with('>'))
}

impl Sentences for Corpus {
    /// One sentence per segment of each line (a ds005531 line's annotators or utterances are
    /// separate sentences, as the route features them separately).
    fn visit(&self, each: &mut dyn FnMut(&[String])) -> brainrecon_nn::Result<()> {
        let mut files = self.files.borrow_mut();
        for file in files.iter_mut() {
            let (mut lines, mut words) = (0, 0);
            for_each_line(&file.path, |_, line| {
                lines += 1;
                if is_document_marker(line) {
                    return Ok(());
                }
                for segment in annotation_segments(file.markup, &file.kind, line) {
                    let sentence = words_of(&segment);
                    words += sentence.len();
                    if !sentence.is_empty() {
                        each(&sentence);
                    }
                }
                Ok(())
            })?;
            (file.lines, file.words) = (lines, words);
        }
        Ok(())
    }
}

/// What [`train_word2vec_on_corpus`] made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CorpusTraining {
    /// The folder written: `vectors.bin` and `training.json`.
    pub out: PathBuf,
    /// Words in the vocabulary (seen at least `min_count` times) and their dimension.
    pub vocabulary: usize,
    /// Dimension of the vectors.
    pub dim: usize,
    /// Words in the corpus, and how many of them are in the vocabulary.
    pub corpus_words: usize,
    /// Of those, words in the vocabulary.
    pub corpus_words_in_vocabulary: usize,
    /// The corpus files, in the order given.
    pub files: Vec<CorpusFile>,
}

impl CorpusTraining {
    /// The run in one line for people, `seconds` long.
    pub fn text(&self, seconds: f64) -> String {
        format!(
            "trained word2vec on {} files ({} words, {:.1}% in the vocabulary) in {seconds:.1} s: \
             {} words × {} → {}",
            self.files.len(),
            self.corpus_words,
            100.0 * self.corpus_words_in_vocabulary as f64 / self.corpus_words.max(1) as f64,
            self.vocabulary,
            self.dim,
            self.out.join("vectors.bin").display()
        )
    }

    /// The JSON report: the fields and the run's `seconds` (keys sorted, as JSON objects list
    /// them); an error for a path that is not UTF-8.
    pub fn json(&self, seconds: f64) -> serde_json::Result<serde_json::Value> {
        let mut value = serde_json::to_value(self)?;
        value["seconds"] = seconds.into();
        Ok(value)
    }
}

/// Trains skip-gram vectors on the corpus at `paths` (see [`Corpus::open`]) and writes
/// `out/vectors.bin` and `out/training.json` (`command` is recorded in it), replacing `out` whole.
pub fn train_word2vec_on_corpus(
    paths: &[PathBuf],
    markup: Option<Markup>,
    config: &Word2VecConfig,
    out: &Path,
    command: &str,
    show_progress: bool,
) -> Result<CorpusTraining> {
    if config.dim == 0 || config.epochs == 0 || config.window == 0 {
        return Err(RouteError::Usage(format!(
            "--dim, --epochs and --window must be at least 1, found {}, {} and {}",
            config.dim, config.epochs, config.window
        )));
    }
    let corpus = Corpus::open(paths, markup)?;
    let (vectors, in_vocabulary) =
        train_word2vec_from(&corpus, config, show_progress).map_err(|e| match e {
            brainrecon_nn::ModelError::Invalid(message) => RouteError::Usage(format!(
                "--corpus: {message}; a smaller --min-count keeps rarer words"
            )),
            other => other.into(),
        })?;
    let files = corpus.files();
    let corpus_words = files.iter().map(|f| f.words).sum();
    let summary = CorpusTraining {
        out: out.to_path_buf(),
        vocabulary: vectors.words.len(),
        dim: vectors.dim,
        corpus_words,
        corpus_words_in_vocabulary: in_vocabulary as usize,
        files,
    };
    write_word2vec(
        out,
        &vectors,
        &serde_json::json!({
            "command": command,
            "corpus": summary,
            "config": config,
            "words": vectors.words.len(),
        }),
    )?;
    Ok(summary)
}
