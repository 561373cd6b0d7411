//! The high-entropy rule (detect-secrets' high-entropy strings): Shannon entropy, the
//! random-looking test of the key rules, the rule's byte-scan gate, and the labels that
//! exempt a quoted value (identifiers, hashes, versions, public JSON Web Key members).

use std::cell::OnceCell;

use super::keys::{
    classify_key, is_descriptive_key, is_key_byte, key_words, MAX_KEY_LEN, NOT_SECRET_KEY_PARTS,
};
use super::placeholder::looks_fake;
use super::rules::KEY_GATE;

/// Shannon entropy of the bytes, in bits per byte.
pub(super) fn entropy(b: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &c in b {
        counts[c as usize] += 1;
    }
    let len = b.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

/// A value that looks like key material: long enough, one token of a base64/hex/url-safe
/// alphabet, letters and digits mixed, high entropy.
pub(super) fn looks_random(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 16
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"+/=_-.~%".contains(c))
        && b.iter().any(u8::is_ascii_digit)
        && b.iter().any(u8::is_ascii_alphabetic)
        && entropy(b) >= 3.5
}

/// Shortest quoted string the high-entropy rule looks at (shorter hex is span ids, short
/// hashes and colours).
const MIN_RANDOM_LEN: usize = 20;

const fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-')
}

/// Key material in a string of its own (detect-secrets' high-entropy strings, with its
/// thresholds): hex above 3.0 bits per character, or the base64 / url-safe alphabet above
/// 4.5, at least [`MIN_RANDOM_LEN`] long, with letters and digits. Runs of the alphabet
/// (`ABCDEFGHIJ...`) and subresource-integrity hashes (`sha512-...`) are not secrets.
fn is_high_entropy(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() < MIN_RANDOM_LEN || is_uuid(b) {
        return false;
    }
    let (mut digit, mut alpha, mut hex) = (false, false, true);
    let mut run = 1;
    for (i, &c) in b.iter().enumerate() {
        if !is_base64_byte(c) {
            return false;
        }
        digit |= c.is_ascii_digit();
        alpha |= c.is_ascii_alphabetic();
        hex &= c.is_ascii_hexdigit();
        // Ten characters in a row that follow each other in ASCII: an alphabet, not a key.
        run = if i > 0 && c == b[i - 1].wrapping_add(1) {
            run + 1
        } else {
            1
        };
        if run >= 10 {
            return false;
        }
    }
    if !digit || !alpha {
        return false;
    }
    if hex {
        return entropy(b) > 3.0;
    }
    let integrity = ["sha1-", "sha256-", "sha384-", "sha512-", "md5-"]
        .iter()
        .any(|p| b[..p.len()].eq_ignore_ascii_case(p.as_bytes()));
    !integrity && entropy(b) > 4.5
}

/// The high-entropy rule's verdict on a value: [`is_high_entropy`] and not a placeholder
/// ([`looks_fake`]). Its gate tests only the first (the label check is cheaper than the
/// placeholder test).
pub(super) fn is_random_secret(v: &str) -> bool {
    is_high_entropy(v) && !looks_fake(v)
}

/// `8-4-4-4-12` hex digits.
fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The gate of the high-entropy rule: a quoted (or `\"`-quoted) string that
/// [`is_high_entropy`] and whose label does not exempt it (so that quoted trace ids and
/// hashes cost a scan, not a regex run).
pub(super) fn quoted_random_scan(text: &str) -> bool {
    static BASE64: [bool; 256] = {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 256 {
            t[c] = is_base64_byte(c as u8);
            c += 1;
        }
        t
    };
    let b = text.as_bytes();
    let is64 = |i: usize| BASE64[usize::from(b[i])];
    let facts = TextFacts::default();
    // Runs of the alphabet at least MIN_RANDOM_LEN long, found by probing the last byte of
    // a window (a miss skips the whole window; log lines are mostly short runs). `i` is
    // always the start of a run or just after a byte outside the alphabet.
    let mut i = 0;
    while i + MIN_RANDOM_LEN <= b.len() {
        let j = i + MIN_RANDOM_LEN - 1;
        if !is64(j) {
            i = j + 1;
            continue;
        }
        let mut k = j;
        while k > i && is64(k - 1) {
            k -= 1;
        }
        if k > i {
            i = k;
            continue;
        }
        let mut e = j + 1;
        while e < b.len() && is64(e) {
            e += 1;
        }
        if i > 0
            && matches!(b[i - 1], b'"' | b'\'')
            && matches!(b.get(e), Some(b'"' | b'\'' | b'\\'))
            && is_high_entropy(&text[i..e])
            && !exempt_quoted(text, i - 1, &[], &facts)
        {
            return true;
        }
        i = e + 1;
    }
    false
}

