//! METEOR 1.5's language resources, read from the user's own copy of
//! `meteor-1.5.jar` (pycocoevalcap's pip package ships it as
//! `pycocoevalcap/meteor/meteor-1.5.jar`, with the paraphrase table next to
//! it in `data/paraphrase-en.gz`). These files are LGPL / WordNet data and
//! are not part of this crate.
//!
//! Read from the jar: `function/english.words` (function words),
//! `nonbreaking/english.prefixes` (normalizer), `synonym/english.exceptions`
//! and `synonym/english.synsets` (WordNet synonyms; METEOR itself never
//! loads `english.relations`). The paraphrase table (5 million entries) is
//! streamed and only the entries that can match in the corpus at hand are
//! kept: a phrase and its paraphrase must both occur as contiguous words of
//! some (normalized) caption, or METEOR can never use the entry.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::{DeflateDecoder, GzDecoder};

use super::normalize::{is_java_tokenizer_space, parse_nonbreaking_prefixes, Nonbreaking};
use crate::error::{MetricsError, Result};

/// Where METEOR's resources are: the jar and the English paraphrase table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeteorFiles {
    /// `meteor-1.5.jar`.
    pub jar: PathBuf,
    /// `paraphrase-en.gz`; `None` runs without the paraphrase module.
    pub paraphrase: Option<PathBuf>,
}

impl MeteorFiles {
    /// The layout of pycocoevalcap's package (and of METEOR's own
    /// distribution): the paraphrase table at `<jar dir>/data/paraphrase-en.gz`.
    pub fn from_jar(jar: impl Into<PathBuf>) -> MeteorFiles {
        let jar = jar.into();
        let paraphrase = jar
            .parent()
            .map(|d| d.join("data").join("paraphrase-en.gz"));
        MeteorFiles { jar, paraphrase }
    }
}

fn resource_error(path: &Path, what: impl Into<String>) -> MetricsError {
    MetricsError::Resource {
        path: path.display().to_string(),
        what: what.into(),
    }
}

/// The named members of a zip archive (a jar), decompressed as text.
pub(crate) fn read_zip_members(path: &Path, names: &[&str]) -> Result<HashMap<String, String>> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| resource_error(path, format!("cannot read the file: {e}")))?;
    let zip = Zip::parse(&bytes).map_err(|what| resource_error(path, what))?;
    let mut out = HashMap::new();
    for &name in names {
        let data = zip
            .member(&bytes, name)
            .map_err(|what| resource_error(path, what))?;
        let text = String::from_utf8(data)
            .map_err(|_| resource_error(path, format!("member {name} is not UTF-8 text")))?;
        out.insert(name.to_string(), text);
    }
    Ok(out)
}

/// One text member of a jar (for instance `nonbreaking/english.prefixes`).
pub fn read_jar_text(jar: &Path, name: &str) -> Result<String> {
    let mut members = read_zip_members(jar, &[name])?;
    Ok(members.remove(name).unwrap_or_default())
}

/// One central-directory entry.
struct ZipEntry {
    name: String,
    method: u16,
    compressed_size: usize,
    local_header: usize,
}

/// The central directory of a zip archive (no zip64: jars of a few MB).
struct Zip {
    entries: Vec<ZipEntry>,
}

fn le16(b: &[u8], at: usize) -> std::result::Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| "truncated zip structure".to_string())
}

fn le32(b: &[u8], at: usize) -> std::result::Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| "truncated zip structure".to_string())
}

