//! The verdict on one match: the checks a rule's value must pass before it is redacted.

use regex::Captures;

use super::engine::Sanitizer;
use super::entropy::{exempt_quoted, is_random_secret, looks_random, TextFacts};
use super::keys::{classify_key, in_resource_name, is_password_like};
use super::placeholder::{
    is_cli_placeholder, is_identifier, is_path, is_placeholder, is_reference, key_value_ok,
    looks_fake,
};
use super::rules::{Rule, AUTH_SCHEMES};
use super::value::{token_around, trim_unbalanced, Found, MAX_VALUE_LEN};
use super::MARKER_PREFIX;

/// How a match is validated before it is redacted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Check {
    /// A prefix-anchored token: the placeholder check runs over the whole token around the
    /// match (so `xoxp-1-2-3-####` is a placeholder), and the match must be `min_len` long.
    Token { min_len: usize },
    /// A webhook URL: the placeholder check looks at the last path segment only.
    WebhookUrl,
    /// A PEM private key block: no heuristics (DER in base64 is full of `AAAA`).
    Pem,
    /// A credential after a scheme or a header name (`Bearer x`, `Authorization: Token x`):
    /// the last word is checked too, and lowercase prose is not a credential.
    Credential,
    /// A password inside a URL, connection string or JAAS line, or after a command-line
    /// client's password flag (`mysql -p`, `sshpass -p`, `redis-cli -a`).
    Password,
    /// `-u user:pass` / `--user user:pass` on a command line (curl's placeholder list).
    CliUser,
    /// An identifier and its value (`key=value`, `"key": "value"`, `--key value`, ...).
    KeyValue,
    /// A secret word followed by a quoted value (`password 'x'`, `shared value 'x'`).
    ContextWord,
    /// A quoted run of the hex or base64 alphabet with high entropy (detect-secrets'
    /// high-entropy strings), unless its label names an identifier or a hash.
    HighEntropy,
    /// A user pattern: only the marker, placeholder and allowlist checks.
    Extra,
}