/// How a quoted value is labelled (see [`label_before`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Label<'a> {
    /// Assigned: `key: "v"`, `key = "v"`, `"key": "v"`, ...
    Assigned(&'a str),
    /// A word just before it, without a separator: `sha256 "v"` (Homebrew), `commit "v"`.
    Juxtaposed(&'a str),
}

/// The label a quoted value starting at `q` (its opening quote) is assigned to: `key: "v"`,
/// `"key": "v"`, `key = "v"`, `key => "v"`, `['key'] = "v"`; for an item of a list
/// (`"ids": ["a", "b"]`) the list's label; else the identifier just before it, after
/// blanks (`sha256 "v"`). `None` when the value stands alone.
fn label_before(text: &str, q: usize) -> Option<Label<'_>> {
    let b = text.as_bytes();
    let blanks = |mut i: usize| {
        while i > 0 && matches!(b[i - 1], b' ' | b'\t') {
            i -= 1;
        }
        i
    };
    // The value's own wrapping: a weak ETag's `W/`, and the quote of a JSON string around
    // an escaped-quoted value (`"ETag":"\"v\""`).
    let mut i = q;
    if i >= 2 && &b[i - 2..i] == b"W/" {
        i -= 2;
    }
    while i > 0 && q - i < 4 && matches!(b[i - 1], b'"' | b'\'' | b'\\') {
        i -= 1;
    }
    let wrapped = i;
    let mut i = blanks(i);
    let spaced = i < wrapped;
    if i > 0 && matches!(b[i - 1], b',' | b'[') {
        // Back to the list's `[` (bounded; a list does not span lines or objects).
        let floor = i.saturating_sub(1024);
        loop {
            if i <= floor {
                return None;
            }
            i -= 1;
            match b[i] {
                b'[' => break,
                // An item of the list (which may hold a marker's `]`): back over it whole.
                q @ (b'"' | b'\'') => match b[floor..i].iter().rposition(|&c| c == q) {
                    Some(p) => i = floor + p,
                    None => return None,
                },
                b']' | b'{' | b'}' | b'\n' | b'(' | b')' => return None,
                _ => {}
            }
        }
        i = blanks(i);
    }
    if i >= 2 && matches!(&b[i - 2..i], b"=>" | b":=") {
        i -= 2;
    } else if i >= 1 && matches!(b[i - 1], b':' | b'=') {
        i -= 1;
    } else if spaced {
        let end = i;
        let floor = end.saturating_sub(MAX_KEY_LEN);
        while i > floor && is_key_byte(b[i - 1]) {
            i -= 1;
        }
        return (i < end).then(|| Label::Juxtaposed(&text[i..end]));
    } else {
        return None;
    }
    i = blanks(i);
    if i > 0 && b[i - 1] == b']' {
        i -= 1;
    }
    if i > 0 && matches!(b[i - 1], b'"' | b'\'') {
        i -= 1;
        if i > 0 && b[i - 1] == b'\\' {
            i -= 1;
        }
    }
    let end = i;
    let floor = end.saturating_sub(MAX_KEY_LEN);
    while i > floor && (is_key_byte(b[i - 1]) || b[i - 1] == b'#') {
        i -= 1;
    }
    (i < end).then(|| Label::Assigned(&text[i..end]))
}

/// The members of a JSON Web Key that hold public key material (`n`, `e` of RSA, `x`, `y`
/// of EC): random, and public.
pub(super) const JWK_PUBLIC_MEMBERS: &[&str] = &["n", "e", "x", "y", "x5c", "x5t", "x5t#S256"];

