//! Key rules: whether a key name names a secret (strongly, or only weakly: then the value
//! must look random), which kind it names, and key names that only describe a secret.

pub(super) fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Identifiers longer than this are not keys; the bound keeps the gate checks linear on
/// long runs of keywords (`keykeykey...`).
pub(super) const MAX_KEY_LEN: usize = 128;

/// Key-name fragments (after lowercasing and removing separators) that mark a secret.
const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "credential",
    "creds",
    "privatekey",
    "privkey",
    "accesskey",
    "sessionkey",
    "cookie",
    "saslusername",
    "oauthbearerconfig",
    "jaasconfig",
    "keypem",
    "accountkey",
    "sharedkey",
    "authkey",
    "signingkey",
    "encryptionkey",
    "masterkey",
    "clientkey",
    "servicekey",
    "databasekey",
    "dbkey",
    "subscriptionkey",
    "functionkey",
    "functionskey",
    "appkey",
    "applicationkey",
    "licensekey",
    "adminkey",
    "serverkey",
];

/// Key words (whole words of the key: `pin`, `user_pin`, `pinCode`, `otp_code`, not
/// `spinner`, `shipping`, `topic`) that name a PIN or a one-time code, with the kind each
/// names. Their value is a secret even when it is a short number.
const CODE_WORDS: &[(&str, &str)] = &[
    ("pin", "pin"),
    ("otp", "otp"),
    ("totp", "otp"),
    ("hotp", "otp"),
];

/// The kind of PIN or one-time code a key names (see [`CODE_WORDS`]).
fn code_kind(words: &[String]) -> Option<&'static str> {
    words.iter().find_map(|w| {
        CODE_WORDS
            .iter()
            .find(|(c, _)| w == c)
            .map(|&(_, kind)| kind)
    })
}

/// Whether a key names a password (`password`, `db_pass`, `pwd`) or a PIN or one-time code
/// (`pin`, `otp_code`), whose value is the secret even when it is a short number.
pub(super) fn is_password_like(raw: &str) -> bool {
    let n = normalize_key(raw);
    n.contains("pass") || n.contains("pwd") || code_kind(&key_words(raw)).is_some()
}

/// Key fragments that look secret but are not: counts, limits, tokenizers, public keys, and
/// keys that say their value is a fake (`fakeToken`, `mock_secret`, `non_matching_key`).
pub(super) const NOT_SECRET_KEY_PARTS: &[&str] = &[
    "tokenizer",
    "tokencount",
    "tokensused",
    "maxtokens",
    "public",
    "publishable",
    "pubkey",
    "passwordless",
    "nonmatching",
    "fake",
    "mock",
    "dummy",
    "example",
    "sample",
    "bogus",
    "secretary",
    "pagetoken",
    "nexttoken",
    "continuationtoken",
];

/// Words ending in `pass` that are not passwords.
const NOT_PASS_WORDS: &[&str] = &[
    "bypass",
    "compass",
    "surpass",
    "overpass",
    "underpass",
    "trespass",
    "encompass",
];

/// Words that suggest a secret only when the value looks random (HMAC keys, seeds,
/// signatures).
const WEAK_KEY_PARTS: &[&str] = &["hmac", "seed", "signature", "signing"];

/// How strongly a key name suggests its value is a secret.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum KeyStrength {
    /// Any value that is not a placeholder is redacted.
    Strong,
    /// Only a random-looking value is redacted.
    Weak,
}

/// Splits an identifier into lowercase words: at separators and camelCase boundaries
/// (`X-Internal-Signature-Seed`, `mySecretString`, `APIKey` -> `api`, `key`).
pub(super) fn key_words(raw: &str) -> Vec<String> {
    let chars: Vec<char> = raw.chars().collect();
    let mut words = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_uppercase() && !cur.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                words.push(std::mem::take(&mut cur));
            }
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

pub(super) fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn key_kind(normalized: &str) -> &'static str {
    if normalized.contains("pass") || normalized.contains("pwd") {
        "password"
    } else if normalized.contains("token") {
        "token"
    } else if normalized.contains("authorization") {
        "authorization"
    } else if normalized.contains("cookie") {
        "cookie"
    } else if normalized.contains("privatekey") || normalized.contains("pem") {
        "private_key"
    } else if normalized.contains("credential") || normalized.contains("creds") {
        "credential"
    } else if normalized.contains("key") {
        "api_key"
    } else {
        "secret"
    }
}

