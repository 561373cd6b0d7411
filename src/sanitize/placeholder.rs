//! Values that are not secrets even where a rule matched: placeholders and templates,
//! documentation examples, references to a secret, paths, dates, versions, class names,
//! and the verdict on a value under a secret key.

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::Input;
use once_cell::sync::Lazy;
use regex::Regex;

use super::entropy::looks_random;
use super::keys::{classify_key, is_key_byte, normalize_key, KeyStrength};

/// Template expressions: `${VAR}`, `${{ secrets.X }}`, `$(cmd)`, `{{ .x }}`, `%VAR%`, `<...>`.
pub(super) static TEMPLATE: Lazy<Regex> = Lazy::new(|| {
    Regex::new(
        r"\$\{\{?[ \t]*[A-Za-z0-9_.:/\-]*[ \t]*\}\}?|\$\([^()]*\)|\{\{[^{}]*\}\}|%[A-Z_][A-Z0-9_]*%|%\([A-Za-z_]+\)[sdr]|<[^<>]{1,80}>",
    )
    .expect("template pattern compiles")
});

/// Words that report on a secret instead of holding one (`"password": "required"`).
const STATUS_WORDS: &[&str] = &[
    "required", "missing", "invalid", "expired", "empty", "unset", "hidden", "masked", "present",
    "provided", "ok", "disabled", "enabled", "optional", "unknown", "default", "n/a", "none",
    "set", "not set", "revoked", "rotated", "todo", "tbd", "yes", "no",
];

/// Secret words used as the value of their own key (`token: 'token'`, `secret=SECRET`).
const SECRET_WORD_VALUES: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "pwd",
    "secret",
    "token",
    "apikey",
    "key",
    "value",
    "string",
    "credentials",
    "test",
];

