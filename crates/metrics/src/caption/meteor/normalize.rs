//! METEOR 1.5's `-norm` normalizer for English
//! (`edu.cmu.meteor.util.Normalizer.normalizeLine(line, LANG_EN, true)`):
//! Moses-style punctuation splitting with METEOR's additions (quote and
//! dash normalization, hyphens between words split, dotted acronyms joined),
//! punctuation kept.
//!
//! Each step below is one Java regular-expression `replaceAll` (or
//! `String.replace`) of that class, applied left to right without overlap
//! as Java applies them; the character classes are the ones the Java
//! patterns spell out (`\p{Digit}` and `\s` are ASCII there).

use std::collections::HashMap;

/// How a nonbreaking prefix may keep its period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nonbreaking {
    /// Always (`Mr.`).
    Any,
    /// Only before a number (`No. 5`).
    NumericOnly,
}

/// Parses a `nonbreaking/<language>.prefixes` file: one prefix a line, `#`
/// comments, an optional `#NUMERIC_ONLY#` marker after the prefix.
pub fn parse_nonbreaking_prefixes(text: &str) -> HashMap<String, Nonbreaking> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut toks = line
            .split(is_java_tokenizer_space)
            .filter(|t| !t.is_empty());
        let Some(prefix) = toks.next() else { continue };
        if prefix.starts_with('#') {
            continue;
        }
        let kind = if toks.next() == Some("#NUMERIC_ONLY#") {
            Nonbreaking::NumericOnly
        } else {
            Nonbreaking::Any
        };
        out.insert(prefix.to_string(), kind);
    }
    out
}

/// The delimiters of Java's default `StringTokenizer`.
pub fn is_java_tokenizer_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{c}')
}

/// The normalizer's `alpha` class: Latin, Latin-1, Latin Extended-A up to ž,
/// Cyrillic (and its supplements) and the phonetic extensions.
fn is_alpha(c: char) -> bool {
    c.is_ascii_alphabetic()
        || matches!(c,
            '\u{160}' | '\u{17d}' | '\u{161}' | '\u{17e}' | '\u{178}'
            | '\u{c0}'..='\u{d6}' | '\u{d8}'..='\u{f6}' | '\u{f8}'..='\u{17e}'
            | '\u{400}'..='\u{4ff}' | '\u{500}'..='\u{527}' | '\u{a640}'..='\u{a66e}'
            | '\u{a67e}'..='\u{a697}' | '\u{1d00}'..='\u{1d7f}')
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_digit() || is_alpha(c)
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

/// Java's `\s` without UNICODE_CHARACTER_CLASS.
fn is_java_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// The normalizer's `r_white` class.
fn is_white(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{2000}'..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{a0}'
    )
}

/// `replaceAll` of a pattern `([a])<mid>([b])`: every non-overlapping match,
/// left to right, rewritten by `emit(first, last, out)`.
fn replace_triples(
    s: &[char],
    a: impl Fn(char) -> bool,
    mid: char,
    b: impl Fn(char) -> bool,
    emit: impl Fn(char, char, &mut Vec<char>),
) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < s.len() {
        if i + 2 < s.len() && a(s[i]) && s[i + 1] == mid && b(s[i + 2]) {
            emit(s[i], s[i + 2], &mut out);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

fn spaced(first: char, mid: &str, last: char, out: &mut Vec<char>) {
    out.push(first);
    out.extend(mid.chars());
    out.push(last);
}

/// Java `String.replace` on a char buffer.
fn replace_str(s: &[char], from: &str, to: &str) -> Vec<char> {
    let text: String = s.iter().collect();
    text.replace(from, to).chars().collect()
}

fn contains(s: &[char], pat: &str) -> bool {
    let text: String = s.iter().collect();
    text.contains(pat)
}

/// `r_sep_other`: spaces around every character that is not alphanumeric,
/// whitespace or one of `.'`,-‘’`.
fn separate_other(s: &[char]) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len() * 2);
    for &c in s {
        let keep = is_alnum(c)
            || is_java_space(c)
            || matches!(c, '.' | '\'' | '`' | ',' | '-' | '\u{2018}' | '\u{2019}');
        if keep {
            out.push(c);
        } else {
            out.extend([' ', c, ' ']);
        }
    }
    out
}