/// Key names that describe a secret without holding one (`token_type`, `credentials_id`,
/// `access_token_url`, `secret_length`).
pub(super) fn is_descriptive_key(normalized: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "id",
        "ids",
        "name",
        "type",
        "count",
        "length",
        "len",
        "size",
        "ttl",
        "expiry",
        "expires",
        "expiresat",
        "expiresin",
        "expiration",
        "changed",
        "change",
        "changedat",
        "set",
        "enabled",
        "required",
        "policy",
        "url",
        "uri",
        "endpoint",
        "path",
        "file",
        "dir",
        "location",
        "provider",
        "algo",
        "algorithm",
        "hash",
        "method",
        "mode",
        "scheme",
        "format",
        "version",
        "header",
        "stdin",
        "prefix",
        "suffix",
        "domain",
        "last4",
        "arn",
        "source",
        "process",
        "hint",
        "masked",
        "preview",
        "fingerprint",
    ];
    SUFFIXES.iter().any(|s| normalized.ends_with(s))
}

/// Whether a key name names (or suggests) a secret, by the built-in key rules.
pub(crate) fn names_secret(key: &str) -> bool {
    classify_key(key, &[]).is_some()
}

/// Classifies a key name: `None` when it does not name a secret.
pub(super) fn classify_key(raw: &str, extra: &[String]) -> Option<(KeyStrength, &'static str)> {
    let words = key_words(raw);
    let n: String = words.concat();
    // The caller's own key names win over every heuristic.
    if extra.iter().any(|k| n.contains(k.as_str())) {
        return Some((KeyStrength::Strong, "secret"));
    }
    if n.is_empty() || NOT_SECRET_KEY_PARTS.iter().any(|p| n.contains(p)) || is_descriptive_key(&n)
    {
        return None;
    }
    let pass_word = words.iter().any(|w| {
        w == "pw" || w == "pass" || (w.ends_with("pass") && !NOT_PASS_WORDS.contains(&w.as_str()))
    });
    if pass_word {
        return Some((KeyStrength::Strong, "password"));
    }
    if let Some(kind) = code_kind(&words) {
        return Some((KeyStrength::Strong, kind));
    }
    if SECRET_KEY_PARTS.iter().any(|p| n.contains(p)) {
        return Some((KeyStrength::Strong, key_kind(&n)));
    }
    let auth_last = words.last().is_some_and(|w| w == "auth") && words.len() > 1;
    if auth_last || words.iter().any(|w| w == "sig") || WEAK_KEY_PARTS.iter().any(|p| n.contains(p))
    {
        return Some((KeyStrength::Weak, "secret"));
    }
    None
}

/// Whether the identifier starting at `at` is a segment of an `arn:` or `urn:` name.
pub(super) fn in_resource_name(text: &str, at: usize) -> bool {
    let b = text.as_bytes();
    let floor = at.saturating_sub(256);
    let mut s = at;
    while s > floor && !b[s - 1].is_ascii_whitespace() && !matches!(b[s - 1], b'"' | b'\'' | b'=') {
        s -= 1;
    }
    s < at
        && b[at - 1] == b':'
        && (b[s..].len() >= 4)
        && (b[s..s + 4].eq_ignore_ascii_case(b"arn:") || b[s..s + 4].eq_ignore_ascii_case(b"urn:"))
}

#[cfg(test)]
mod tests {
    use crate::sanitize::Sanitizer;

    #[test]
    fn key_classification() {
        let s = Sanitizer::default();
        for key in [
            "db_pass",
            "X-Api-Key",
            "clientSecret",
            "sasl.password",
            "storepass",
            "hmac",
            "pin",
            "user_pin",
            "pinCode",
            "userPIN",
            "otp",
            "otp_code",
            "totpCode",
        ] {
            assert!(s.is_secret_key(key), "{key}");
        }
        for key in [
            "passenger_count",
            "bypass",
            "token_url",
            "public_key",
            "monkey",
            "author",
            // `pin` and `otp` inside a word, or a key that describes the code.
            "spinner",
            "pinned",
            "shipping",
            "topic",
            "pinecone_index",
            "opinion",
            "hotpath",
            "pincode",
            "pin_length",
            "otp_enabled",
        ] {
            assert!(!s.is_secret_key(key), "{key}");
        }
    }
}