/// Label words (also as the end of a word or of the whole label: `SRCREV`, `ETag`) that name an
/// identifier, a hash, a version or a position: their values are random by design.
const IDENTIFIER_LABELS: &[&str] = &[
    "id",
    "ids",
    "uid",
    "uuid",
    "guid",
    "oid",
    "sha",
    "sha1",
    "sha256",
    "sha384",
    "sha512",
    "md5",
    "crc",
    "hash",
    "hashes",
    "digest",
    "checksum",
    "chksum",
    "sum",
    "etag",
    "match",
    "rev",
    "revision",
    "commit",
    "version",
    "build",
    "ref",
    "trace",
    "traceparent",
    "span",
    "parent",
    "request",
    "correlation",
    "causation",
    "integrity",
    "fingerprint",
    "thumbprint",
    "serial",
    "nonce",
    "cursor",
    "page",
    "offset",
    "object",
    "tree",
    // Abbreviations of a request or transaction id; the commits a ref moved between
    // (`"before"` / `"after"` of a push event).
    "req",
    "tx",
    "txn",
    "before",
    "after",
    // A reference (a locked VCS revision in `composer.lock`), and keys that are identifiers
    // of a request, a cache entry or a partition, not credentials.
    "reference",
    "idempotency",
    "dedup",
    "cache",
    "partition",
    "routing",
];

/// Label words that only say how a value is encoded: exempt like [`IDENTIFIER_LABELS`]
/// unless the label also says "key", "secret", ...
const ENCODING_LABELS: &[&str] = &["b64", "base64", "blob"];

/// What the high-entropy rule looks up once per text, not once per quoted value.
#[derive(Default)]
pub(super) struct TextFacts {
    /// The text holds a JSON Web Key (`"kty"`).
    jwk: OnceCell<bool>,
    /// The text holds an HTTP request line (` HTTP/1.1"`): an access log.
    access_log: OnceCell<bool>,
}

/// Whether the quoted value whose quote is at `q` is kept by the high-entropy rule: its
/// label is exempt, it is a public member of a JSON Web Key, it is a weak HTTP validator
/// (`W/"v"`), or it is a bare hex value in an access log (an ETag or request id: the
/// fields of an access log that are not labelled are the request line, the status, the
/// referer, the user agent and such ids).
pub(super) fn exempt_quoted(text: &str, q: usize, extra: &[String], facts: &TextFacts) -> bool {
    if text[..q].ends_with("W/") {
        return true;
    }
    let bare_hex = || {
        let b = text.as_bytes();
        let v = &b[q + 1..];
        let n = v.iter().take_while(|&&c| is_base64_byte(c)).count();
        v[..n].iter().all(|&c| c.is_ascii_hexdigit() || c == b'-')
            && *facts.access_log.get_or_init(|| text.contains(" HTTP/"))
    };
    match label_before(text, q) {
        Some(Label::Assigned(l)) => {
            exempt_label(l, extra)
                || (JWK_PUBLIC_MEMBERS.contains(&l)
                    && *facts.jwk.get_or_init(|| text.contains("\"kty\"")))
        }
        Some(Label::Juxtaposed(l)) => names_identifier(l) || bare_hex(),
        None => bare_hex(),
    }
}

/// Whether a label names an identifier, a hash, a version or a position
/// ([`IDENTIFIER_LABELS`]) and not a credential (a session id is one).
fn names_identifier(label: &str) -> bool {
    let words = key_words(label);
    let n: String = words.concat();
    let identifier = |w: &str| {
        IDENTIFIER_LABELS
            .iter()
            .chain(ENCODING_LABELS)
            .any(|l| w == *l || (l.len() > 2 && w.ends_with(l)))
    };
    !is_credential_label(&words) && (words.iter().any(|w| identifier(w)) || identifier(&n))
}

/// A session id is a bearer credential; `unseal_key_b64` names a key in base64.
fn is_credential_label(words: &[String]) -> bool {
    words
        .iter()
        .any(|w| matches!(w.as_str(), "session" | "sid"))
        || (words.iter().any(|w| ENCODING_LABELS.contains(&w.as_str()))
            && words.iter().any(|w| KEY_GATE.iter().any(|g| w.contains(g))))
}

/// Whether the label of a quoted value excludes it from the high-entropy rule: it names an
/// identifier or hash ([`IDENTIFIER_LABELS`]), describes a secret without holding one
/// (`secret_name`), says its value is public or fake, or names a secret (then the key rules
/// decide, so that a value they keep is not redacted by this one).
pub(super) fn exempt_label(label: &str, extra: &[String]) -> bool {
    let words = key_words(label);
    let n: String = words.concat();
    names_identifier(label)
        || (!is_credential_label(&words) && is_descriptive_key(&n))
        || NOT_SECRET_KEY_PARTS.iter().any(|p| n.contains(p))
        || classify_key(label, extra).is_some()
}