/// Runs of two or more dots are escaped as DOTMULTI markers so the period
/// splitting below leaves them alone.
fn escape_multi_dots(s: &[char]) -> Vec<char> {
    // r_multi_dot: `\.([\.]+)` -> " DOTMULTI$1"
    let mut out = Vec::with_capacity(s.len() + 16);
    let mut i = 0;
    while i < s.len() {
        let run = s[i..].iter().take_while(|&&c| c == '.').count();
        if run >= 2 {
            out.extend(" DOTMULTI".chars());
            out.extend(std::iter::repeat_n('.', run - 1));
            i += run;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    let mut s = out;
    while contains(&s, "DOTMULTI.") {
        // r_multi_dot2: `DOTMULTI\.([^\.])` -> "DOTDOTMULTI $1"
        let pat: Vec<char> = "DOTMULTI.".chars().collect();
        let mut out = Vec::with_capacity(s.len() + 8);
        let mut i = 0;
        while i < s.len() {
            if s[i..].starts_with(&pat) && i + pat.len() < s.len() && s[i + pat.len()] != '.' {
                out.extend("DOTDOTMULTI ".chars());
                out.push(s[i + pat.len()]);
                i += pat.len() + 1;
            } else {
                out.push(s[i]);
                i += 1;
            }
        }
        s = replace_str(&out, "DOTMULTI.", "DOTDOTMULTI");
    }
    s
}

/// Commas split except inside numbers (three passes, as in the Java code).
fn separate_commas(s: &[char]) -> Vec<char> {
    let emit = |a: char, b: char, out: &mut Vec<char>| spaced(a, " , ", b, out);
    let s = replace_triples(s, |c| !is_digit(c), ',', |c| !is_digit(c), emit);
    let s = replace_triples(&s, is_digit, ',', |c| !is_digit(c), emit);
    replace_triples(&s, |c| !is_digit(c), ',', is_digit, emit)
}

/// Quotes and dashes normalized; hyphens between alphanumerics split.
fn normalize_quotes_and_dashes(s: &[char]) -> Vec<char> {
    // r_quote_norm: [`‘’] -> '
    let s: Vec<char> = s
        .iter()
        .map(|&c| {
            if matches!(c, '`' | '\u{2018}' | '\u{2019}') {
                '\''
            } else {
                c
            }
        })
        .collect();
    // r_quote_norm2: ([“”]|'') -> " \" "
    let mut out = Vec::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < s.len() {
        if matches!(s[i], '\u{201c}' | '\u{201d}') {
            out.extend([' ', '"', ' ']);
            i += 1;
        } else if s[i] == '\'' && s.get(i + 1) == Some(&'\'') {
            out.extend([' ', '"', ' ']);
            i += 2;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    let s = replace_str(&out, "\u{2013}", "-");
    let s = replace_str(&s, "--", "-");
    // r_rm_dash: ([alnum.])[-]([alnum]) -> "$1 $2"
    replace_triples(
        &s,
        |c| is_alnum(c) || c == '.',
        '-',
        is_alnum,
        |a, b, out| spaced(a, " ", b, out),
    )
}

/// English contractions split to the right ("it's" -> "it 's").
fn split_contractions(s: &[char]) -> Vec<char> {
    let apart = |a: char, b: char, out: &mut Vec<char>| spaced(a, " ' ", b, out);
    let right = |a: char, b: char, out: &mut Vec<char>| spaced(a, " '", b, out);
    let s = replace_triples(s, |c| !is_alpha(c), '\'', |c| !is_alpha(c), apart);
    let s = replace_triples(&s, |c| !is_alpha(c) && !is_digit(c), '\'', is_alpha, apart);
    let s = replace_triples(&s, is_alpha, '\'', |c| !is_alpha(c), apart);
    let s = replace_triples(&s, is_alpha, '\'', is_alpha, right);
    replace_triples(&s, is_digit, '\'', |c| c == 's', right)
}

/// Rebuilds the line word by word, splitting a final period unless the word
/// is a nonbreaking prefix (or a dotted acronym, whose dots are dropped).
fn split_periods(s: &[char], prefixes: &HashMap<String, Nonbreaking>) -> String {
    let line: String = s.iter().collect();
    let words: Vec<&str> = line
        .split(is_java_tokenizer_space)
        .filter(|w| !w.is_empty())
        .collect();
    let mut out = String::with_capacity(line.len() + 8);
    for (i, word) in words.iter().enumerate() {
        let next = words.get(i + 1);
        if word.chars().count() > 1 && word.ends_with('.') {
            let pre = &word[..word.len() - 1];
            let kind = prefixes.get(pre).copied();
            if pre.contains('.') && pre.chars().any(is_alpha) {
                out.push_str(&word.replace('.', ""));
            } else if kind == Some(Nonbreaking::Any)
                || next.is_some_and(|n| n.starts_with(|c: char| c.is_ascii_lowercase()))
                || (kind == Some(Nonbreaking::NumericOnly)
                    && next.is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit())))
            {
                // Nonbreaking, or followed by a lower-case word or (for
                // numeric-only prefixes) a number: the period stays.
                out.push_str(word);
            } else {
                out.push_str(pre);
                out.push_str(" .");
            }
        } else {
            out.push_str(word);
        }
        out.push(' ');
    }
    out
}

/// Java `String.trim`: strips characters up to U+0020 at both ends.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// `Normalizer.normalizeLine(line, LANG_EN, keepPunctuation = true)`.
pub fn normalize_line(line: &str, prefixes: &HashMap<String, Nonbreaking>) -> String {
    let padded: Vec<char> = format!(" {line} ").chars().collect();
    let s = separate_other(&padded);
    let s = escape_multi_dots(&s);
    let s = separate_commas(&s);
    let s = normalize_quotes_and_dashes(&s);
    let s = split_contractions(&s);
    let mut line = split_periods(&s, prefixes);
    while line.contains("DOTDOTMULTI") {
        line = line.replace("DOTDOTMULTI", "DOTMULTI.");
    }
    let line = line.replace("DOTMULTI", ".");
    // r_white: runs of (Unicode) spaces become one space.
    let mut collapsed = String::with_capacity(line.len());
    let mut in_white = false;
    for c in line.chars() {
        if is_white(c) {
            if !in_white {
                collapsed.push(' ');
            }
            in_white = true;
        } else {
            collapsed.push(c);
            in_white = false;
        }
    }
    java_trim(&collapsed).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes() -> HashMap<String, Nonbreaking> {
        parse_nonbreaking_prefixes("#comment\nMr\nNo #NUMERIC_ONLY#\n\n")
    }

    #[test]
    fn parses_prefix_file() {
        let p = prefixes();
        assert_eq!(p.get("Mr"), Some(&Nonbreaking::Any));
        assert_eq!(p.get("No"), Some(&Nonbreaking::NumericOnly));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn splits_as_meteor_does() {
        let p = prefixes();
        assert_eq!(normalize_line("a,b,c and 1,2", &p), "a , b,c and 1,2");
        assert_eq!(normalize_line("the u.s. and Mr. X", &p), "the us and Mr. X");
        assert_eq!(normalize_line("No. 5 and No. X", &p), "No. 5 and No . X");
        assert_eq!(normalize_line("wait ... more", &p), "wait ... more");
        assert_eq!(normalize_line("black-and-white", &p), "black and white");
        assert_eq!(normalize_line("it's", &p), "it 's");
    }
}
