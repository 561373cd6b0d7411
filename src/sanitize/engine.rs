//! The sanitizer and its passes: the rules that gated open run over the text, the accepted
//! spans become markers, and passes repeat until the output is stable.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::collections::BinaryHeap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::Input;
use regex::Regex;

use super::builder::SanitizerBuilder;
use super::check::Check;
use super::entropy::TextFacts;
use super::keys::{classify_key, KeyStrength};
use super::placeholder::{is_placeholder, TEMPLATE};
use super::rules::{Rule, ScanFn};
use super::value::{locate, ValueEnds, MAX_VALUE_LEN};
use super::MARKER_PREFIX;

/// The sanitizer. Cheap to clone (shared inside); counters are shared by clones.
#[derive(Clone)]
pub struct Sanitizer {
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for Sanitizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sanitizer")
            .field("rules", &self.inner.rules.len())
            .field("replacement", &self.inner.replacement)
            .finish_non_exhaustive()
    }
}

impl Default for Sanitizer {
    fn default() -> Self {
        Sanitizer::builder().build()
    }
}

pub(super) struct Inner {
    pub(super) rules: Vec<Rule>,
    /// Keyword index -> rules it gates.
    pub(super) gate: Vec<Vec<usize>>,
    /// The concrete DFA type (not `AhoCorasick`, whose automaton is behind a `dyn`), so the
    /// overlapping search compiles to a loop without dynamic calls.
    pub(super) prefilter: DFA,
    /// Rules gated by a byte scan.
    pub(super) scans: Vec<(usize, ScanFn)>,
    /// Rules that always run (user patterns).
    pub(super) always: Vec<usize>,
    /// Prefix owned by a detector -> index of that detector.
    pub(super) owned: Vec<(&'static str, usize)>,
    pub(super) allow: Vec<Regex>,
    pub(super) extra_keys: Vec<String>,
    pub(super) replacement: String,
    /// The replacement up to `{kind}` (e.g. `[REDACTED:`): values starting with it are
    /// markers, which keeps sanitizing idempotent.
    pub(super) marker_prefix: String,
    pub(super) counts: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    /// The work bound of a pass: units per byte of text, and a floor.
    pub(super) work: (usize, usize),
}

impl Inner {
    /// The default work bound.
    pub(super) const WORK: (usize, usize) = (WORK_PER_BYTE, WORK_FLOOR);
}

/// The markers already in a text, sorted by start, with the furthest end so far: whether a
/// span touches one is a binary search, not a walk over all of them.
struct MarkerRegions {
    regions: Vec<(usize, usize)>,
    max_end: Vec<usize>,
}

impl MarkerRegions {
    fn new(regions: Vec<(usize, usize)>) -> Self {
        let max_end = regions
            .iter()
            .scan(0, |m, &(_, e)| {
                *m = e.max(*m);
                Some(*m)
            })
            .collect();
        MarkerRegions { regions, max_end }
    }

    /// Whether `s..e` overlaps a marker.
    fn overlap(&self, s: usize, e: usize) -> bool {
        let k = self.regions.partition_point(|&(a, _)| a < e);
        k > 0 && self.max_end[k - 1] > s
    }
}

/// The work bound of one pass (see [`Sanitizer::sanitize_str`]): units per byte of the text,
/// and a floor for short texts. A unit is a byte that a rule's search goes over (from where
/// it starts to the end of its match) or that a value's check looks at, plus one per
/// candidate. Clean log lines cost a few units a byte; the worst shape found, candidates
/// nested in values just under `MAX_VALUE_LEN` (`key=key=...` in 1 KiB runs), about 130.
const WORK_PER_BYTE: usize = 256;
const WORK_FLOOR: usize = 1 << 20;

/// The kind of the marker that replaces the part of a text past the work bound.
const UNSCANNED: &str = "unscanned";

/// How many times at most [`Sanitizer::sanitize_str`] runs the rules over its own output
/// (a bound for adversarial input; real text is stable after the second pass).
const MAX_PASSES: usize = 8;

impl Sanitizer {
    /// The built-in rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder for a customised sanitizer.
    pub fn builder() -> SanitizerBuilder {
        SanitizerBuilder::default()
    }