/// A reference to a secret instead of the secret: `os.environ["X"]`, `getenv(`,
/// `process.env.DB_PASSWORD`, `settings.SECRET_KEY`, `DB_PASSWORD` (detect-secrets'
/// indirect references).
pub(super) fn is_reference(v: &str) -> bool {
    static CALL: Lazy<Regex> = Lazy::new(|| {
        Regex::new(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*[\[(]").expect("call pattern compiles")
    });
    static VARIABLE: Lazy<Regex> = Lazy::new(|| {
        Regex::new(r"^\$[a-z_][A-Za-z0-9_]*(?:->[A-Za-z_][A-Za-z0-9_]*)*$|^(?:[A-Za-z_][A-Za-z0-9_]*\.)+[A-Za-z_][A-Za-z0-9_]*$")
            .expect("variable pattern compiles")
    });
    if CALL.is_match(v) {
        return true;
    }
    let last = v.rsplit(['.', '>']).next().unwrap_or(v);
    // `$password`, `$this->password`, `self.password`, `settings.db_password`.
    if VARIABLE.is_match(v) && (v.starts_with('$') || classify_key(last, &[]).is_some()) {
        return true;
    }
    last.len() > 3
        && last
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && last.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && last.contains(['_', '-'])
        && classify_key(last, &[]).is_some()
}

/// Values that are clearly not secrets even under a secret-looking key.
pub(super) fn is_placeholder(v: &str) -> bool {
    let t = v.trim();
    let l = t.to_ascii_lowercase();
    l.is_empty()
        || matches!(
            l.as_str(),
            "true" | "false" | "null" | "none" | "nil" | "undefined" | "redacted" | "..."
        )
        || STATUS_WORDS.contains(&l.as_str())
        || l.starts_with("[redacted")
        || l.starts_with("${")
        || l.starts_with("$(")
        || l.starts_with("{{")
        || l.starts_with('<')
        || (t.starts_with('$')
            && t.len() > 1
            && t[1..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        || (l.starts_with('[') && l.ends_with(']'))
        || (l.starts_with('(') && l.ends_with(')'))
        || l.ends_with("...")
        || l.ends_with('\u{2026}')
        || (l.len() >= 3 && l.chars().all(|c| c == '*' || c == 'x' || c == '.'))
}

/// Whether `word` (lowercase) occurs in `v` (any case) as a word of its own or at the end
/// of a run (`example.com`, `my-example`, `AKIA...EXAMPLE`) rather than inside random text
/// (`...CYEXAMPLEKEY`).
fn has_doc_word(v: &str, word: &str) -> bool {
    let b = v.as_bytes();
    let w = word.as_bytes();
    (0..(b.len() + 1).saturating_sub(w.len())).any(|i| {
        if !b[i..i + w.len()].eq_ignore_ascii_case(w) {
            return false;
        }
        let before = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let j = i + w.len();
        let after = j == b.len() || !b[j].is_ascii_alphanumeric();
        before || after
    })
}

/// Values that are placeholders or documentation examples, not live secrets
/// (trufflehog's and gitleaks' false-positive lists).
pub(super) fn looks_fake(v: &str) -> bool {
    /// Placeholder fragments (ASCII case-insensitive), found in one pass.
    static FAKE: Lazy<DFA> = Lazy::new(|| {
        aho_corasick::dfa::Builder::new()
            .ascii_case_insensitive(true)
            .build([
                "xxxx",
                "****",
                "####",
                "aaaaaa",
                "00000",
                "tokenhere",
                "keyhere",
                "your_",
                "your-",
                "placeholder",
                "changeme",
                "changeit",
                "dummy",
                "replaceme",
                "replace_me",
                "replace-me",
                "fixme",
                "insert_",
                "insert-",
                "enter_",
                "enter-",
            ])
            .expect("placeholder words build an automaton")
    });
    if is_placeholder(v) {
        return true;
    }
    let fake = FAKE
        .try_find(&Input::new(v))
        .expect("an unanchored DFA supports search");
    fake.is_some()
        || has_doc_word(v, "example")
        || has_doc_word(v, "sample")
        || TEMPLATE.is_match(v)
}

/// `curl -u` passwords that are placeholders (gitleaks' curl allowlist).
pub(super) fn is_cli_placeholder(user: &str, pass: &str) -> bool {
    let p = pass.to_ascii_lowercase();
    looks_fake(pass)
        || looks_fake(user)
        || user == pass
        || matches!(
            p.as_str(),
            "changeit" | "changeme" | "pass" | "password" | "pwd" | "test" | "token" | "secret"
        )
}

/// `2024-06-11...`
fn is_date_like(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 10 && b[4] == b'-' && b[..4].iter().all(u8::is_ascii_digit)
}

/// `jjwt-jackson-0.11.2`, `v1.2.3`, `rc0.13.0`: an artifact or version, not a secret.
fn is_version_like(v: &str) -> bool {
    static VERSION: Lazy<Regex> = Lazy::new(|| {
        Regex::new(
            r"^(?:[A-Za-z][A-Za-z0-9_]*[-_.:])*[vV]?\d+\.\d+(?:\.\d+)*(?:[-+][A-Za-z0-9.]+)?$",
        )
        .expect("version pattern compiles")
    });
    VERSION.is_match(v)
}

/// `db.password`, `name`, `X-Api-Key`.
pub(super) fn is_identifier(v: &str) -> bool {
    v.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && v.bytes().all(is_key_byte)
}

/// `/var/lib/app`, `~/.aws/credentials`: a path (gitleaks' global allowlist), unless it
/// looks random.
pub(super) fn is_path(v: &str) -> bool {
    (v.starts_with('/') || v.starts_with("~/") || v.starts_with("./"))
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b))
        && !looks_random(v)
}

/// `org.apache.kafka.common.security.plain.PlainLoginModule`: a class name.
fn is_class_name(v: &str) -> bool {
    static CLASS: Lazy<Regex> = Lazy::new(|| {
        Regex::new(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+\.[A-Z][A-Za-z0-9_$]*$")
            .expect("class pattern compiles")
    });
    CLASS.is_match(v)
}

/// Whether a value under a key that names a secret is worth redacting.
/// Digits from which a number under a secret key is taken for the secret itself
/// (`api_key = 12345678901234`); shorter ones are counts, ports, limits (`token: 3`).
pub(super) const MIN_SECRET_DIGITS: usize = 8;

pub(super) fn key_value_ok(
    value: &str,
    strength: KeyStrength,
    password_like: bool,
    unquoted: bool,
) -> bool {
    let v = value.trim();
    if looks_fake(v) || is_date_like(v) || is_version_like(v) || is_path(v) || is_reference(v) {
        return false;
    }
    // `arn:aws:secretsmanager:...`: where a secret is kept, not the secret.
    if v.starts_with("arn:") {
        return false;
    }
    match strength {
        // `X-Hub-Signature-256: sha256=<hex>`: the digest of one payload, not a key.
        KeyStrength::Weak => {
            let l = v.to_ascii_lowercase();
            looks_random(v)
                && !["sha1=", "sha256=", "sha512=", "md5="]
                    .iter()
                    .any(|p| l.starts_with(p))
        }
        KeyStrength::Strong => {
            // `token: expired`, `secret: Unauthorized`: one short word is prose.
            let b = v.as_bytes();
            let prose_word = unquoted
                && v.len() <= 16
                && b.first().is_some_and(u8::is_ascii_alphabetic)
                && b[1..].iter().all(u8::is_ascii_lowercase);
            let numeric = v.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            let word = normalize_key(v);
            !(prose_word
                || SECRET_WORD_VALUES.contains(&word.as_str())
                || is_class_name(v)
                || v.chars().count() < 3
                || v.starts_with('{')
                || (numeric && !password_like && v.len() < MIN_SECRET_DIGITS))
        }
    }
}