impl Zip {
    fn parse(b: &[u8]) -> std::result::Result<Zip, String> {
        // End-of-central-directory record: signature PK\x05\x06, searched
        // from the end (it may be followed by a comment).
        let eocd = (0..b.len().saturating_sub(21))
            .rev()
            .take(65_557)
            .find(|&i| b[i..].starts_with(&[0x50, 0x4b, 0x05, 0x06]))
            .ok_or("not a zip/jar file (no end-of-central-directory record)")?;
        let count = le16(b, eocd + 10)? as usize;
        let mut at = le32(b, eocd + 16)? as usize;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            if le32(b, at)? != 0x0201_4b50 {
                return Err("corrupt zip central directory".into());
            }
            let name_len = le16(b, at + 28)? as usize;
            let extra_len = le16(b, at + 30)? as usize;
            let comment_len = le16(b, at + 32)? as usize;
            let name = b
                .get(at + 46..at + 46 + name_len)
                .ok_or("truncated zip entry name")?;
            entries.push(ZipEntry {
                name: String::from_utf8_lossy(name).into_owned(),
                method: le16(b, at + 10)?,
                compressed_size: le32(b, at + 20)? as usize,
                local_header: le32(b, at + 42)? as usize,
            });
            at += 46 + name_len + extra_len + comment_len;
        }
        Ok(Zip { entries })
    }

    fn member(&self, b: &[u8], name: &str) -> std::result::Result<Vec<u8>, String> {
        let e = self
            .entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| format!("no member {name} (is this meteor-1.5.jar?)"))?;
        if le32(b, e.local_header)? != 0x0403_4b50 {
            return Err(format!("corrupt local header for {name}"));
        }
        let start = e.local_header
            + 30
            + le16(b, e.local_header + 26)? as usize
            + le16(b, e.local_header + 28)? as usize;
        let data = b
            .get(start..start + e.compressed_size)
            .ok_or_else(|| format!("truncated data for {name}"))?;
        match e.method {
            0 => Ok(data.to_vec()),
            8 => {
                let mut out = Vec::new();
                DeflateDecoder::new(data)
                    .read_to_end(&mut out)
                    .map_err(|err| format!("cannot inflate {name}: {err}"))?;
                Ok(out)
            }
            m => Err(format!(
                "{name} uses zip compression method {m}; expected 0 or 8"
            )),
        }
    }
}

/// WordNet synonym sets and morphological exceptions, as METEOR's
/// `SynonymDictionary` holds them.
#[derive(Debug, Clone, Default)]
pub struct SynonymDictionary {
    word_to_bases: HashMap<String, Vec<String>>,
    word_to_synsets: HashMap<String, HashSet<u32>>,
}

impl SynonymDictionary {
    /// Parses `english.exceptions` (base line, then its inflected forms) and
    /// `english.synsets` (word line, then its synset numbers).
    pub fn parse(exceptions: &str, synsets: &str, source: &Path) -> Result<SynonymDictionary> {
        let mut d = SynonymDictionary::default();
        let mut lines = exceptions.lines();
        while let Some(base) = lines.next() {
            let forms = lines.next().unwrap_or("");
            for form in forms
                .split(is_java_tokenizer_space)
                .filter(|f| !f.is_empty())
            {
                d.word_to_bases
                    .entry(form.to_string())
                    .or_default()
                    .push(base.to_string());
            }
        }
        let mut lines = synsets.lines().enumerate();
        while let Some((_, word)) = lines.next() {
            let (n, sets) = lines.next().unwrap_or((0, ""));
            let mut set = HashSet::new();
            for tok in sets
                .split(is_java_tokenizer_space)
                .filter(|t| !t.is_empty())
            {
                let id = tok.parse::<u32>().map_err(|_| {
                    resource_error(
                        source,
                        format!(
                            "english.synsets line {}: expected synset numbers, got {tok:?}",
                            n + 1
                        ),
                    )
                })?;
                set.insert(id);
            }
            d.word_to_synsets.insert(word.to_string(), set);
        }
        Ok(d)
    }

    /// `getSynSets`: the synsets of the word itself.
    pub fn synsets(&self, word: &str) -> Option<&HashSet<u32>> {
        self.word_to_synsets.get(word)
    }

    /// `getStemSynSets`: synsets of the word's base forms (exception list,
    /// else WordNet's suffix rules).
    pub fn stem_synsets(&self, word: &str) -> HashSet<u32> {
        if let Some(bases) = self.word_to_bases.get(word) {
            let mut set = HashSet::new();
            for b in bases {
                set.extend(self.synsets(b).into_iter().flatten().copied());
            }
            return set;
        }
        self.synsets(&self.morph(word)).cloned().unwrap_or_default()
    }

    /// WordNet 3.0's `morphstr` suffix rules as METEOR transcribes them: the
    /// first rule whose result is a known word wins. (METEOR's "-ful"
    /// handling is overwritten before use, except that the suffix is put
    /// back on the result.)
    fn morph(&self, word: &str) -> String {
        const SUFFIX: [&str; 20] = [
            "s", "ses", "xes", "zes", "ches", "shes", "men", "ies", "s", "ies", "es", "es", "ed",
            "ed", "ing", "ing", "er", "est", "er", "est",
        ];
        const ADD: [&str; 20] = [
            "", "s", "x", "z", "ch", "sh", "man", "y", "", "y", "e", "", "e", "", "e", "", "", "",
            "e", "e",
        ];
        let end = if word.ends_with("ful") { "ful" } else { "" };
        // Java String.length counts UTF-16 units.
        if word.ends_with("ss") || word.encode_utf16().count() <= 2 {
            return word.to_string();
        }
        for (suffix, add) in SUFFIX.iter().zip(ADD) {
            if let Some(stem) = word.strip_suffix(suffix) {
                let candidate = format!("{stem}{add}");
                if self.word_to_synsets.contains_key(&candidate) {
                    return candidate + end;
                }
            }
        }
        String::new()
    }
}