    /// The marker for a kind, e.g. `[REDACTED:password]`.
    pub fn marker(&self, kind: &str) -> String {
        self.inner.replacement.replace("{kind}", kind)
    }

    pub(super) fn count(&self, kind: &str) {
        let mut counts = self.inner.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .entry(kind.to_owned())
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Redactions counted so far, per kind (shared by clones).
    pub fn redaction_counts(&self) -> BTreeMap<String, u64> {
        self.inner
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect()
    }

    /// Whether a field or key name names a secret (`password`, `db_pass`, `X-Api-Key`,
    /// `client_secret`), or suggests one (`hmac`, `signature_seed`, `user_auth`: their
    /// values are redacted only when they look random).
    pub fn is_secret_key(&self, key: &str) -> bool {
        self.classify(key).is_some()
    }

    /// [`classify_key`], after a cheap test: every secret key part contains one of the
    /// prefilter's keywords.
    pub(super) fn classify(&self, key: &str) -> Option<(KeyStrength, &'static str)> {
        let hit = self
            .inner
            .prefilter
            .try_find(&Input::new(key))
            .expect("an unanchored DFA supports search");
        if self.inner.extra_keys.is_empty() && hit.is_none() {
            return None;
        }
        classify_key(key, &self.inner.extra_keys)
    }

    pub(super) fn is_marker(&self, v: &str) -> bool {
        let p = &self.inner.marker_prefix;
        (!p.is_empty() && v.starts_with(p.as_str())) || v.starts_with(MARKER_PREFIX)
    }

    /// The byte ranges of the markers already in `text`.
    fn marker_regions(&self, text: &str) -> Vec<(usize, usize)> {
        let inner = &*self.inner;
        let prefix = inner.marker_prefix.as_str();
        if prefix.is_empty() || !text.contains(prefix) {
            return Vec::new();
        }
        let suffix = inner.replacement.split("{kind}").nth(1).unwrap_or_default();
        let b = text.as_bytes();
        text.match_indices(prefix)
            .filter_map(|(i, _)| {
                let mut j = i + prefix.len();
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'-')
                {
                    j += 1;
                }
                text[j..].starts_with(suffix).then(|| (i, j + suffix.len()))
            })
            .collect()
    }

    /// A value under a secret key that starts with a detector's prefix but does not have
    /// its format.
    pub(super) fn is_near_miss(&self, v: &str) -> bool {
        self.inner.owned.iter().any(|(prefix, rule)| {
            v.starts_with(prefix) && !self.inner.rules[*rule].regex.is_match(v)
        })
    }

    /// Redacts the secrets in `text`. Returns it borrowed when nothing was found.
    ///
    /// A redaction can uncover a candidate that a longer, rejected match hid (or turn a
    /// placeholder-looking value into a plain one), so the passes repeat until nothing
    /// changes (at most 8 passes, a bound for adversarial input; real text is stable after
    /// the second): sanitizing the output again changes nothing.
    ///
    /// The cost is linear in the length of `text`, on any input: each pass does at most
    /// 256 units of work per byte of `text` plus 2^20 (a unit is about one byte that a
    /// rule's search or a value's check goes over), and a value longer than 1 KiB is
    /// redacted or kept whole without being judged. A pass that reaches the bound stops
    /// where every rule has searched up to, and the rest of the text becomes
    /// `[REDACTED:unscanned]`: it is neither scanned slowly nor shipped unscanned. Real
    /// text stays far below the bound; it is there for input shaped to defeat the rules.
    pub fn sanitize_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.redact(text, true)
    }

