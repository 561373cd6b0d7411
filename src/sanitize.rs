//! The secret sanitizer (SPEC §6): every string that leaves the process passes through it.
//!
//! Two kinds of rule:
//! - **key rules**: a value is redacted when its key names a secret (`password`,
//!   `db_password`, `OPENAI_API_KEY`, `sasl.password`, `X-Api-Key`, ...), in JSON objects at
//!   any depth and in `key=value`, `key: value`, `"key": "value"` text;
//! - **value detectors**: prefix-anchored patterns for provider API keys, cloud keys, VCS
//!   tokens, chat tokens and webhooks, payment keys, JWTs, bearer/basic credentials, PEM
//!   private keys (also JSON-escaped) and passwords inside URLs and connection strings.
//!
//! One Aho-Corasick pass over the literal keywords of every rule gates the regexes: text
//! with no candidate comes back borrowed, unchanged, after that single pass. Matches become
//! `[REDACTED:<kind>]`; the rest of the text is left byte for byte.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;
use serde_json::Value;

/// The default replacement format; `{kind}` is replaced by the kind of secret.
pub const DEFAULT_REPLACEMENT: &str = "[REDACTED:{kind}]";

const MARKER_PREFIX: &str = "[REDACTED";

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

struct Rule {
    kind: &'static str,
    regex: Regex,
    keywords: Vec<String>,
}

struct Inner {
    rules: Vec<Rule>,
    /// Keyword index -> rules it gates.
    gate: Vec<Vec<usize>>,
    prefilter: AhoCorasick,
    allow: Vec<Regex>,
    extra_keys: Vec<String>,
    replacement: String,
    counts: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

/// The sanitizer. Cheap to clone (shared inside); counters are shared by clones.
#[derive(Clone)]
pub struct Sanitizer {
    inner: Arc<Inner>,
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

/// Key-name fragments (after lowercasing and removing `_ - .`) that mark a secret.
const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "credential",
    "creds",
    "privatekey",
    "accesskey",
    "sessionkey",
    "cookie",
    "saslusername",
    "oauthbearerconfig",
    "jaasconfig",
    "keypem",
    "accountkey",
    "sharedaccesskey",
    "authkey",
    "signingkey",
    "encryptionkey",
    "masterkey",
];

/// Key fragments that look secret but are not (counts, limits, tokenizers).
const NOT_SECRET_KEY_PARTS: &[&str] = &["tokenizer", "tokencount", "tokensused", "maxtokens"];

fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
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
    } else if normalized.contains("credential") {
        "credential"
    } else if normalized.contains("key") {
        "api_key"
    } else {
        "secret"
    }
}

/// The key-name alternation used by the free-text key rule.
const KEY_NAME: &str = r"[A-Za-z0-9_.\-]*(?:[Pp][Aa][Ss][Ss](?:[Ww][Oo][Rr][Dd]|[Ww][Dd])|[Pp][Ww][Dd]|[Ss][Ee][Cc][Rr][Ee][Tt]|[Tt][Oo][Kk][Ee][Nn]|[Aa][Pp][Ii][_.\-]?[Kk][Ee][Yy]|[Cc][Rr][Ee][Dd][Ee][Nn][Tt][Ii][Aa][Ll][Ss]?|[Cc][Rr][Ee][Dd][Ss]|[Pp][Rr][Ii][Vv][Aa][Tt][Ee][_.\-]?[Kk][Ee][Yy]|[Aa][Cc][Cc][Ee][Ss][Ss][_.\-]?[Kk][Ee][Yy]|[Cc][Oo][Oo][Kk][Ii][Ee]|[Aa][Cc][Cc][Oo][Uu][Nn][Tt][Kk][Ee][Yy]|[Ss][Aa][Ss][Ll]\.[Uu][Ss][Ee][Rr][Nn][Aa][Mm][Ee]|[Jj][Aa][Aa][Ss]\.[Cc][Oo][Nn][Ff][Ii][Gg]|[Kk][Ee][Yy]\.[Pp][Ee][Mm]|[Oo][Aa][Uu][Tt][Hh][Bb][Ee][Aa][Rr][Ee][Rr]\.[Cc][Oo][Nn][Ff][Ii][Gg])[A-Za-z0-9_.\-]*";

