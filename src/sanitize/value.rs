//! Where a match's value is: parsed after `key =` or `--key `, taken from the rule's
//! capture groups, or widened to the token around it. Every look here is bounded or
//! remembered, so that the candidates nested in one long value (`k=k=k=...`) cost no more
//! than the value itself.

use once_cell::sync::Lazy;
use regex::{Captures, Regex};

use super::rules::{Rule, Syntax};

/// Values longer than this are not judged by the heuristics (placeholder, reference, prose,
/// randomness: none of them is this long); see [`Sanitizer::accept`](super::engine::Sanitizer).
/// It bounds the work per candidate, and the look around a token.
pub(super) const MAX_VALUE_LEN: usize = 1024;

/// Removes closing brackets at the end of an unquoted value that were not opened in it
/// (`{password=abc}` -> `abc`).
pub(super) fn trim_unbalanced(v: &str) -> &str {
    let count = |c: u8| v.bytes().filter(|&b| b == c).count();
    let mut end = v.len();
    for (close, open) in [(b')', b'('), (b']', b'['), (b'}', b'{'), (b'>', b'<')] {
        let mut excess = count(close).saturating_sub(count(open));
        while excess > 0 && end > 0 && v.as_bytes()[end - 1] == close {
            end -= 1;
            excess -= 1;
        }
    }
    &v[..end]
}

/// A value found for a match: its span, whether it was unquoted, and where the match ends.
#[derive(Clone, Copy, Debug)]
pub(super) struct Found {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) unquoted: bool,
    pub(super) match_end: usize,
}

/// The runs of unquoted value bytes already scanned in one text, one for each set of stop
/// characters: `(from, to)` says that `text[from..to]` holds no stop and that `to` is a stop
/// or the end. A candidate nested in the last run (`k=k=k=...`: each value is the rest of
/// the previous one) gets its end without scanning the run again.
#[derive(Default)]
pub(super) struct ValueEnds {
    runs: [Option<(usize, usize)>; 3],
}

impl ValueEnds {
    /// The first stop at or after `i` in the stop set `set`.
    fn end(&mut self, text: &str, i: usize, set: usize, stops: &[char]) -> usize {
        if let Some((from, to)) = self.runs[set] {
            if from <= i && i <= to {
                return to;
            }
        }
        let end = text[i..]
            .find(|c: char| c.is_whitespace() || stops.contains(&c))
            .map_or(text.len(), |p| i + p);
        self.runs[set] = Some((i, end));
        end
    }
}

/// Parses the value that starts at `i` (see [`Syntax`]).
fn parse_value(text: &str, i: usize, syntax: Syntax, ends: &mut ValueEnds) -> Option<Found> {
    let b = text.as_bytes();
    let quoted = |start: usize, end: usize, match_end: usize| Found {
        start,
        end,
        unquoted: false,
        match_end,
    };
    match *b.get(i)? {
        b'\\' if syntax == Syntax::Assignment && b.get(i + 1) == Some(&b'"') => {
            let s = i + 2;
            let j = s + b[s..].iter().position(|&c| c == b'"' || c == b'\\')?;
            (b[j] == b'\\' && b.get(j + 1) == Some(&b'"')).then(|| quoted(s, j, j + 2))
        }
        b'"' => {
            let s = i + 1;
            let mut j = s;
            loop {
                match *b.get(j)? {
                    b'"' => return Some(quoted(s, j, j + 1)),
                    b'\n' => return None,
                    b'\\' if syntax == Syntax::Assignment => {
                        if matches!(b.get(j + 1), None | Some(b'\n')) {
                            return None;
                        }
                        j += 2;
                    }
                    _ => j += 1,
                }
            }
        }
        b'\'' => {
            let s = i + 1;
            let j = s + b[s..].iter().position(|&c| c == b'\'' || c == b'\n')?;
            (b[j] == b'\'').then(|| quoted(s, j, j + 1))
        }
        _ => {
            // `key = value` / `key: value` (a blank before the value) is a config line, not
            // a query string: `&`, `,` and `;` belong to the value, bar one at its end.
            let spaced = i > 0 && matches!(b[i - 1], b' ' | b'\t');
            let (set, stops): (usize, &[char]) = match syntax {
                Syntax::Flag => (0, &['"', '\'', '`', ';', '|', '&']),
                _ if spaced => (1, &['"', '\'', '\\']),
                _ => (2, &['"', '\'', ',', ';', '&', '\\']),
            };
            let mut end = ends.end(text, i, set, stops);
            if spaced {
                // ... but not the next key of a line without blanks (`pw: x,role: admin`).
                static NEXT_KEY: Lazy<Regex> = Lazy::new(|| {
                    Regex::new(r"[,;&][A-Za-z_][A-Za-z0-9_.\-]*[ \t]*[:=]")
                        .expect("next-key pattern compiles")
                });
                if let Some(m) = NEXT_KEY.find(&text[i..end]) {
                    end = i + m.start();
                }
                if end > i + 1 && matches!(b[end - 1], b',' | b';') {
                    end -= 1;
                }
            }
            (end > i).then_some(Found {
                start: i,
                end,
                unquoted: true,
                match_end: end,
            })
        }
    }
}

/// The value a match stands for.
pub(super) fn locate(
    rule: &Rule,
    caps: &Captures<'_>,
    text: &str,
    ends: &mut ValueEnds,
) -> Option<Found> {
    let whole = caps.get(0)?;
    if rule.syntax != Syntax::Captured {
        return parse_value(text, whole.end(), rule.syntax, ends);
    }
    let found = |m: regex::Match<'_>, unquoted| Found {
        start: m.start(),
        end: m.end(),
        unquoted,
        match_end: whole.end(),
    };
    for g in ["secret", "vq1", "vq2", "vq3"] {
        if let Some(m) = caps.name(g) {
            return Some(found(m, false));
        }
    }
    if let Some(m) = caps.name("vu") {
        return Some(found(m, true));
    }
    Some(found(whole, false))
}

/// The run of token characters around `start..end` (so a placeholder tail such as `-####`
/// after a matched prefix is seen), at most [`MAX_VALUE_LEN`] bytes on either side.
pub(super) fn token_around(text: &str, start: usize, end: usize) -> &str {
    let b = text.as_bytes();
    let tokenish = |c: u8| c.is_ascii_alphanumeric() || b"_-#*~+=".contains(&c);
    let floor = start.saturating_sub(MAX_VALUE_LEN);
    let mut s = start;
    while s > floor && tokenish(b[s - 1]) {
        s -= 1;
    }
    let ceil = b.len().min(end + MAX_VALUE_LEN);
    let mut e = end;
    while e < ceil && tokenish(b[e]) {
        e += 1;
    }
    &text[s..e]
}
