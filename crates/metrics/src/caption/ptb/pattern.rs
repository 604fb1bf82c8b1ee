//! A small backtracking-free regular-expression matcher over `char` slices,
//! enough to transcribe the JFlex macros of Stanford's `PTBLexer.flex`.
//!
//! A JFlex scanner takes, at each position, the rule whose regular
//! expression matches the *longest* text (trailing context included), the
//! earliest rule on ties. That needs every length a pattern can match, not
//! the first one a backtracking engine finds, so [`Pattern::ends`] returns
//! the set of all end positions (a breadth-first NFA walk).

/// A regular expression. Literals are caseless, like the `%caseless` scanner;
/// character classes are case-sensitive, as JFlex's are under `%caseless`.
#[derive(Clone)]
pub(crate) enum Pattern {
    /// A caseless literal string.
    Lit(Vec<char>),
    /// One given character, case-sensitive.
    Exact(char),
    /// One character of a class.
    Class(fn(char) -> bool),
    /// Concatenation.
    Seq(Vec<Pattern>),
    /// Alternation.
    Alt(Vec<Pattern>),
    /// `p{min,max}`; `max == None` is unbounded.
    Rep(Box<Pattern>, usize, Option<usize>),
}

/// Caseless literal.
pub(crate) fn lit(s: &str) -> Pattern {
    Pattern::Lit(s.chars().collect())
}

/// Alternation of caseless literals.
pub(crate) fn lits(words: &[&str]) -> Pattern {
    Pattern::Alt(words.iter().map(|w| lit(w)).collect())
}

pub(crate) fn class(f: fn(char) -> bool) -> Pattern {
    Pattern::Class(f)
}

pub(crate) fn seq(parts: Vec<Pattern>) -> Pattern {
    Pattern::Seq(parts)
}

pub(crate) fn alt(parts: Vec<Pattern>) -> Pattern {
    Pattern::Alt(parts)
}

pub(crate) fn opt(p: Pattern) -> Pattern {
    Pattern::Rep(Box::new(p), 0, Some(1))
}

pub(crate) fn star(p: Pattern) -> Pattern {
    Pattern::Rep(Box::new(p), 0, None)
}

pub(crate) fn plus(p: Pattern) -> Pattern {
    Pattern::Rep(Box::new(p), 1, None)
}

pub(crate) fn rep(p: Pattern, min: usize, max: usize) -> Pattern {
    Pattern::Rep(Box::new(p), min, Some(max))
}

/// Caseless equality of two characters, as JFlex's `%caseless` compares a
/// literal character with the input (upper- and lower-case variants).
fn caseless_eq(a: char, b: char) -> bool {
    if a == b {
        return true;
    }
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(&b);
    }
    let single_lower = |c: char| {
        let mut it = c.to_lowercase();
        match (it.next(), it.next()) {
            (Some(l), None) => l,
            _ => c,
        }
    };
    single_lower(a) == single_lower(b)
}