impl Sanitizer {
    /// Decides on one match: the span to redact and its kind, or `None`. `facts` remembers
    /// what the high-entropy rule looked up in the text (see [`exempt_quoted`]).
    ///
    /// A value longer than [`MAX_VALUE_LEN`] is not judged: a key rule redacts it whole when
    /// its key names a secret (else keeps it), every other rule redacts it whole (the
    /// high-entropy rule, whose candidates never overlap, still measures it). No placeholder,
    /// reference or word of prose is that long, and judging every nested candidate of a long
    /// value (`k=k=k=...`) would cost the square of its length.
    pub(super) fn accept(
        &self,
        rule: &Rule,
        caps: &Captures<'_>,
        text: &str,
        found: Found,
        facts: &TextFacts,
    ) -> Option<(usize, usize, &'static str)> {
        let unquoted = found.unquoted;
        let mut start = found.start;
        let mut value = &text[found.start..found.end];
        // A key rule's key decides first: it is short, every check below can only reject,
        // and most candidates of a long run (`monkey=monkey=...`) fall here.
        let key_class = match rule.check {
            Check::KeyValue => Some(classify_key(
                caps.name("key").map_or("", |k| k.as_str()),
                &self.inner.extra_keys,
            )?),
            _ => None,
        };
        if value.len() > MAX_VALUE_LEN && rule.check != Check::HighEntropy {
            if value.trim().is_empty()
                || self.is_marker(value)
                || self.inner.allow.iter().any(|a| a.is_match(value))
            {
                return None;
            }
            let kind = key_class.map_or(rule.kind, |(_, kind)| kind);
            let lead = value.len() - value.trim_start().len();
            return Some((start + lead, found.end, kind));
        }
        if unquoted {
            value = trim_unbalanced(value);
        }
        let end = start + value.len();
        if value.trim().is_empty()
            || self.is_marker(value)
            || (value.contains(MARKER_PREFIX) && value.len() < 64)
        {
            return None;
        }
        let kind = match rule.check {
            Check::Token { min_len } => {
                if value.len() < min_len || looks_fake(token_around(text, start, end)) {
                    return None;
                }
                rule.kind
            }
            Check::WebhookUrl => {
                let tail = value.rsplit('/').find(|s| !s.is_empty()).unwrap_or(value);
                if looks_fake(tail) {
                    return None;
                }
                rule.kind
            }
            Check::Pem => rule.kind,
            Check::Credential => {
                let tail = value.rsplit(char::is_whitespace).next().unwrap_or(value);
                // Lowercase words and identifiers (`authentication`, `expires_in=`) are
                // prose, not credentials.
                let prose = tail
                    .trim_end_matches('=')
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-');
                let scheme = AUTH_SCHEMES.contains(&value.to_ascii_lowercase().as_str());
                if looks_fake(value) || looks_fake(tail) || prose || scheme {
                    return None;
                }
                rule.kind
            }
            Check::Password => {
                let user = caps.name("user").map_or("", |u| u.as_str());
                // `postgres://user:password@localhost` in usage text (curl's list), and
                // `password=password)`, which passes a variable on.
                let word = matches!(
                    trim_unbalanced(value).to_ascii_lowercase().as_str(),
                    "password" | "passwd" | "pass" | "pwd"
                );
                if word
                    || looks_fake(value)
                    || is_path(value)
                    || is_reference(value)
                    || user == value
                {
                    return None;
                }
                rule.kind
            }
            Check::CliUser => {
                let user = caps.name("user").map_or("", |u| u.as_str());
                if is_cli_placeholder(user, value) {
                    return None;
                }
                rule.kind
            }
            Check::KeyValue => {
                let key = caps.name("key").map_or("", |k| k.as_str());
                // `arn:aws:secretsmanager:eu-west-1:...`: a name, not `key: value`.
                let key_start = caps.name("key").map_or(start, |k| k.start());
                // `https://x-access-token:<t>@host` is a URL's user and password (the URL
                // rule's), not `key: value`; `password=password` passes a variable on.
                if in_resource_name(text, key_start)
                    || (text[..key_start].ends_with("://") && value.contains('@'))
                    || value.eq_ignore_ascii_case(key)
                {
                    return None;
                }
                let (strength, kind) = key_class?;
                let password_like = is_password_like(key);
                // `Authorization: Bearer x`: the scheme alone is not the credential (the
                // header rules take the whole of it).
                let scheme =
                    unquoted && AUTH_SCHEMES.contains(&value.to_ascii_lowercase().as_str());
                // `a.password= b.password=`, `secretKeyRef: name: x`: the "value" is the
                // next key (a trailing `=` only counts for a secret key: base64 ends so).
                let next_key = unquoted
                    && value
                        .strip_suffix(':')
                        .or_else(|| {
                            value
                                .strip_suffix('=')
                                .filter(|k| classify_key(k, &[]).is_some())
                        })
                        .is_some_and(is_identifier);
                // `Set-Cookie: lang=en; Path=/`: judge the first cookie's own value.
                let (judged, judged_unquoted) = match value.split_once('=') {
                    Some((name, v)) if kind == "cookie" && !name.is_empty() && !v.is_empty() => {
                        (v.split(';').next().unwrap_or(v), true)
                    }
                    _ => (value, unquoted),
                };
                if scheme
                    || next_key
                    || !key_value_ok(judged, strength, password_like, judged_unquoted)
                    || self.is_near_miss(value.trim())
                    || (unquoted && value.starts_with('-'))
                {
                    return None;
                }
                kind
            }
            Check::ContextWord => {
                let ctx = caps.name("ctx").map_or("", |c| c.as_str());
                let l = ctx.to_ascii_lowercase();
                let strong = l.starts_with("pass") || l == "pwd" || l.starts_with("identified");
                if looks_fake(value) || self.is_near_miss(value) {
                    return None;
                }
                if strong && !unquoted {
                    if value.bytes().all(|b| b.is_ascii_lowercase()) {
                        return None;
                    }
                    "password"
                } else if looks_random(value) {
                    if strong {
                        "password"
                    } else {
                        "secret"
                    }
                } else {
                    return None;
                }
            }
            Check::HighEntropy => {
                let quote = caps.get(0).map_or(start, |m| m.start());
                if exempt_quoted(text, quote, &self.inner.extra_keys, facts)
                    || !is_random_secret(value)
                {
                    return None;
                }
                rule.kind
            }
            Check::Extra => {
                if is_placeholder(value) {
                    return None;
                }
                rule.kind
            }
        };
        if self.inner.allow.iter().any(|a| a.is_match(value)) {
            return None;
        }
        // A quoted value keeps its quotes; leading blanks inside them stay too.
        let lead = value.len() - value.trim_start().len();
        start += lead;
        Some((start, end, kind))
    }
}
