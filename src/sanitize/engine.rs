//! The sanitizer and its passes: the rules that gated open run over the text, the accepted
//! spans become markers, and passes repeat until the output is stable.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::Input;
use regex::Regex;

use super::builder::SanitizerBuilder;
use super::check::Check;
use super::keys::{classify_key, KeyStrength};
use super::placeholder::{is_placeholder, TEMPLATE};
use super::rules::{Rule, ScanFn};
use super::value::locate;
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
}

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
    pub fn sanitize_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.redact(text, true)
    }

    pub(super) fn redact<'a>(&self, text: &'a str, count: bool) -> Cow<'a, str> {
        let Cow::Owned(mut out) = self.pass(text, count) else {
            return Cow::Borrowed(text);
        };
        for _ in 1..MAX_PASSES {
            match self.pass(&out, count) {
                Cow::Owned(next) => out = next,
                Cow::Borrowed(_) => break,
            }
        }
        Cow::Owned(out)
    }

    /// One pass of every rule whose gate opened.
    fn pass<'a>(&self, text: &'a str, count: bool) -> Cow<'a, str> {
        let Some(active) = self.open_gates(text) else {
            return Cow::Borrowed(text);
        };
        let inner = &*self.inner;
        let markers = self.marker_regions(text);
        let mut spans: Vec<(usize, usize, &'static str)> = Vec::new();
        for i in active.iter() {
            let rule = &inner.rules[i];
            let mut at = 0;
            while at <= text.len() {
                let Some(caps) = rule.regex.captures_at(text, at) else {
                    break;
                };
                let whole = caps.get(0).expect("group 0 always matches");
                let found = locate(rule, &caps, text);
                match found.and_then(|f| self.accept(rule, &caps, text, f)) {
                    Some(span) => {
                        // Text already redacted stays as it is (idempotence): a marker's
                        // kind or `:` must not become part of a new match, as a value or
                        // as a key (`[REDACTED:private_key]: x`).
                        let key = caps
                            .name("key")
                            .map_or((span.0, span.1), |k| (k.start(), k.end()));
                        let in_marker =
                            |(s, e): (usize, usize)| markers.iter().any(|&(a, b)| s < b && a < e);
                        if !in_marker((span.0, span.1)) && !in_marker(key) {
                            spans.push(span);
                        }
                        at = found.map_or(whole.end(), |f| f.match_end.max(whole.end()));
                    }
                    None => {
                        // A rejected candidate must not hide the ones inside its value
                        // (`hmac="token": x`, `"key":"password=x"`): search again from just
                        // before the value, unless the value is a placeholder or template
                        // (`${file:/etc/creds.properties:key.password}`), which is kept whole.
                        let (v, opaque) = found.map_or((whole.end(), true), |f| {
                            let v = &text[f.start..f.end];
                            (f.start, is_placeholder(v) || TEMPLATE.is_match(v))
                        });
                        let after = found.map_or(whole.end(), |f| f.match_end.max(whole.end()));
                        at = if !opaque && v > whole.start() + 1 {
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
                    at = found.map_or(whole.end(), |f| f.end);
                }
                if whole.start() == whole.end() && at == whole.end() {
                    // An empty match (user pattern): step over one character.
                    at += text[at..].chars().next().map_or(1, char::len_utf8);
                }
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut out = String::with_capacity(text.len());
        let mut pos = 0;
        let mut i = 0;
        while i < spans.len() {
            let (start, mut end, kind) = spans[i];
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
        out.push_str(&text[pos..]);
        Cow::Owned(out)
    }
}
