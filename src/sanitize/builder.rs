//! The builder of a customised sanitizer and its configuration errors.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aho_corasick::MatchKind;
use regex::Regex;

use super::check::Check;
use super::engine::{Inner, Sanitizer};
use super::keys::normalize_key;
use super::rules::{builtin_rules, far_alternatives, Gate, Rule, Syntax, OWNED_PREFIXES, VALUE};
use super::DEFAULT_REPLACEMENT;

/// A sanitizer configuration error, with the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SanitizeConfigError {
    /// A pattern is not a valid regular expression.
    #[error("pattern `{pattern}` does not compile ({error}); use the syntax of the `regex` crate (no look-around)")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// The compiler's message.
        error: String,
    },
    /// The replacement format lacks `{kind}`.
    #[error("replacement `{0}` must contain `{{kind}}`, e.g. \"[REDACTED:{{kind}}]\"")]
    BadReplacement(String),
}

/// Builds a [`Sanitizer`] with extra patterns, key names, an allowlist or another
/// replacement format.
#[derive(Debug, Default)]
pub struct SanitizerBuilder {
    extra: Vec<(String, String)>,
    extra_keys: Vec<String>,
    allow: Vec<String>,
    replacement: Option<String>,
}

impl SanitizerBuilder {
    /// Adds a pattern: the whole match is redacted as `kind`, or only the capture group
    /// named `secret` when there is one. User patterns run on every string and skip only
    /// markers, placeholders and allowlisted values.
    pub fn extra_pattern(mut self, kind: &str, regex: &str) -> Result<Self, SanitizeConfigError> {
        Regex::new(regex).map_err(|e| SanitizeConfigError::BadPattern {
            pattern: regex.into(),
            error: e.to_string(),
        })?;
        self.extra.push((kind.into(), regex.into()));
        Ok(self)
    }

    /// Adds a key name whose values are always redacted (matched on the key with case and
    /// separators removed, so `x_ticket` also covers `X-Ticket-Value`).
    pub fn extra_secret_key(mut self, name: &str) -> Self {
        self.extra_keys.push(normalize_key(name));
        self
    }

    /// Never redacts matches of `regex` (for known-safe values that look secret).
    pub fn allow(mut self, regex: &str) -> Result<Self, SanitizeConfigError> {
        Regex::new(regex).map_err(|e| SanitizeConfigError::BadPattern {
            pattern: regex.into(),
            error: e.to_string(),
        })?;
        self.allow.push(regex.into());
        Ok(self)
    }

    /// Sets the replacement format; it must contain `{kind}`.
    pub fn replacement(mut self, format: &str) -> Result<Self, SanitizeConfigError> {
        if !format.contains("{kind}") {
            return Err(SanitizeConfigError::BadReplacement(format.into()));
        }
        self.replacement = Some(format.into());
        Ok(self)
    }