fn builtin_rules() -> Vec<(&'static str, String, &'static [&'static str])> {
    let key_rule = format!(
        r#"(?P<key>{KEY_NAME})(?:\\?["'])?\s{{0,3}}(?:=|:|=>|:=)\s{{0,3}}(?:\\"(?P<v1>[^"\\]+)\\"|"(?P<v2>[^"]+)"|'(?P<v3>[^']+)'|(?P<v4>[^\s"',;&}}\]\)<>\\]+))"#
    );
    vec![
        ("private_key", r"-----BEGIN[ A-Z0-9_-]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]{32,}?-----END[ A-Z0-9_-]*PRIVATE KEY(?: BLOCK)?-----|(?:\\[nr]|[A-Za-z0-9+/=\s]){32,})".into(), &["-----begin"]),
        ("openai_api_key", r"sk-[A-Za-z0-9_\-]*T3BlbkFJ[A-Za-z0-9_\-]+".into(), &["t3blbkfj"]),
        ("anthropic_api_key", r"sk-ant-[a-z0-9]+-[A-Za-z0-9_\-]{20,}".into(), &["sk-ant-"]),
        ("google_api_key", r"AIza[0-9A-Za-z_\-]{35}".into(), &["aiza"]),
        ("gcp_oauth_token", r"ya29\.[0-9A-Za-z_\-]{20,}".into(), &["ya29."]),
        ("aws_access_key_id", r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b".into(), &["akia", "asia", "abia", "acca", "a3t"]),
        ("aws_secret_access_key", r#"(?i)aws[\w.\-]{0,30}?(?:secret|key|token|pass)[\w.\-]{0,20}?\\?["']?\s{0,3}(?:=|:|=>)\s{0,3}\\?["']?(?P<secret>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|$)"#.into(), &["aws"]),
        ("github_token", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36,255}\b|\bgithub_pat_[A-Za-z0-9_]{22,255}\b".into(), &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"]),
        ("gitlab_token", r"\bgl(?:pat|dt|ft|rt|cbt|ptt|oas|soat|agent)-[A-Za-z0-9_\-.]{20,}|GR1348941[A-Za-z0-9_\-]{20,}".into(), &["glpat-", "gldt-", "glft-", "glrt-", "glcbt-", "glptt-", "gloas-", "glsoat-", "glagent-", "gr1348941"]),
        ("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b".into(), &["npm_"]),
        ("pypi_token", r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}".into(), &["pypi-ageichlwas5vcmc"]),
        ("slack_token", r"\bxox[abeoprs]-[0-9A-Za-z\-]{10,}|\bxapp-\d-[A-Za-z0-9\-]{10,}|xoxe\.xox[bp]-\d-[A-Za-z0-9]{100,}".into(), &["xoxa-", "xoxb-", "xoxe", "xoxo-", "xoxp-", "xoxr-", "xoxs-", "xapp-"]),
        ("slack_webhook_url", r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_\-]{20,}".into(), &["hooks.slack.com"]),
        ("discord_webhook_url", r"discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_\-]+".into(), &["/api/webhooks/"]),
        ("discord_bot_token", r"\b[MNO][A-Za-z0-9_\-]{23,25}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,}".into(), &["."]),
        ("telegram_bot_token", r"(?:\b|bot)(?P<secret>\d{8,10}:[0-9A-Za-z_\-]{35})\b".into(), &[":"]),
        ("sendgrid_api_key", r"SG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{30,50}".into(), &["sg."]),
        ("twilio_api_key", r"\bSK[0-9a-fA-F]{32}\b".into(), &["sk"]),
        ("stripe_secret_key", r"\b[rs]k_(?:live|test|prod)_[A-Za-z0-9]{10,}".into(), &["sk_live_", "rk_live_", "sk_test_", "rk_test_", "sk_prod_", "rk_prod_"]),
        ("huggingface_token", r"\b(?:hf_|api_org_)[A-Za-z0-9]{34}\b".into(), &["hf_", "api_org_"]),
        ("mailchimp_api_key", r"\b[0-9a-f]{32}-us\d{1,2}\b".into(), &["-us"]),
        ("square_token", r"\b(?:EAAA|sq0atp-|sq0csp-)[A-Za-z0-9_\-]{22,60}".into(), &["eaaa", "sq0atp-", "sq0csp-"]),
        ("azure_ad_client_secret", r"(?:^|[^A-Za-z0-9_~.])(?P<secret>[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34})".into(), &["q~"]),
        ("databricks_token", r"\bdapi[a-f0-9]{32}\b".into(), &["dapi"]),
        ("shopify_token", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b".into(), &["shpat_", "shpca_", "shppa_", "shpss_"]),
        ("digitalocean_token", r"\bdo[opr]_v1_[a-f0-9]{64}\b".into(), &["_v1_"]),
        ("jwt", r"\b(?:eyJ|ewogIC|ewoid)[A-Za-z0-9_\-]{10,}={0,2}\.(?:eyJ|ewo)[A-Za-z0-9_\-]{10,}={0,2}(?:\.(?:[A-Za-z0-9_\-]{8,}={0,2})?)?".into(), &["eyj", "ewogic", "ewoid"]),
        ("bearer_token", r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)".into(), &["bearer"]),
        ("cli_basic_auth_password", r#"(?:\s-u|--user)\s+['"]?[^\s:'"]+:(?P<secret>[^\s'"]+)"#.into(), &["-u ", "--user"]),
        ("basic_auth", r"(?i)\bbasic\s+(?P<secret>[A-Za-z0-9+/]{8,}={0,3})".into(), &["basic"]),
        ("authorization", r#"(?i)\b(?:proxy-)?authorization\\?["']?\s{0,3}[:=]\s{0,3}\\?["']?(?P<secret>(?:[A-Za-z]+\s+)?[^\s"',;\\]{6,})"#.into(), &["authorization"]),
        ("api_key_header", r#"(?i)\b(?:x-[a-z\-]*)?(?:api-?key|private-token|x-auth-token|apikey)\\?["']?\s{0,3}:\s{0,3}\\?["']?(?P<secret>[^\s"',;\\]{6,})"#.into(), &["api-key", "apikey", "api_key", "private-token", "x-auth-token"]),
        ("url_password", r#"\b[a-zA-Z][a-zA-Z0-9+.\-]{1,20}://[^\s:/@"'<>]*:(?P<secret>[^\s@/"'<>]+)@"#.into(), &["://"]),
        ("connection_string_password", r#"(?i)(?:^|[;?&\s"'])(?:password|pwd|passwd)\s*=\s*(?P<secret>[^;&"'\s]+)"#.into(), &["password", "pwd", "passwd"]),
        ("jaas_password", r#"(?i)password\s*=\s*\\?"(?P<secret>[^"\\]+)\\?""#.into(), &["password"]),
        ("secret_key_value", key_rule, &["pass", "pwd", "secret", "token", "key", "credential", "cookie", "sasl.username", "jaas.config", "oauthbearer.config"]),
    ]
}

/// Values that are clearly not secrets even under a secret-looking key.
fn is_placeholder(v: &str) -> bool {
    let l = v.trim().to_ascii_lowercase();
    l.is_empty()
        || matches!(
            l.as_str(),
            "true" | "false" | "null" | "none" | "nil" | "undefined" | "redacted" | "<redacted>"
        )
        || l.starts_with(MARKER_PREFIX.to_ascii_lowercase().as_str())
        || l.starts_with("${")
        || l.starts_with("{{")
        || l.starts_with('$')
            && v.trim()[1..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        || (l.starts_with('<') && l.ends_with('>'))
        || (l.len() >= 3 && l.chars().all(|c| c == '*' || c == 'x'))
}

/// Values that are placeholders or documentation examples, not live secrets
/// (trufflehog's and gitleaks' false-positive lists).
fn looks_fake(v: &str) -> bool {
    let l = v.to_ascii_lowercase();
    const FAKE: &[&str] = &[
        "xxxx",
        "****",
        "####",
        "example",
        "aaaaaa",
        "00000",
        "sample",
        "<",
        "${",
        "$(",
        "tokenhere",
        "keyhere",
        "your_",
        "your-",
        "placeholder",
        "changeme",
        "dummy",
    ];
    FAKE.iter().any(|f| l.contains(f)) || is_placeholder(v)
}

/// Key names that describe a secret without holding one (`token_type`, `credentials_id`).
fn is_descriptive_key(normalized: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "id",
        "ids",
        "name",
        "type",
        "count",
        "length",
        "len",
        "ttl",
        "expiry",
        "expiresat",
        "expiresin",
        "changed",
        "change",
        "changedat",
        "set",
        "enabled",
        "required",
        "policy",
    ];
    SUFFIXES.iter().any(|s| normalized.ends_with(s))
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
    /// named `secret` when there is one.
    pub fn extra_pattern(mut self, kind: &str, regex: &str) -> Result<Self, SanitizeConfigError> {
        Regex::new(regex).map_err(|e| SanitizeConfigError::BadPattern {
            pattern: regex.into(),
            error: e.to_string(),
        })?;
        self.extra.push((kind.into(), regex.into()));
        Ok(self)
    }

    /// Adds a key name whose values are always redacted.
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
            .map(|(kind, re, kws)| Rule {
                kind,
                regex: Regex::new(&re).expect("built-in patterns compile"),
                keywords: kws.iter().map(|k| k.to_string()).collect(),
            })
            .collect();
        for (kind, re) in &self.extra {
            let kind: &'static str = Box::leak(kind.clone().into_boxed_str());
            rules.push(Rule {
                kind,
                regex: Regex::new(re).expect("checked in extra_pattern"),
                // No keyword: user patterns run on every string that reached the regexes,
                // and on every string at all (empty keyword list = always).
                keywords: Vec::new(),
            });
        }
        for key in &self.extra_keys {
            let re = format!(
                r#"(?i)(?P<key>[A-Za-z0-9_.\-]*{}[A-Za-z0-9_.\-]*)\\?["']?\s{{0,3}}(?:=|:)\s{{0,3}}\\?["']?(?P<secret>[^\s"',;&\\]+)"#,
                regex::escape(key)
            );
            rules.push(Rule {
                kind: "secret",
                regex: Regex::new(&re).expect("escaped key compiles"),
                keywords: vec![key.clone()],
            });
        }
        let mut keywords: Vec<String> = Vec::new();
        let mut gate: Vec<Vec<usize>> = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            for k in &r.keywords {
                match keywords.iter().position(|x| x == k) {
                    Some(p) => gate[p].push(i),
                    None => {
                        keywords.push(k.clone());
                        gate.push(vec![i]);
                    }
                }
            }
        }
        let prefilter = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&keywords)
            .expect("keywords build an automaton");
        Sanitizer {
            inner: Arc::new(Inner {
                rules,
                gate,
                prefilter,
                allow: self
                    .allow
                    .iter()
                    .map(|a| Regex::new(a).expect("checked in allow"))
                    .collect(),
                extra_keys: self.extra_keys,
                replacement: self
                    .replacement
                    .unwrap_or_else(|| DEFAULT_REPLACEMENT.into()),
                counts: Mutex::new(BTreeMap::new()),
            }),
        }
    }
}

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

    fn count(&self, kind: &str) {
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

    /// Whether a field or key name names a secret.
    pub fn is_secret_key(&self, key: &str) -> bool {
        let n = normalize_key(key);
        if NOT_SECRET_KEY_PARTS.iter().any(|p| n.contains(p)) {
            return false;
        }
        SECRET_KEY_PARTS.iter().any(|p| n.contains(p))
            || self.inner.extra_keys.iter().any(|k| n.contains(k.as_str()))
    }

    /// Redacts the secrets in `text`. Returns it borrowed when nothing was found.
    pub fn sanitize_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let inner = &*self.inner;
        let mut active = vec![false; inner.rules.len()];
        let mut any = false;
        for m in inner.prefilter.find_overlapping_iter(text) {
            for &r in &inner.gate[m.pattern().as_usize()] {
                active[r] = true;
                any = true;
            }
        }
        for (i, r) in inner.rules.iter().enumerate() {
            if r.keywords.is_empty() {
                active[i] = true;
                any = true;
            }
        }
        if !any {
            return Cow::Borrowed(text);
        }
        let mut spans: Vec<(usize, usize, &'static str)> = Vec::new();
        for (i, rule) in inner.rules.iter().enumerate() {
            if !active[i] {
                continue;
            }
            for caps in rule.regex.captures_iter(text) {
                let m = ["secret", "v1", "v2", "v3", "v4"]
                    .iter()
                    .find_map(|g| caps.name(g))
                    .or_else(|| caps.get(0));
                let Some(m) = m else { continue };
                let value = m.as_str();
                if value.is_empty()
                    || value.starts_with(MARKER_PREFIX)
                    || value.contains(MARKER_PREFIX) && value.len() < 64
                {
                    continue;
                }
                let mut kind = rule.kind;
                let tail = value.rsplit(char::is_whitespace).next().unwrap_or(value);
                if looks_fake(value) || looks_fake(tail) {
                    continue;
                }
                if let Some(key) = caps.name("key") {
                    let n = normalize_key(key.as_str());
                    if NOT_SECRET_KEY_PARTS.iter().any(|p| n.contains(p)) || is_descriptive_key(&n)
                    {
                        continue;
                    }
                    let date_like = value.len() >= 10
                        && value.as_bytes()[4] == b'-'
                        && value[..4].bytes().all(|b| b.is_ascii_digit());
                    let prose_word = caps.name("v4").is_some()
                        && value.len() < 12
                        && value.bytes().all(|b| b.is_ascii_lowercase());
                    if date_like || prose_word || value.len() < 3 || value.starts_with('{') {
                        continue;
                    }
                    let password_like = n.contains("pass") || n.contains("pwd");
                    if !password_like && value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                        continue;
                    }
                    kind = key_kind(&n);
                } else if rule.kind == "url_password" && is_placeholder(value) {
                    continue;
                }
                if kind == "aws_access_key_id" && value.ends_with("EXAMPLE") {
                    continue;
                }
                if inner.allow.iter().any(|a| a.is_match(value)) {
                    continue;
                }
                spans.push((m.start(), m.end(), kind));
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
            self.count(kind);
            pos = end;
            i = j;
        }
        out.push_str(&text[pos..]);
        Cow::Owned(out)
    }

    /// Sanitizes a JSON value in place, at any depth: a value whose key names a secret is
    /// replaced by the marker (numbers and booleans are kept unless the key is a password),
    /// every other string goes through [`Sanitizer::sanitize_str`].
    pub fn sanitize_json(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Cow::Owned(clean) = self.sanitize_str(s) {
                    *s = clean;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.sanitize_json(v)),
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if self.is_secret_key(k) && !is_descriptive_key(&normalize_key(k)) {
                        let n = normalize_key(k);
                        let password_like = n.contains("pass") || n.contains("pwd");
                        let redact = match v {
                            Value::Null => false,
                            Value::Bool(_) => false,
                            Value::Number(_) => password_like,
                            Value::String(s) => !looks_fake(s),
                            Value::Array(a) => !a.is_empty(),
                            Value::Object(o) => !o.is_empty(),
                        };
                        if redact {
                            let kind = key_kind(&n);
                            self.count(kind);
                            *v = Value::String(self.marker(kind));
                            continue;
                        }
                    }
                    self.sanitize_json(v);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// A value that cannot leak: `Debug` and `Display` print `[REDACTED]`, so recording it in a
/// tracing field (`password = %secret` or `?secret`) records only the marker.
/// (`tracing::Value` is sealed, so recording it bare is not possible.)
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The wrapped value, for the code that really needs it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn detectors_table() {
        let s = Sanitizer::default();
        let positives = [
            ("key sk-proj-abcdefghijT3BlbkFJabcdefghij1234 here", "sk-proj-abcdefghijT3BlbkFJabcdefghij1234"),
            ("AKIAZ3MSJV4WWNKWW5FG in config", "AKIAZ3MSJV4WWNKWW5FG"),
            ("token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 used", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
            ("glpat-abcdefghij0123456789 leaked", "glpat-abcdefghij0123456789"),
            ("xoxb-1234567890-1234567890123-abcdefghijklmn", "xoxb-1234567890-1234567890123-abcdefghijklmn"),
            ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
            ("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl"),
            ("postgres://app:hunter2@db/orders", "hunter2"),
            ("password=hunter2 user=bob", "hunter2"),
            (r#"{"db_password": "s3cr3t"}"#, "s3cr3t"),
            ("OPENAI_API_KEY=abcdef123456", "abcdef123456"),
            ("sasl.password=alice-secret", "alice-secret"),
            ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
            ("-----BEGIN RSA PRIVATE KEY-----\\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\\n-----END RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEA"),
        ];
        for (text, secret) in positives {
            let out = s.sanitize_str(text);
            assert!(!out.contains(secret), "{text} -> {out}");
            assert!(out.contains("[REDACTED:"), "{out}");
        }
        let negatives = [
            "password reset email sent to user 42",
            "request 0190f0f0-0000-7000-8000-000000000001 took 12ms",
            "commit 3f786850e387550fdab836ed7e6dc881de23001b",
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d08c15d0a08",
            "max_tokens=4096 temperature=0.2",
            "AKIAIOSFODNN7EXAMPLE is the documented example",
            "pk_live_4eC39HqLyjWDarjtT1zdp7dc is publishable",
            "password=[REDACTED:password]",
            "token_count: 512",
        ];
        for text in negatives {
            assert_eq!(s.sanitize_str(text), text);
        }
    }

    #[test]
    fn nested_json_keeps_structure() {
        let s = Sanitizer::default();
        let mut v = json!({"config": {"db": {"password": "x"}}, "items": [{"token": "y"}]});
        s.sanitize_json(&mut v);
        assert_eq!(
            v,
            json!({"config": {"db": {"password": "[REDACTED:password]"}}, "items": [{"token": "[REDACTED:token]"}]})
        );
        assert!(s.redaction_counts()["password"] >= 1);
    }

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
            .build();
        assert_eq!(custom.sanitize_str("see TKT-123456"), "see TKT-<ticket>");
        assert_eq!(custom.sanitize_str("password=hunter2"), "password=hunter2");
        assert!(Sanitizer::builder().replacement("***").is_err());
        assert!(Sanitizer::builder().extra_pattern("x", "(").is_err());
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "[REDACTED]");
    }
}