#[cfg(test)]
mod tests {
    use crate::sanitize::Sanitizer;
    use serde_json::json;

    #[test]
    fn high_entropy_strings() {
        let s = Sanitizer::default();
        let hex = "9c4e1f07b2d85a36e0f4c7a1b9d2e58f";
        let b64 = "Zk9xQ2w4VnRtUjdwTDNiWTZuSDFkRjBzSzJqTTV3";
        let redacted = [
            // A quoted string of its own, or under a label that says nothing.
            format!("String #1: \"short\"; String #2: \"{hex}\""),
            format!("'{hex}'"),
            format!("value = \"{b64}\""),
            format!(r#"{{"blob":"x","v":"{b64}"}}"#),
            format!(r#"{{\"v\":\"{hex}\"}}"#),
            format!(r#"items: ["a", "{hex}"]"#),
            format!(r#"sessionId: "{hex}""#),
            format!(r#"unseal_key_b64: "{b64}""#),
            // A word before it that is not an identifier; base64 in an access log.
            format!("using key \"{hex}\""),
            format!(r#""GET / HTTP/1.1" 200 5 "-" "{b64}""#),
        ];
        for text in &redacted {
            let out = s.sanitize_str(text);
            assert!(!out.contains(hex) && !out.contains(b64), "{text} -> {out}");
            assert!(out.contains("[REDACTED:high_entropy_string]"), "{out}");
        }
        let kept = [
            // Unquoted, or under a label that names an identifier, hash or version.
            format!("object {hex} stored"),
            format!(r#"{{"trace_id":"{hex}","span_id":"00f067aa0ba902b7"}}"#),
            format!(r#"ETag: "{hex}""#),
            format!(r#"If-None-Match: "{hex}""#),
            format!(r#"SRCREV_foo = "{hex}""#),
            format!(r#"{{"commitSha": "{hex}", "md5": "{hex}"}}"#),
            format!(r#"{{"request_ids": ["{hex}", "{hex}"]}}"#),
            format!(r#"request_ids: ["a]b", "{hex}"]"#),
            format!(r#"public_key = "{b64}""#),
            format!(r#"{{"ETag":"\"{hex}\""}}"#),
            format!(r#"If-None-Match: W/"{hex}""#),
            format!(r#"{{"body_b64":"{b64}"}}"#),
            format!(r#"{{"keys":[{{"kty":"RSA","e":"AQAB","n":"{b64}"}}]}}"#),
            // HTTP validators: a weak ETag anywhere, bare hex in an access log.
            format!(
                r#"10.0.0.1 - - [04/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 304 0 "-" "curl/8.4" W/"{hex}""#
            ),
            format!(r#"10.0.0.1 "GET /a.js HTTP/2.0" 200 512 "-" "curl/8.4" "{hex}" "5e15-{hex}""#),
            // An identifier word just before it (a Homebrew formula, prose); the commits of a
            // push event; a request id abbreviated.
            format!(r#"  sha256 "{hex}""#),
            format!(r#"checked out commit "{hex}""#),
            format!(r#"{{"before":"{hex}","after":"{hex}"}}"#),
            format!(r#"span closed req="{hex}" txn="{hex}""#),
            format!(r#"{{"reference": "{hex}", "idempotency_key": "{hex}"}}"#),
            // Too short, too regular, an alphabet, an integrity hash, a UUID.
            "\"0123456789abcdef0123\"".to_owned(),
            "\"c3VwZXIgc2VjcmV0IHZhbHVl\"".to_owned(),
            "\"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/\"".to_owned(),
            format!("\"sha512-{b64}\""),
            "\"0b7a3c2e-6f1d-4d2b-9a8e-51c4f7e2d913\"".to_owned(),
        ];
        for text in &kept {
            assert_eq!(s.sanitize_str(text), text.as_str());
        }
        // The same rule on JSON values, judged by their key.
        let mut v = json!({"v": hex, "list": [b64], "digest": hex, "ids": [hex], "n": "short",
            "jwk": {"kty": "EC", "x": b64}});
        s.sanitize_json(&mut v);
        assert_eq!(
            v,
            json!({
                "v": "[REDACTED:high_entropy_string]",
                "list": ["[REDACTED:high_entropy_string]"],
                "digest": hex,
                "ids": [hex],
                "n": "short",
                "jwk": {"kty": "EC", "x": b64},
            })
        );
    }
}