    /// Compiles the rules.
    pub fn build(self) -> Sanitizer {
        let mut rules: Vec<Rule> = builtin_rules()
            .into_iter()
            .map(|(kind, re, gate, check, syntax)| Rule {
                kind,
                syntax,
                regex: Regex::new(&re).expect("built-in patterns compile"),
                near: match gate {
                    Gate::KeywordsAt(_, f) => Some(f),
                    _ => None,
                },
                gate,
                check,
                far: None,
            })
            .collect();
        for (kind, last_start, without) in far_alternatives() {
            if let Some(rule) = rules.iter_mut().find(|r| r.kind == kind) {
                rule.far = Some((
                    last_start,
                    Regex::new(&without).expect("built-in patterns compile"),
                ));
            }
        }
        for (kind, re) in &self.extra {
            let kind: &'static str = Box::leak(kind.clone().into_boxed_str());
            rules.push(Rule {
                kind,
                regex: Regex::new(re).expect("checked in extra_pattern"),
                gate: Gate::Always,
                check: Check::Extra,
                near: None,
                syntax: Syntax::Captured,
                far: None,
            });
        }
        let mut extra_keywords: Vec<String> = Vec::new();
        for key in self.extra_keys.iter().filter(|k| !k.is_empty()) {
            // The key with any separators between its characters: `xticket` also matches
            // `X-Ticket` and `x_ticket`.
            let fuzzy: String = key
                .chars()
                .map(|c| regex::escape(&c.to_string()))
                .collect::<Vec<_>>()
                .join(r"[_.\- ]?");
            let re = format!(
                r#"(?P<key>[A-Za-z0-9_.\-]*(?i:{fuzzy})[A-Za-z0-9_.\-]*)(?:\\?["'])?[ \t]{{0,3}}(?::=|=>|=|:)[ \t]{{0,3}}{VALUE}"#
            );
            rules.push(Rule {
                kind: "secret",
                regex: Regex::new(&re).expect("escaped key compiles"),
                gate: Gate::Always,
                check: Check::KeyValue,
                near: None,
                syntax: Syntax::Captured,
                far: None,
            });
            extra_keywords.push(key.clone());
        }
        let mut keywords: Vec<String> = Vec::new();
        let mut gate: Vec<Vec<usize>> = Vec::new();
        let mut scans = Vec::new();
        let mut always = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            match r.gate {
                Gate::Keywords(kws) | Gate::KeywordsAt(kws, _) => {
                    for k in kws {
                        match keywords.iter().position(|x| x == k) {
                            Some(p) => gate[p].push(i),
                            None => {
                                keywords.push((*k).to_owned());
                                gate.push(vec![i]);
                            }
                        }
                    }
                }
                Gate::Scan(f) => scans.push((i, f)),
                Gate::Always => always.push(i),
            }
        }
        let prefilter = aho_corasick::dfa::Builder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&keywords)
            .expect("keywords build an automaton");
        let owned = OWNED_PREFIXES
            .iter()
            .filter_map(|(prefix, kind)| {
                rules
                    .iter()
                    .position(|r| r.kind == *kind)
                    .map(|i| (*prefix, i))
            })
            .collect();
        let replacement = self
            .replacement
            .unwrap_or_else(|| DEFAULT_REPLACEMENT.into());
        let marker_prefix = replacement
            .split("{kind}")
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut extra_keys = self.extra_keys;
        extra_keys.retain(|k| !k.is_empty());
        Sanitizer {
            inner: Arc::new(Inner {
                rules,
                gate,
                prefilter,
                scans,
                always,
                owned,
                allow: self
                    .allow
                    .iter()
                    .map(|a| Regex::new(a).expect("checked in allow"))
                    .collect(),
                extra_keys,
                replacement,
                marker_prefix,
                counts: Mutex::new(BTreeMap::new()),
                work: Inner::WORK,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sanitize::Secret;

    #[test]
    fn idempotent_and_configurable() {
        let s = Sanitizer::default();
        let once = s
            .sanitize_str("Authorization: Basic dXNlcjpwYXNz and password=abc")
            .into_owned();
        assert_eq!(s.sanitize_str(&once), once);
        let custom = Sanitizer::builder()
            .extra_pattern("ticket", r"TKT-(?P<secret>\d{6})")
            .unwrap()
            .allow("^hunter2$")
            .unwrap()
            .replacement("<{kind}>")
            .unwrap()
            .extra_secret_key("ticket_code")
            .build();
        assert_eq!(custom.sanitize_str("see TKT-123456"), "see TKT-<ticket>");
        assert_eq!(custom.sanitize_str("password=hunter2"), "password=hunter2");
        assert_eq!(
            custom.sanitize_str("X-Ticket-Code: Q7Z"),
            "X-Ticket-Code: <secret>"
        );
        let marked = custom
            .sanitize_str("password=Zq8vT2mK9 https://u:Zq8vT2mK9@h")
            .into_owned();
        assert_eq!(custom.sanitize_str(&marked), marked);
        assert!(Sanitizer::builder().replacement("***").is_err());
        assert!(Sanitizer::builder().extra_pattern("x", "(").is_err());
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "[REDACTED]");
    }
}
