//! The Snowball English ("Porter2") stemmer as METEOR 1.5 runs it
//! (`org.tartarus.snowball.ext.englishStemmer` inside meteor-1.5.jar),
//! written from the algorithm's published description
//! (snowballstem.org/algorithms/english/stemmer.html), in the variant with
//! the `gener`/`commun`/`arsen` region exceptions that jar has.
//!
//! Works on `char`s; vowels are `aeiouy`, and a `y` at the start of the word
//! or after a vowel is a consonant (`Y` below).

/// Stems one word. Words of fewer than three characters are returned as
/// they are.
pub fn snowball_english_stem(word: &str) -> String {
    let chars: Vec<char> = word.chars().collect();
    if let Some(fixed) = exception1(word) {
        return fixed.to_string();
    }
    if chars.len() < 3 {
        return word.to_string();
    }
    let mut w = Word::new(chars);
    w.step_1a();
    if !w.is_exception2() {
        w.step_1b();
        w.step_1c();
        w.step_2();
        w.step_3();
        w.step_4();
        w.step_5();
    }
    w.finish()
}

/// Whole words with a fixed stem.
fn exception1(word: &str) -> Option<&'static str> {
    Some(match word {
        "skis" => "ski",
        "skies" => "sky",
        "dying" => "die",
        "lying" => "lie",
        "tying" => "tie",
        "idly" => "idl",
        "gently" => "gentl",
        "ugly" => "ugli",
        "early" => "earli",
        "only" => "onli",
        "singly" => "singl",
        "sky" => "sky",
        "news" => "news",
        "howe" => "howe",
        "atlas" => "atlas",
        "cosmos" => "cosmos",
        "bias" => "bias",
        "andes" => "andes",
        _ => return None,
    })
}

/// The word being stemmed, with its R1 and R2 region starts.
struct Word {
    c: Vec<char>,
    p1: usize,
    p2: usize,
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y')
}

fn is_double(a: char, b: char) -> bool {
    a == b && matches!(a, 'b' | 'd' | 'f' | 'g' | 'm' | 'n' | 'p' | 'r' | 't')
}

fn is_li_ending(c: char) -> bool {
    matches!(c, 'c' | 'd' | 'e' | 'g' | 'h' | 'k' | 'm' | 'n' | 'r' | 't')
}

impl Word {
    /// Prelude (leading apostrophe, consonant `y` marked `Y`) and regions.
    fn new(mut c: Vec<char>) -> Word {
        if c.first() == Some(&'\'') {
            c.remove(0);
        }
        if c.first() == Some(&'y') {
            c[0] = 'Y';
        }
        for i in 1..c.len() {
            if c[i] == 'y' && is_vowel(c[i - 1]) {
                c[i] = 'Y';
            }
        }
        let mut w = Word { c, p1: 0, p2: 0 };
        w.mark_regions();
        w
    }

    /// The position after the first non-vowel that follows a vowel, from
    /// `from` on (the end of the word if there is none).
    fn region_after(&self, from: usize) -> usize {
        let n = self.c.len();
        let mut i = from;
        while i < n && !is_vowel(self.c[i]) {
            i += 1;
        }
        while i < n && is_vowel(self.c[i]) {
            i += 1;
        }
        (i + 1).min(n)
    }

    fn mark_regions(&mut self) {
        let prefix = ["gener", "commun", "arsen"]
            .iter()
            .find(|p| self.starts_with(p))
            .map(|p| p.chars().count());
        self.p1 = prefix.unwrap_or_else(|| self.region_after(0));
        self.p2 = self.region_after(self.p1);
    }

    fn starts_with(&self, s: &str) -> bool {
        let s: Vec<char> = s.chars().collect();
        self.c.len() >= s.len() && self.c[..s.len()] == s[..]
    }

    fn ends_with(&self, s: &str) -> bool {
        let s: Vec<char> = s.chars().collect();
        self.c.len() >= s.len() && self.c[self.c.len() - s.len()..] == s[..]
    }