/// Paraphrase entries (phrase, paraphrase) in file order.
#[derive(Debug, Clone, Default)]
pub struct ParaphraseTable {
    pub(crate) entries: Vec<(Vec<String>, Vec<String>)>,
}

impl ParaphraseTable {
    /// Streams `paraphrase-en.gz` (probability line, phrase line, paraphrase
    /// line, repeated), keeping the entries for which `keep(phrase,
    /// paraphrase)` holds.
    pub fn load_filtered(
        path: &Path,
        keep: impl Fn(&[&str], &[&str]) -> bool,
    ) -> Result<ParaphraseTable> {
        let file =
            File::open(path).map_err(|e| resource_error(path, format!("cannot open: {e}")))?;
        let mut reader = BufReader::with_capacity(1 << 20, GzDecoder::new(file));
        let mut table = ParaphraseTable::default();
        let mut lines = [String::new(), String::new(), String::new()];
        let mut line_no = 0usize;
        loop {
            for (k, line) in lines.iter_mut().enumerate() {
                line.clear();
                let n = reader.read_line(line).map_err(|e| {
                    resource_error(
                        path,
                        format!("line {}: cannot read gzip text: {e}", line_no + 1),
                    )
                })?;
                if n == 0 {
                    if k == 0 {
                        return Ok(table);
                    }
                    return Err(resource_error(
                        path,
                        format!(
                            "ends inside an entry at line {line_no}; expected 3 lines per entry"
                        ),
                    ));
                }
                line_no += 1;
            }
            let phrase: Vec<&str> = words(&lines[1]);
            let para: Vec<&str> = words(&lines[2]);
            if keep(&phrase, &para) {
                table.entries.push((
                    phrase.iter().map(|w| w.to_string()).collect(),
                    para.iter().map(|w| w.to_string()).collect(),
                ));
            }
        }
    }
}

fn words(line: &str) -> Vec<&str> {
    line.split(is_java_tokenizer_space)
        .filter(|w| !w.is_empty())
        .collect()
}

/// Everything METEOR 1.5 English reads besides the stemmer.
#[derive(Debug, Clone)]
pub struct MeteorResources {
    pub(crate) function_words: HashSet<String>,
    pub(crate) nonbreaking: HashMap<String, Nonbreaking>,
    pub(crate) synonyms: SynonymDictionary,
}

impl MeteorResources {
    /// Reads the function words, nonbreaking prefixes and WordNet files from
    /// `meteor-1.5.jar`.
    pub fn from_jar(jar: &Path) -> Result<MeteorResources> {
        let names = [
            "function/english.words",
            "nonbreaking/english.prefixes",
            "synonym/english.exceptions",
            "synonym/english.synsets",
        ];
        let m = read_zip_members(jar, &names)?;
        Ok(MeteorResources {
            function_words: m[names[0]].lines().map(|l| l.to_string()).collect(),
            nonbreaking: parse_nonbreaking_prefixes(&m[names[1]]),
            synonyms: SynonymDictionary::parse(&m[names[2]], &m[names[3]], jar)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn morph_uses_first_known_base() {
        let d = SynonymDictionary::parse(
            "child\nchildren\n",
            "dog\n1 2\nbox\n3\nwoman\n4\nchild\n5\n",
            Path::new("test"),
        )
        .unwrap();
        assert_eq!(d.morph("dogs"), "dog");
        assert_eq!(d.morph("boxes"), "box");
        assert_eq!(d.morph("women"), "woman");
        assert_eq!(d.morph("glass"), "glass");
        assert_eq!(d.morph("cats"), "");
        assert_eq!(d.stem_synsets("children"), HashSet::from([5]));
    }

    #[test]
    fn missing_jar_is_a_clear_error() {
        let err = MeteorResources::from_jar(Path::new("/nonexistent/meteor-1.5.jar")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/meteor-1.5.jar"),
            "{err}"
        );
    }
}