impl Pattern {
    /// All positions `e` such that `text[start..e]` matches, ascending.
    pub(crate) fn ends(&self, text: &[char], start: usize) -> Vec<usize> {
        let mut out = Vec::new();
        self.ends_into(text, start, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Pushes the ends from `start` onto `out` (unsorted, maybe repeated).
    fn ends_into(&self, text: &[char], start: usize, out: &mut Vec<usize>) {
        match self {
            Pattern::Lit(chars) => {
                let end = start + chars.len();
                if end <= text.len()
                    && chars
                        .iter()
                        .zip(&text[start..end])
                        .all(|(&a, &b)| caseless_eq(a, b))
                {
                    out.push(end);
                }
            }
            Pattern::Exact(_) | Pattern::Class(_) => {
                if start < text.len() && self.matches_char(text[start]) {
                    out.push(start + 1);
                }
            }
            Pattern::Seq(parts) => {
                let mut current = vec![start];
                for part in parts {
                    let mut next = Vec::new();
                    for &pos in &current {
                        part.ends_into(text, pos, &mut next);
                    }
                    next.sort_unstable();
                    next.dedup();
                    if next.is_empty() {
                        return;
                    }
                    current = next;
                }
                out.extend(current);
            }
            Pattern::Alt(parts) => {
                for part in parts {
                    part.ends_into(text, start, out);
                }
            }
            Pattern::Rep(p, min, max) => {
                if p.is_single_char() {
                    // A run of one-character matches: every length from
                    // `min` up to the run length is an end.
                    let limit = max.unwrap_or(usize::MAX);
                    let run = text[start.min(text.len())..]
                        .iter()
                        .take(limit)
                        .take_while(|&&c| p.matches_char(c))
                        .count();
                    out.extend((start + *min..=start + run).filter(|_| run >= *min));
                } else {
                    rep_ends(p, *min, *max, text, start, out);
                }
            }
        }
    }

    /// Whether this pattern always matches exactly one character.
    fn is_single_char(&self) -> bool {
        match self {
            Pattern::Exact(_) | Pattern::Class(_) => true,
            Pattern::Lit(chars) => chars.len() == 1,
            Pattern::Alt(parts) => parts.iter().all(Pattern::is_single_char),
            _ => false,
        }
    }

    /// For a single-character pattern: whether it matches `c`.
    fn matches_char(&self, c: char) -> bool {
        match self {
            Pattern::Exact(e) => *e == c,
            Pattern::Class(f) => f(c),
            Pattern::Lit(chars) => chars.len() == 1 && caseless_eq(chars[0], c),
            Pattern::Alt(parts) => parts.iter().any(|p| p.matches_char(c)),
            _ => false,
        }
    }

    /// Whether the pattern matches the empty string.
    fn nullable(&self) -> bool {
        match self {
            Pattern::Lit(chars) => chars.is_empty(),
            Pattern::Exact(_) | Pattern::Class(_) => false,
            Pattern::Seq(parts) => parts.iter().all(Pattern::nullable),
            Pattern::Alt(parts) => parts.iter().any(Pattern::nullable),
            Pattern::Rep(p, min, _) => *min == 0 || p.nullable(),
        }
    }

    /// Whether a non-empty match can begin with `c` (a cheap filter before
    /// [`Pattern::ends`]).
    pub(crate) fn can_start_with(&self, c: char) -> bool {
        match self {
            Pattern::Lit(chars) => chars.first().is_some_and(|&f| caseless_eq(f, c)),
            Pattern::Exact(_) | Pattern::Class(_) => self.matches_char(c),
            Pattern::Seq(parts) => {
                for part in parts {
                    if part.can_start_with(c) {
                        return true;
                    }
                    if !part.nullable() {
                        return false;
                    }
                }
                false
            }
            Pattern::Alt(parts) => parts.iter().any(|p| p.can_start_with(c)),
            Pattern::Rep(p, _, max) => *max != Some(0) && p.can_start_with(c),
        }
    }

    /// The longest match from `start`, if any.
    pub(crate) fn longest(&self, text: &[char], start: usize) -> Option<usize> {
        self.ends(text, start).last().copied()
    }
}

/// Ends of `p{min,max}` for a multi-character `p`: a breadth-first walk over
/// repetition counts; a position reached again at a count >= `min` adds
/// nothing new.
fn rep_ends(
    p: &Pattern,
    min: usize,
    max: Option<usize>,
    text: &[char],
    start: usize,
    out: &mut Vec<usize>,
) {
    let mut frontier = vec![start];
    let mut seen_at_min: Vec<usize> = Vec::new();
    if min == 0 {
        out.push(start);
        seen_at_min.push(start);
    }
    let mut count = 0usize;
    while !frontier.is_empty() && max.is_none_or(|m| count < m) {
        let mut next = Vec::new();
        for &pos in &frontier {
            p.ends_into(text, pos, &mut next);
        }
        next.sort_unstable();
        next.dedup();
        count += 1;
        if count >= min {
            next.retain(|pos| !seen_at_min.contains(pos));
            seen_at_min.extend(next.iter().copied());
            out.extend(next.iter().copied());
        }
        frontier = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn all_ends_are_reported() {
        let digits = plus(class(|c| c.is_ascii_digit()));
        let num = seq(vec![
            digits.clone(),
            star(seq(vec![class(|c| c == '.'), digits])),
        ]);
        assert_eq!(num.ends(&chars("12.5.x"), 0), vec![1, 2, 4]);
        assert_eq!(num.ends(&chars("x"), 0), Vec::<usize>::new());
    }

    #[test]
    fn literals_are_caseless_and_bounded_repetition_stops() {
        assert_eq!(lit("gonna").longest(&chars("GoNNa"), 0), Some(5));
        let two_to_three = rep(class(|c| c == 'a'), 2, 3);
        assert_eq!(two_to_three.ends(&chars("aaaa"), 0), vec![2, 3]);
        assert_eq!(opt(lit("x")).ends(&chars("y"), 0), vec![0]);
    }
}