    pub(super) fn redact<'a>(&self, text: &'a str, count: bool) -> Cow<'a, str> {
        let (Cow::Owned(mut out), cut) = self.pass(text, count) else {
            return Cow::Borrowed(text);
        };
        if cut {
            return Cow::Owned(out);
        }
        for _ in 1..MAX_PASSES {
            match self.pass(&out, count) {
                (Cow::Owned(next), cut) => {
                    out = next;
                    if cut {
                        break;
                    }
                }
                (Cow::Borrowed(_), _) => break,
            }
        }
        Cow::Owned(out)
    }

    /// One pass of every rule whose gate opened, and whether the work bound cut it short.
    fn pass<'a>(&self, text: &'a str, count: bool) -> (Cow<'a, str>, bool) {
        let Some(active) = self.open_gates(text) else {
            return (Cow::Borrowed(text), false);
        };
        let inner = &*self.inner;
        let markers = MarkerRegions::new(self.marker_regions(text));
        let mut ends = ValueEnds::default();
        let facts = TextFacts::default();
        let (per_byte, floor) = inner.work;
        let mut work = per_byte.saturating_mul(text.len()).saturating_add(floor);
        // Spans with the index of their rule: of two equal spans, the earlier rule names the
        // kind.
        let mut spans: Vec<(usize, usize, &'static str, usize)> = Vec::new();
        // Each active rule's next search position. The rule furthest behind goes first, so
        // that when the work runs out every rule has searched the text up to one place.
        let mut cursors: BinaryHeap<Reverse<(usize, usize)>> =
            active.iter().map(|i| Reverse((0, i))).collect();
        // For an active rule with a far alternative: the last place its far pattern starts.
        let far_last: Vec<(usize, Option<usize>)> = active
            .iter()
            .filter_map(|i| inner.rules[i].far.as_ref().map(|(last, _)| (i, last(text))))
            .collect();
        let mut cut = None;
        while let Some(Reverse((at, i))) = cursors.pop() {
            let rule = &inner.rules[i];
            let regex = match &rule.far {
                Some((_, without))
                    if far_last
                        .iter()
                        .any(|&(r, last)| r == i && last.is_none_or(|p| p < at)) =>
                {
                    without
                }
                _ => &rule.regex,
            };
            let caps = if at <= text.len() {
                regex.captures_at(text, at)
            } else {
                None
            };
            let Some(caps) = caps else {
                continue;
            };
            let whole = caps.get(0).expect("group 0 always matches");
            let found = locate(rule, &caps, text, &mut ends);
            // A value is looked at only up to MAX_VALUE_LEN (its end is remembered).
            let judged = found.map_or(0, |f| f.end - f.start);
            let cost = 1 + (whole.end() - at) + if judged <= MAX_VALUE_LEN { judged } else { 0 };
            if cost > work {
                cut = Some(at);
                break;
            }
            work -= cost;
            let mut next;
            match found.and_then(|f| self.accept(rule, &caps, text, f, &facts)) {
                Some(span) => {
                    // Text already redacted stays as it is (idempotence): a marker's
                    // kind or `:` must not become part of a new match, as a value or
                    // as a key (`[REDACTED:private_key]: x`).
                    let key = caps
                        .name("key")
                        .map_or((span.0, span.1), |k| (k.start(), k.end()));
                    if !markers.overlap(span.0, span.1) && !markers.overlap(key.0, key.1) {
                        spans.push((span.0, span.1, span.2, i));
                    }
                    next = found.map_or(whole.end(), |f| f.match_end.max(whole.end()));
                }
                None => {
                    // A rejected candidate must not hide the ones inside its value
                    // (`hmac="token": x`, `"key":"password=x"`): search again from just
                    // before the value, unless the value is a placeholder or template
                    // (`${file:/etc/creds.properties:key.password}`), which is kept whole.
                    // A value too long to judge is searched inside.
                    let (v, opaque) = found.map_or((whole.end(), true), |f| {
                        let v = &text[f.start..f.end];
                        let opaque =
                            v.len() <= MAX_VALUE_LEN && (is_placeholder(v) || TEMPLATE.is_match(v));
                        (f.start, opaque)
                    });
                    let after = found.map_or(whole.end(), |f| f.match_end.max(whole.end()));
                    next = if !opaque && v > whole.start() + 1 {
                        let mut b = v - 1;
                        while !text.is_char_boundary(b) {
                            b -= 1;
                        }
                        b
                    } else {
                        after
                    };
                }
            }
            if rule.check == Check::HighEntropy {
                // The closing quote may open the next quoted string; going back to the
                // value (as for the other rules) would find this match again.
                next = found.map_or(whole.end(), |f| f.end);
            }
            if whole.start() == whole.end() && next == whole.end() {
                // An empty match (user pattern): step over one character.
                next += text[next..].chars().next().map_or(1, char::len_utf8);
            }
            cursors.push(Reverse((next, i)));
        }
        if let Some(cut) = cut {
            spans.retain(|s| s.0 < cut);
        }
        if spans.is_empty() && cut.is_none() {
            return (Cow::Borrowed(text), false);
        }
        spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.3.cmp(&b.3)));
        let mut out = String::with_capacity(text.len());
        let mut pos = 0;
        let mut i = 0;
        while i < spans.len() {
            let (start, mut end, kind, _) = spans[i];
            if start < pos {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < spans.len() && spans[j].0 < end {
                end = end.max(spans[j].1);
                j += 1;
            }
            out.push_str(&text[pos..start]);
            out.push_str(&self.marker(kind));
            if count {
                self.count(kind);
            }
            pos = end;
            i = j;
        }
        match cut {
            Some(cut) => {
                out.push_str(&text[pos.min(cut)..cut]);
                out.push_str(&self.marker(UNSCANNED));
                if count {
                    self.count(UNSCANNED);
                }
            }
            None => out.push_str(&text[pos..]),
        }
        (Cow::Owned(out), cut.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sanitizer whose passes may do `per_byte` units of work a byte, plus `floor`.
    fn with_work(per_byte: usize, floor: usize) -> Sanitizer {
        let mut s = Sanitizer::default();
        Arc::get_mut(&mut s.inner).expect("not shared yet").work = (per_byte, floor);
        s
    }

    #[test]
    fn past_the_work_bound_the_rest_is_a_marker() {
        let s = with_work(1, 256);
        let text = format!(
            "password=hunter2x {} token=Zq8vT2mK9pL4",
            "monkey=".repeat(200)
        );
        let out = s.sanitize_str(&text);
        assert!(
            out.starts_with("password=[REDACTED:connection_string_password] monkey="),
            "{out}"
        );
        assert!(out.ends_with("[REDACTED:unscanned]"), "{out}");
        assert!(
            !out.contains("hunter2x") && !out.contains("Zq8vT2mK9pL4"),
            "{out}"
        );
        assert!(out.len() < text.len());
        assert_eq!(s.redaction_counts()["unscanned"], 1);
        // The default bound is far above what the same text costs.
        let whole = Sanitizer::default().sanitize_str(&text).into_owned();
        assert!(whole.contains(&"monkey=".repeat(200)), "{whole}");
        assert!(whole.ends_with(" token=[REDACTED:token]"), "{whole}");
        assert!(
            !whole.contains("unscanned") && !whole.contains("hunter2x"),
            "{whole}"
        );
    }

    #[test]
    fn marker_regions_answer_like_a_walk_over_all() {
        let regions = vec![(2, 9), (4, 6), (12, 20), (30, 31)];
        let m = MarkerRegions::new(regions.clone());
        for s in 0..35 {
            for e in s..36 {
                let walk = regions.iter().any(|&(a, b)| s < b && a < e);
                assert_eq!(m.overlap(s, e), walk, "{s}..{e}");
            }
        }
    }
}