    /// The longest of `suffixes` the word ends with.
    fn longest_suffix<'a>(&self, suffixes: &[&'a str]) -> Option<&'a str> {
        suffixes
            .iter()
            .filter(|s| self.ends_with(s))
            .max_by_key(|s| s.chars().count())
            .copied()
    }

    /// Start index of a suffix of `len` characters.
    fn start_of(&self, suffix: &str) -> usize {
        self.c.len() - suffix.chars().count()
    }

    fn replace_suffix(&mut self, suffix: &str, with: &str) {
        let start = self.start_of(suffix);
        self.c.truncate(start);
        self.c.extend(with.chars());
    }

    fn in_r1(&self, suffix: &str) -> bool {
        self.start_of(suffix) >= self.p1
    }

    fn in_r2(&self, suffix: &str) -> bool {
        self.start_of(suffix) >= self.p2
    }

    fn has_vowel(&self, end: usize) -> bool {
        self.c[..end].iter().any(|&c| is_vowel(c))
    }

    /// A short syllable ending at `end`: non-vowel (not w, x, Y), vowel,
    /// non-vowel; or vowel, non-vowel at the start of the word.
    fn short_syllable_at(&self, end: usize) -> bool {
        let c = &self.c;
        if end >= 3 {
            let (a, b, d) = (c[end - 3], c[end - 2], c[end - 1]);
            if !is_vowel(a) && is_vowel(b) && !is_vowel(d) && !matches!(d, 'w' | 'x' | 'Y') {
                return true;
            }
        }
        end == 2 && is_vowel(c[0]) && !is_vowel(c[1])
    }

    /// Step 0 and 1a: apostrophe suffixes, plural endings.
    fn step_1a(&mut self) {
        if let Some(s) = self.longest_suffix(&["'", "'s", "'s'"]) {
            self.replace_suffix(s, "");
        }
        match self.longest_suffix(&["sses", "ied", "ies", "s", "us", "ss"]) {
            Some("sses") => self.replace_suffix("sses", "ss"),
            Some(s @ ("ied" | "ies")) => {
                let with = if self.start_of(s) > 1 { "i" } else { "ie" };
                self.replace_suffix(s, with);
            }
            Some("s") => {
                let start = self.start_of("s");
                // A vowel before the letter just ahead of the s.
                if start >= 2 && self.has_vowel(start - 1) {
                    self.replace_suffix("s", "");
                }
            }
            _ => {}
        }
    }

    fn is_exception2(&self) -> bool {
        let w: String = self.c.iter().collect();
        matches!(
            w.as_str(),
            "inning"
                | "outing"
                | "canning"
                | "herring"
                | "earring"
                | "proceed"
                | "exceed"
                | "succeed"
        )
    }

    fn step_1b(&mut self) {
        let suffixes = ["eed", "eedly", "ed", "edly", "ing", "ingly"];
        match self.longest_suffix(&suffixes) {
            Some(s @ ("eed" | "eedly")) if self.in_r1(s) => self.replace_suffix(s, "ee"),
            // The longest suffix decides: no fall-back to "ed" outside R1.
            Some("eed" | "eedly") => {}
            Some(s) => {
                if !self.has_vowel(self.start_of(s)) {
                    return;
                }
                self.replace_suffix(s, "");
                if self.ends_with("at") || self.ends_with("bl") || self.ends_with("iz") {
                    self.c.push('e');
                } else if self.c.len() >= 2
                    && is_double(self.c[self.c.len() - 2], self.c[self.c.len() - 1])
                {
                    self.c.pop();
                } else if self.c.len() == self.p1 && self.short_syllable_at(self.c.len()) {
                    self.c.push('e');
                }
            }
            None => {}
        }
    }

    /// y or Y after a non-vowel that is not the first letter becomes i.
    fn step_1c(&mut self) {
        let n = self.c.len();
        if n >= 3 && matches!(self.c[n - 1], 'y' | 'Y') && !is_vowel(self.c[n - 2]) {
            self.c[n - 1] = 'i';
        }
    }

    fn step_2(&mut self) {
        const RULES: [(&str, &str); 24] = [
            ("tional", "tion"),
            ("enci", "ence"),
            ("anci", "ance"),
            ("abli", "able"),
            ("entli", "ent"),
            ("izer", "ize"),
            ("ization", "ize"),
            ("ational", "ate"),
            ("ation", "ate"),
            ("ator", "ate"),
            ("alism", "al"),
            ("aliti", "al"),
            ("alli", "al"),
            ("fulness", "ful"),
            ("ousli", "ous"),
            ("ousness", "ous"),
            ("iveness", "ive"),
            ("iviti", "ive"),
            ("biliti", "ble"),
            ("bli", "ble"),
            ("ogi", "og"),
            ("fulli", "ful"),
            ("lessli", "less"),
            ("li", ""),
        ];
        let suffixes: Vec<&str> = RULES.iter().map(|r| r.0).collect();
        let Some(s) = self.longest_suffix(&suffixes) else {
            return;
        };
        if !self.in_r1(s) {
            return;
        }
        let start = self.start_of(s);
        let before = start.checked_sub(1).map(|i| self.c[i]);
        match s {
            "ogi" if before != Some('l') => {}
            "li" if !before.is_some_and(is_li_ending) => {}
            _ => {
                let with = RULES.iter().find(|r| r.0 == s).map_or("", |r| r.1);
                self.replace_suffix(s, with);
            }
        }
    }

    fn step_3(&mut self) {
        const RULES: [(&str, &str); 9] = [
            ("tional", "tion"),
            ("ational", "ate"),
            ("alize", "al"),
            ("icate", "ic"),
            ("iciti", "ic"),
            ("ical", "ic"),
            ("ful", ""),
            ("ness", ""),
            ("ative", ""),
        ];
        let suffixes: Vec<&str> = RULES.iter().map(|r| r.0).collect();
        let Some(s) = self.longest_suffix(&suffixes) else {
            return;
        };
        if !self.in_r1(s) || (s == "ative" && !self.in_r2(s)) {
            return;
        }
        let with = RULES.iter().find(|r| r.0 == s).map_or("", |r| r.1);
        self.replace_suffix(s, with);
    }

    fn step_4(&mut self) {
        let suffixes = [
            "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ism",
            "ate", "iti", "ous", "ive", "ize", "ion",
        ];
        let Some(s) = self.longest_suffix(&suffixes) else {
            return;
        };
        if !self.in_r2(s) {
            return;
        }
        if s == "ion" {
            let start = self.start_of(s);
            if start == 0 || !matches!(self.c[start - 1], 's' | 't') {
                return;
            }
        }
        self.replace_suffix(s, "");
    }

    fn step_5(&mut self) {
        let n = self.c.len();
        if self.ends_with("e") {
            let start = n - 1;
            if start >= self.p2 || (start >= self.p1 && !self.short_syllable_at(start)) {
                self.c.pop();
            }
        } else if self.ends_with("l") && n > self.p2 && n >= 2 && self.c[n - 2] == 'l' {
            self.c.pop();
        }
    }

    fn finish(self) -> String {
        self.c
            .into_iter()
            .map(|c| if c == 'Y' { 'y' } else { c })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_examples() {
        for (w, s) in [
            ("consign", "consign"),
            ("consigned", "consign"),
            ("consignment", "consign"),
            ("knightly", "knight"),
            ("generously", "generous"),
            ("hoping", "hope"),
            ("cries", "cri"),
            ("tied", "tie"),
            ("gas", "gas"),
            ("fluently", "fluentli"),
            ("'ll", "ll"),
            ("dog's", "dog"),
        ] {
            assert_eq!(snowball_english_stem(w), s, "{w}");
        }
    }
}
