//! The secret sanitizer (SPEC §6): every string that leaves the process passes through it.
//!
//! Three kinds of rule:
//! - **key rules**: a value is redacted when its key names a secret (`password`, `db_pass`,
//!   `OPENAI_API_KEY`, `sasl.password`, `X-Api-Key`, ...), in JSON objects at any depth and
//!   in `key=value`, `key: value`, `"key": "value"`, `<key>value</key>`, `--key value` and
//!   `getenv("key", "value")` text. Keys that only *suggest* a secret (`hmac`, `seed`,
//!   `signature`, `user_auth`) need a value that looks random (length, alphabet, entropy);
//! - **context rules**: `-u user:pass` / `--user` on command lines, `password 'value'`,
//!   `shared value '<random>'`, `Authorization:` / `X-*-Api-Key:` headers, bearer and basic
//!   credentials, passwords inside URLs and connection strings, JAAS `password="..."`;
//! - **value detectors**: prefix-anchored patterns for provider API keys, cloud keys, VCS
//!   tokens, chat tokens and webhooks, payment keys, JWTs and PEM private keys (also
//!   JSON-escaped). A detector owns its prefix: a value under a secret key that starts with a
//!   known prefix (`xoxb-`, `ghp_`, `sk-ant-`, ...) but does not have the format is a
//!   near-miss and is kept;
//! - **high-entropy strings** (detect-secrets' rule): a quoted string (or a JSON string
//!   value) of the hex or base64 alphabet, at least 20 long, with letters and digits and
//!   more than 3.0 (hex) or 4.5 (base64) bits of entropy per character, unless its label
//!   names an identifier, a hash or a version (`trace_id`, `sha`, `ETag`, `commit`,
//!   `integrity`, `SRCREV`, ...), says it is public, or names a secret (the key rules
//!   decide then). Unquoted hex in prose (`commit 3f78…`) is left alone.
//!
//! What is never redacted: placeholders (`xxxx`, `****`, `<...>`, `[...]`, `$VAR`, `${VAR}`,
//! `$(cmd)`, `{{ x }}`, `%VAR%`, empty values, `required`, `changeme`), documentation
//! examples (`...EXAMPLE`), the same user and password (`test:test`), references to a secret
//! (`os.environ["X"]`, `self.password`, `DB_PASSWORD`), paths, dates and versions, keys that
//! describe a secret (`token_url`, `secret_length`, `api_key_id`, `public_key`), one short
//! word after an unquoted key (`token: expired`), and values already redacted.
//!
//! One Aho-Corasick pass over the literal keywords of every rule (plus three byte-level
//! structural scans for the rules without a literal, and a local check that a key is
//! followed by a separator) decides which regexes run: text with no candidate comes back
//! borrowed, unchanged, after that pass. Matches become `[REDACTED:<kind>]`; the rest of
//! the text is left byte for byte. Passes repeat until the output is stable, so sanitizing
//! twice gives the same text as sanitizing once.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{Input, MatchKind};
use once_cell::sync::Lazy;
use regex::{Captures, Regex};
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

struct Inner {
    rules: Vec<Rule>,
    /// Keyword index -> rules it gates.
    gate: Vec<Vec<usize>>,
    /// The concrete DFA type (not `AhoCorasick`, whose automaton is behind a `dyn`), so the
    /// overlapping search compiles to a loop without dynamic calls.
    prefilter: DFA,
    /// Rules gated by a byte scan.
    scans: Vec<(usize, ScanFn)>,
    /// Rules that always run (user patterns).
    always: Vec<usize>,
    /// Prefix owned by a detector -> index of that detector.
    owned: Vec<(&'static str, usize)>,
    allow: Vec<Regex>,
    extra_keys: Vec<String>,
    replacement: String,
    /// The replacement up to `{kind}` (e.g. `[REDACTED:`): values starting with it are
    /// markers, which keeps sanitizing idempotent.
    marker_prefix: String,
    counts: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

struct Rule {
    kind: &'static str,
    regex: Regex,
    gate: Gate,
    check: Check,
    /// The local check of [`Gate::KeywordsAt`].
    near: Option<fn(&[u8], usize) -> bool>,
    /// Where the value is.
    syntax: Syntax,
}

/// A byte-level test of a whole text (see [`Gate::Scan`]).
type ScanFn = fn(&str) -> bool;

/// How a rule decides which runs of text may reach its regex.
#[derive(Clone, Copy)]
enum Gate {
    /// One of these literals (ASCII case-insensitive) occurs in the text.
    Keywords(&'static [&'static str]),
    /// One of these literals occurs where the check (given the text and the literal's
    /// start) says the rule's shape can begin: key rules need a separator after the key.
    KeywordsAt(&'static [&'static str], fn(&[u8], usize) -> bool),
    /// A byte-level scan for a shape that has no literal (Discord and Telegram tokens).
    Scan(ScanFn),
    /// Always (user patterns).
    Always,
}

/// How a match is validated before it is redacted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Check {
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
    /// A password inside a URL, connection string or JAAS line.
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

/// Where a rule's value is: in its capture groups, or parsed after the match (the key rules
/// match only `key =`; parsing the value by hand keeps the regex small and fast).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Syntax {
    /// The group `secret`, `vq1`..`vq3` (quoted) or `vu` (unquoted), else the whole match.
    Captured,
    /// After `key =`: `\"v\"`, `"v"` (with escapes), `'v'` or a run without blanks and
    /// `"',;&\`.
    Assignment,
    /// After `--key `: `"v"`, `'v'` or a run without blanks and ``"'`;|&``.
    Flag,
}

/// A built-in rule: kind, pattern, gate, check and where its value is.
type RuleDef = (&'static str, String, Gate, Check, Syntax);

/// The built-in rules, in the order their spans win ties (an earlier rule names the kind
/// when two matches start at the same byte and have the same length).
fn builtin_rules() -> Vec<RuleDef> {
    use Check::*;
    use Gate::*;
    let t = |min_len| Token { min_len };
    let key_rule =
        format!(r#"(?P<key>{KEY_NAME})(?:\\?["'])?\]?[ \t]{{0,3}}(?::=|=>|=|:)[ \t]{{0,3}}"#);
    let call_rule = format!(
        r#"\([ \t]*\\?["'](?P<key>{KEY_NAME})\\?["'][ \t]*,[ \t]*(?:"(?P<vq2>(?:[^"\\\n]|\\.)*)"|'(?P<vq3>[^'\n]*)')"#
    );
    let xml_rule = format!(r"<(?P<key>{KEY_NAME})>(?P<vu>[^<>\n]{{1,500}})</");
    let flag_rule = format!(r#"(?:^|[ \t])--?(?P<key>{KEY_NAME})[ \t]+"#);
    let detectors: Vec<(&'static str, String, Gate, Check)> = vec![
        ("private_key", r"-----BEGIN[ A-Z0-9_-]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]{32,}?-----END[ A-Z0-9_-]*PRIVATE KEY(?: BLOCK)?-----|(?:\\[nr]|[A-Za-z0-9+/=\s]){32,})".into(), Keywords(&["-----begin"]), Pem),
        ("openai_api_key", r"sk-[A-Za-z0-9_\-]*T3BlbkFJ[A-Za-z0-9_\-]+".into(), Keywords(&["t3blbkfj"]), t(20)),
        ("anthropic_api_key", r"(?P<secret>\bsk-ant-[a-z]{3,8}\d{2}-[A-Za-z0-9_\-]{93}AA)(?:[^A-Za-z0-9_\-]|$)".into(), Keywords(&["sk-ant-"]), t(0)),
        ("google_api_key", r"(?P<secret>\bAIza[0-9A-Za-z_\-]{35})(?:[^A-Za-z0-9_\-]|$)".into(), Keywords(&["aiza"]), t(0)),
        ("gcp_oauth_token", r"\bya29\.[0-9A-Za-z_\-]{20,}".into(), Keywords(&["ya29."]), t(0)),
        ("aws_access_key_id", r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b".into(), Keywords(&["akia", "asia", "abia", "acca", "a3t"]), t(0)),
        ("aws_secret_access_key", r#"(?i)aws[\w.\-]{0,30}?(?:secret|key|token|pass)[\w.\-]{0,20}?\\?["']?[ \t]{0,3}(?:=|:|=>)[ \t]{0,3}\\?["']?(?P<secret>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#.into(), Keywords(&["aws"]), t(0)),
        ("github_token", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36,255}\b|\bgithub_pat_[A-Za-z0-9_]{22,255}\b".into(), Keywords(&["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"]), t(0)),
        ("gitlab_token", r"\bgl(?:pat|dt|ft|rt|cbt|ptt|oas|soat|agent)-[A-Za-z0-9_\-.]{20,}|\bGR1348941[A-Za-z0-9_\-]{20,}".into(), Keywords(&["glpat-", "gldt-", "glft-", "glrt-", "glcbt-", "glptt-", "gloas-", "glsoat-", "glagent-", "gr1348941"]), t(0)),
        ("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b".into(), Keywords(&["npm_"]), t(0)),
        ("pypi_token", r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}".into(), Keywords(&["pypi-ageichlwas5vcmc"]), t(0)),
        ("slack_token", r"\bxox[abeoprs]-(?:\d+-)+[0-9A-Za-z][0-9A-Za-z\-]*|\bxapp-\d-[A-Za-z0-9\-]{10,}|xoxe\.xox[bp]-\d-[A-Za-z0-9]{100,}".into(), Keywords(&["xoxa-", "xoxb-", "xoxe", "xoxo-", "xoxp-", "xoxr-", "xoxs-", "xapp-"]), t(24)),
        ("slack_webhook_url", r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_\-]{20,}".into(), Keywords(&["hooks.slack.com"]), WebhookUrl),
        ("discord_webhook_url", r"discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_\-]+".into(), Keywords(&["/api/webhooks/"]), WebhookUrl),
        ("discord_bot_token", r"\b[MNO][A-Za-z0-9_\-]{23,25}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,}".into(), Scan(discord_scan), t(0)),
        ("telegram_bot_token", r"(?:\b|bot)(?P<secret>\d{5,16}:[0-9A-Za-z_\-]{35})\b".into(), Scan(telegram_scan), t(0)),
        ("sendgrid_api_key", r"\bSG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{30,50}".into(), Keywords(&["sg."]), t(0)),
        ("twilio_api_key", r"\bSK[0-9a-fA-F]{32}\b".into(), Keywords(&["sk"]), t(0)),
        ("stripe_secret_key", r"\b[rs]k_(?:live|test|prod)_[A-Za-z0-9]{10,}".into(), Keywords(&["sk_live_", "rk_live_", "sk_test_", "rk_test_", "sk_prod_", "rk_prod_"]), t(0)),
        ("huggingface_token", r"\b(?:hf_|api_org_)[A-Za-z0-9]{34}\b".into(), Keywords(&["hf_", "api_org_"]), t(0)),
        ("xai_api_key", r"\bxai-[A-Za-z0-9_]{70,90}\b".into(), Keywords(&["xai-"]), t(0)),
        ("groq_api_key", r"\bgsk_[A-Za-z0-9]{48,56}\b".into(), Keywords(&["gsk_"]), t(0)),
        ("perplexity_api_key", r"\bpplx-[A-Za-z0-9]{40,56}\b".into(), Keywords(&["pplx-"]), t(0)),
        ("replicate_api_token", r"\br8_[A-Za-z0-9_\-]{30,45}\b".into(), Keywords(&["r8_"]), t(0)),
        ("mailchimp_api_key", r"\b[0-9a-f]{32}-us\d{1,2}\b".into(), Keywords(&["-us"]), t(0)),
        ("square_token", r"\b(?:EAAA|sq0atp-|sq0csp-)[A-Za-z0-9_\-]{22,60}".into(), Keywords(&["eaaa", "sq0atp-", "sq0csp-"]), t(0)),
        ("azure_ad_client_secret", r"(?:^|[^A-Za-z0-9_~.])(?P<secret>[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34})".into(), Keywords(&["q~"]), t(0)),
        ("databricks_token", r"\bdapi[a-f0-9]{32}\b".into(), Keywords(&["dapi"]), t(0)),
        ("shopify_token", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b".into(), Keywords(&["shpat_", "shpca_", "shppa_", "shpss_"]), t(0)),
        ("digitalocean_token", r"\bdo[opr]_v1_[a-f0-9]{64}\b".into(), Keywords(&["_v1_"]), t(0)),
        ("vault_token", r"\bhv[sb]\.[A-Za-z0-9_\-]{24,}".into(), Keywords(&["hvs.", "hvb."]), t(0)),
        ("docker_token", r"\bdckr_pat_[A-Za-z0-9_\-]{27,}".into(), Keywords(&["dckr_pat_"]), t(0)),
        ("grafana_token", r"\bglsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\b".into(), Keywords(&["glsa_"]), t(0)),
        ("age_secret_key", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}".into(), Keywords(&["age-secret-key-1"]), t(0)),
        ("jwt", r"\b(?:eyJ|ewogIC|ewoid)[A-Za-z0-9_\-]{10,}={0,2}\.(?:eyJ|ewo)[A-Za-z0-9_\-]{10,}={0,2}(?:\.(?:[A-Za-z0-9_\-]{8,}={0,2})?)?".into(), Keywords(&["eyj", "ewogic", "ewoid"]), t(0)),
        ("bearer_token", r"(?i)\bbearer[ \t]+(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)".into(), Keywords(&["bearer"]), Credential),
        ("cli_basic_auth_password", r#"(?:[ \t]-u|--user)(?:[ \t]+|=)['"]?(?P<user>[^\s:'"]+):(?P<secret>[^\s'"]+)"#.into(), Keywords(&["-u", "--user"]), CliUser),
        ("cli_password", r#"(?:^|[\s;&|(])(?:mysql|mysqldump|mysqladmin|mariadb)[ \t][^\n|;&]*?[ \t]-p(?P<secret>[^\s'"\-][^\s'"]*)"#.into(), Keywords(&["mysql", "mariadb"]), Password),
        ("cli_password", r#"\bsshpass[ \t]+-p[ \t]*(?:'(?P<vq3>[^'\n]+)'|"(?P<vq2>[^"\n]+)"|(?P<vu>[^\s'"]+))"#.into(), Keywords(&["sshpass"]), Password),
        ("cli_password", r#"\bredis-cli\b[^\n|;&]*?[ \t]-a[ \t]+(?:'(?P<vq3>[^'\n]+)'|"(?P<vq2>[^"\n]+)"|(?P<vu>[^\s'"]+))"#.into(), Keywords(&["redis-cli"]), Password),
        ("confluent_api_secret", r"\bconfluent[ \t]+api-key[ \t]+store[ \t]+(?P<user>[A-Za-z0-9]{16})[ \t]+(?P<secret>[A-Za-z0-9+/]{64})".into(), Keywords(&["confluent"]), Password),
        ("basic_auth", r"(?i)\bbasic[ \t]+(?P<secret>[A-Za-z0-9+/]{8,}={0,3})".into(), Keywords(&["basic"]), Credential),
        ("authorization", r#"(?i)\b(?:proxy-)?authorization\\?["']?[ \t]{0,3}[:=][ \t]{0,3}\\?["']?(?P<secret>(?:[A-Za-z]+[ \t]+)?[^\s"',;\\]{6,})"#.into(), Keywords(&["authorization"]), Credential),
        ("api_key_header", r#"(?i)\b(?:x-[a-z\-]*)?(?:api-?key|private-token|x-auth-token|apikey)\\?["']?[ \t]{0,3}:[ \t]{0,3}\\?["']?(?P<secret>[^\s"',;\\]{6,})"#.into(), Keywords(&["api-key", "apikey", "api_key", "private-token", "x-auth-token"]), Credential),
        ("url_password", r#"\b[a-zA-Z][a-zA-Z0-9+.\-]{1,20}://(?P<user>[^\s:/@"'<>]*):(?P<secret>[^\s@/"'<>]+)@"#.into(), Keywords(&["://"]), Password),
        ("connection_string_password", r#"(?i)(?:^|[;?&\s"',])(?:password|pwd|passwd)[ \t]*=[ \t]*(?P<secret>\{(?:[^}\n]|\}\})*\}|[^;&"'\s,]+)"#.into(), Keywords(&["password", "pwd", "passwd"]), Password),
        ("connection_string_password", r#"(?i)jdbc:oracle:[a-z0-9]+:(?P<user>[^/\s:@"']+)/(?P<secret>[^@\s"']+)@"#.into(), Keywords(&["jdbc:oracle:"]), Password),
        ("jaas_password", r#"(?i)password[ \t]*=[ \t]*\\?["'](?P<secret>[^"'\\]+)\\?["']"#.into(), Keywords(&["password"]), Password),
        ("secret_context", r#"(?i)\b(?P<ctx>pass(?:word|wd|phrase)?|pwd|shared[ _\-]?(?:value|secret|key)|hmac(?:[ _\-]?(?:key|secret))?|signing[ _\-]?(?:key|secret))[ \t]+(?:(?:is|was|to|of)[ \t]+)?(?:'(?P<vq3>[^'\s]{6,200})'|"(?P<vq2>[^"\s]{6,200})"|`(?P<vq1>[^`\s]{6,200})`|(?P<vu>[^\s"'`,;]{16,200}))"#.into(), Keywords(&["pass", "pwd", "shared", "hmac", "signing"]), ContextWord),
        ("high_entropy_string", r#"(?:\\"|"|')(?P<secret>[A-Za-z0-9+/=_\-]{20,})(?:\\"|"|')"#.into(), Scan(quoted_random_scan), HighEntropy),
    ];
    let attribute_rule = format!(
        r#"(?i:key|name)[ \t]*=[ \t]*["'](?P<key>{KEY_NAME})["'][ \t]+(?i:value)[ \t]*=[ \t]*(?:"(?P<vq2>[^"\n]*)"|'(?P<vq3>[^'\n]*)')"#
    );
    let env_list_rule = format!(
        r#"(?i:name):[ \t]*["']?(?P<key>{KEY_NAME})["']?[ \t]*\r?\n[ \t]*(?i:value):[ \t]*"#
    );
    let keyed: Vec<RuleDef> = vec![
        (
            "secret_key_value",
            env_list_rule,
            Keywords(&["value:"]),
            KeyValue,
            Syntax::Assignment,
        ),
        (
            "secret_key_value",
            attribute_rule,
            Keywords(&["value="]),
            KeyValue,
            Syntax::Captured,
        ),
        (
            "secret_key_value",
            key_rule,
            KeywordsAt(KEY_GATE, near_assignment),
            KeyValue,
            Syntax::Assignment,
        ),
        (
            "secret_key_value",
            call_rule,
            KeywordsAt(KEY_GATE, near_call_argument),
            KeyValue,
            Syntax::Captured,
        ),
        (
            "secret_key_value",
            xml_rule,
            KeywordsAt(KEY_GATE, near_xml_element),
            KeyValue,
            Syntax::Captured,
        ),
        (
            "secret_key_value",
            flag_rule,
            KeywordsAt(KEY_GATE, near_cli_flag),
            KeyValue,
            Syntax::Flag,
        ),
    ];
    detectors
        .into_iter()
        .map(|(kind, re, gate, check)| (kind, re, gate, check, Syntax::Captured))
        .chain(keyed)
        .collect()
}

/// The key candidate: an identifier containing one of [`KEY_GATE`].
const KEY_NAME: &str = r"[A-Za-z0-9_.\-]*(?i:pass|pwd|pw|secret|token|key|cred|cookie|auth|hmac|seed|sig|jaas)[A-Za-z0-9_.\-]*";

/// A value: `\"escaped\"`, `"double"`, `'single'` or unquoted.
const VALUE: &str = r#"(?:\\"(?P<vq1>[^"\\]*)\\"|"(?P<vq2>(?:[^"\\\n]|\\.)*)"|'(?P<vq3>[^'\n]*)'|(?P<vu>[^\s"',;&\\]+))"#;

/// Literals that gate the key rules (their regexes find a key candidate containing one of
/// them; [`classify_key`] decides).
const KEY_GATE: &[&str] = &[
    "pass", "pwd", "pw", "secret", "token", "key", "cred", "cookie", "auth", "hmac", "seed", "sig",
    "jaas",
];

/// Detector prefixes: a value under a secret key that starts with one of these is only
/// redacted when the detector of that kind matches it (otherwise it is a near-miss).
const OWNED_PREFIXES: &[(&str, &str)] = &[
    ("xoxa-", "slack_token"),
    ("xoxb-", "slack_token"),
    ("xoxe-", "slack_token"),
    ("xoxo-", "slack_token"),
    ("xoxp-", "slack_token"),
    ("xoxr-", "slack_token"),
    ("xoxs-", "slack_token"),
    ("xapp-", "slack_token"),
    ("ghp_", "github_token"),
    ("gho_", "github_token"),
    ("ghu_", "github_token"),
    ("ghs_", "github_token"),
    ("ghr_", "github_token"),
    ("github_pat_", "github_token"),
    ("glpat-", "gitlab_token"),
    ("gldt-", "gitlab_token"),
    ("glrt-", "gitlab_token"),
    ("sk-ant-", "anthropic_api_key"),
    ("sk-proj-", "openai_api_key"),
    ("sk-svcacct-", "openai_api_key"),
    ("sk-admin-", "openai_api_key"),
    ("AIza", "google_api_key"),
    ("AKIA", "aws_access_key_id"),
    ("ASIA", "aws_access_key_id"),
    ("hf_", "huggingface_token"),
    ("api_org_", "huggingface_token"),
    ("npm_", "npm_token"),
    ("sk_live_", "stripe_secret_key"),
    ("sk_test_", "stripe_secret_key"),
    ("rk_live_", "stripe_secret_key"),
    ("SG.", "sendgrid_api_key"),
    ("pypi-", "pypi_token"),
];

/// Authorization schemes: after `Authorization:` they are not the credential themselves.
const AUTH_SCHEMES: &[&str] = &[
    "bearer",
    "basic",
    "token",
    "bot",
    "digest",
    "negotiate",
    "ntlm",
    "apikey",
    "jwt",
    "hmac",
    "aws4-hmac-sha256",
    "sharedaccesssignature",
];

/// Byte classes of the token alphabet used by the structural scans.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// A Discord bot token shape: 23+ token bytes, `.`, 6 token bytes, `.`.
fn discord_scan(text: &str) -> bool {
    let t = text.as_bytes();
    (23..t.len().saturating_sub(7)).any(|i| {
        t[i] == b'.'
            && t[i + 7] == b'.'
            && t[i + 1..i + 7].iter().all(|&b| is_token_byte(b))
            && t[i - 23..i].iter().all(|&b| is_token_byte(b))
    })
}

/// A Telegram bot token shape: 5+ digits, `:`, 35 token bytes.
fn telegram_scan(text: &str) -> bool {
    let t = text.as_bytes();
    (5..t.len().saturating_sub(35)).any(|i| {
        t[i] == b':'
            && t[i - 5..i].iter().all(u8::is_ascii_digit)
            && t[i + 1..i + 36].iter().all(|&b| is_token_byte(b))
    })
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Identifiers longer than this are not keys; the bound keeps the gate checks linear on
/// long runs of keywords (`keykeykey...`).
const MAX_KEY_LEN: usize = 128;

/// The start of the identifier around `at`.
fn key_start(t: &[u8], at: usize) -> usize {
    let floor = at.saturating_sub(MAX_KEY_LEN);
    let mut s = at;
    while s > floor && is_key_byte(t[s - 1]) {
        s -= 1;
    }
    s
}

/// The end of the identifier that contains `at`.
fn key_end(t: &[u8], at: usize) -> usize {
    let ceil = t.len().min(at + MAX_KEY_LEN);
    let mut e = at;
    while e < ceil && is_key_byte(t[e]) {
        e += 1;
    }
    e
}

/// `key = v`, `"key": v`, `key := v`, `['key'] = v`: the identifier holding the keyword at
/// `at` is followed by a separator (after an optional quote or `]` and up to 3 blanks).
fn near_assignment(t: &[u8], at: usize) -> bool {
    let mut i = key_end(t, at);
    if t.get(i) == Some(&b'\\') {
        i += 1;
    }
    if matches!(t.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    if t.get(i) == Some(&b']') {
        i += 1;
    }
    let mut blanks = 0;
    while blanks < 3 && matches!(t.get(i), Some(b' ' | b'\t')) {
        i += 1;
        blanks += 1;
    }
    matches!(t.get(i), Some(b'=' | b':'))
}

/// `("key", "v")`: the identifier is quoted and followed by a comma.
fn near_call_argument(t: &[u8], at: usize) -> bool {
    let s = key_start(t, at);
    let e = key_end(t, at);
    s > 0
        && matches!(t[s - 1], b'"' | b'\'')
        && t[e..]
            .iter()
            .find(|&&b| !matches!(b, b'"' | b'\'' | b'\\' | b' ' | b'\t'))
            == Some(&b',')
}

/// `<key>v</key>`.
fn near_xml_element(t: &[u8], at: usize) -> bool {
    let s = key_start(t, at);
    s > 0 && t[s - 1] == b'<' && t.get(key_end(t, at)) == Some(&b'>')
}

/// `--key v`, `-key v`.
fn near_cli_flag(t: &[u8], at: usize) -> bool {
    let s = key_start(t, at);
    t.get(s) == Some(&b'-')
        && (s == 0 || matches!(t[s - 1], b' ' | b'\t'))
        && matches!(t.get(key_end(t, at)), Some(b' ' | b'\t'))
}

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

/// Key fragments that look secret but are not: counts, limits, tokenizers, public keys, and
/// keys that say their value is a fake (`fakeToken`, `mock_secret`, `non_matching_key`).
const NOT_SECRET_KEY_PARTS: &[&str] = &[
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
enum KeyStrength {
    /// Any value that is not a placeholder is redacted.
    Strong,
    /// Only a random-looking value is redacted.
    Weak,
}

/// Splits an identifier into lowercase words: at separators and camelCase boundaries
/// (`X-Internal-Signature-Seed`, `mySecretString`, `APIKey` -> `api`, `key`).
fn key_words(raw: &str) -> Vec<String> {
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

fn normalize_key(key: &str) -> String {
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
fn is_descriptive_key(normalized: &str) -> bool {
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
fn classify_key(raw: &str, extra: &[String]) -> Option<(KeyStrength, &'static str)> {
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

/// Shannon entropy of the bytes, in bits per byte.
fn entropy(b: &[u8]) -> f64 {
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
fn looks_random(v: &str) -> bool {
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
fn is_random_secret(v: &str) -> bool {
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
fn quoted_random_scan(text: &str) -> bool {
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
            && !exempt_quoted(text, i - 1, &[])
        {
            return true;
        }
        i = e + 1;
    }
    false
}

/// The label a quoted value starting at `q` (its opening quote) is assigned to: `key: "v"`,
/// `"key": "v"`, `key = "v"`, `key => "v"`, `['key'] = "v"`; for an item of a list
/// (`"ids": ["a", "b"]`) the list's label. `None` when the value stands alone.
fn label_before(text: &str, q: usize) -> Option<&str> {
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
    let mut i = blanks(i);
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
    (i < end).then(|| &text[i..end])
}

/// Whether the identifier starting at `at` is a segment of an `arn:` or `urn:` name.
fn in_resource_name(text: &str, at: usize) -> bool {
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

/// The members of a JSON Web Key that hold public key material (`n`, `e` of RSA, `x`, `y`
/// of EC): random, and public.
const JWK_PUBLIC_MEMBERS: &[&str] = &["n", "e", "x", "y", "x5c", "x5t", "x5t#S256"];

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
];

/// Label words that only say how a value is encoded: exempt like [`IDENTIFIER_LABELS`]
/// unless the label also says "key", "secret", ...
const ENCODING_LABELS: &[&str] = &["b64", "base64", "blob"];

/// Whether the quoted value whose quote is at `q` is kept by the high-entropy rule: its
/// label is exempt, or it is a public member of a JSON Web Key.
fn exempt_quoted(text: &str, q: usize, extra: &[String]) -> bool {
    label_before(text, q).is_some_and(|l| {
        exempt_label(l, extra) || (JWK_PUBLIC_MEMBERS.contains(&l) && text.contains("\"kty\""))
    })
}

/// Whether the label of a quoted value excludes it from the high-entropy rule: it names an
/// identifier or hash ([`IDENTIFIER_LABELS`]), describes a secret without holding one
/// (`secret_name`), says its value is public or fake, or names a secret (then the key rules
/// decide, so that a value they keep is not redacted by this one).
fn exempt_label(label: &str, extra: &[String]) -> bool {
    let words = key_words(label);
    let n: String = words.concat();
    let names_identifier = |w: &str| {
        IDENTIFIER_LABELS
            .iter()
            .chain(ENCODING_LABELS)
            .any(|l| w == *l || (l.len() > 2 && w.ends_with(l)))
    };
    // A session id is a bearer credential; `unseal_key_b64` names a key in base64.
    let credential = words
        .iter()
        .any(|w| matches!(w.as_str(), "session" | "sid"))
        || (words.iter().any(|w| ENCODING_LABELS.contains(&w.as_str()))
            && words.iter().any(|w| KEY_GATE.iter().any(|g| w.contains(g))));
    !credential
        && (words.iter().any(|w| names_identifier(w))
            || names_identifier(&n)
            || is_descriptive_key(&n))
        || NOT_SECRET_KEY_PARTS.iter().any(|p| n.contains(p))
        || classify_key(label, extra).is_some()
}

/// Template expressions: `${VAR}`, `${{ secrets.X }}`, `$(cmd)`, `{{ .x }}`, `%VAR%`, `<...>`.
static TEMPLATE: Lazy<Regex> = Lazy::new(|| {
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
fn is_reference(v: &str) -> bool {
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
fn is_placeholder(v: &str) -> bool {
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
fn looks_fake(v: &str) -> bool {
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
fn is_cli_placeholder(user: &str, pass: &str) -> bool {
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
fn is_identifier(v: &str) -> bool {
    v.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && v.bytes().all(is_key_byte)
}

/// `/var/lib/app`, `~/.aws/credentials`: a path (gitleaks' global allowlist), unless it
/// looks random.
fn is_path(v: &str) -> bool {
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

/// Removes closing brackets at the end of an unquoted value that were not opened in it
/// (`{password=abc}` -> `abc`).
fn trim_unbalanced(v: &str) -> &str {
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

/// Whether a value under a key that names a secret is worth redacting.
fn key_value_ok(value: &str, strength: KeyStrength, password_like: bool, unquoted: bool) -> bool {
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
                || (numeric && !password_like))
        }
    }
}

/// A value found for a match: its span, whether it was unquoted, and where the match ends.
#[derive(Clone, Copy, Debug)]
struct Found {
    start: usize,
    end: usize,
    unquoted: bool,
    match_end: usize,
}

/// Parses the value that starts at `i` (see [`Syntax`]).
fn parse_value(text: &str, i: usize, syntax: Syntax) -> Option<Found> {
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
            let stops: &[char] = match syntax {
                Syntax::Flag => &['"', '\'', '`', ';', '|', '&'],
                _ if spaced => &['"', '\'', '\\'],
                _ => &['"', '\'', ',', ';', '&', '\\'],
            };
            let mut end = text[i..]
                .find(|c: char| c.is_whitespace() || stops.contains(&c))
                .map_or(text.len(), |p| i + p);
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
fn locate(rule: &Rule, caps: &Captures<'_>, text: &str) -> Option<Found> {
    let whole = caps.get(0)?;
    if rule.syntax != Syntax::Captured {
        return parse_value(text, whole.end(), rule.syntax);
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
/// after a matched prefix is seen).
fn token_around(text: &str, start: usize, end: usize) -> &str {
    let b = text.as_bytes();
    let tokenish = |c: u8| c.is_ascii_alphanumeric() || b"_-#*~+=".contains(&c);
    let mut s = start;
    while s > 0 && tokenish(b[s - 1]) {
        s -= 1;
    }
    let mut e = end;
    while e < b.len() && tokenish(b[e]) {
        e += 1;
    }
    &text[s..e]
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
            })
            .collect();
        for (kind, re) in &self.extra {
            let kind: &'static str = Box::leak(kind.clone().into_boxed_str());
            rules.push(Rule {
                kind,
                regex: Regex::new(re).expect("checked in extra_pattern"),
                gate: Gate::Always,
                check: Check::Extra,
                near: None,
                syntax: Syntax::Captured,
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
            }),
        }
    }
}

/// How many times at most [`Sanitizer::sanitize_str`] runs the rules over its own output
/// (a bound for adversarial input; real text is stable after the second pass).
const MAX_PASSES: usize = 8;

/// Active-rule bitset: inline for up to 256 rules.
struct Active {
    inline: [u64; 4],
    heap: Vec<u64>,
}

impl Active {
    fn new(n: usize) -> Self {
        Active {
            inline: [0; 4],
            heap: if n > 256 {
                vec![0; n.div_ceil(64)]
            } else {
                Vec::new()
            },
        }
    }

    fn words(&self) -> &[u64] {
        if self.heap.is_empty() {
            &self.inline
        } else {
            &self.heap
        }
    }

    fn set(&mut self, i: usize) {
        let words: &mut [u64] = if self.heap.is_empty() {
            &mut self.inline
        } else {
            &mut self.heap
        };
        words[i / 64] |= 1 << (i % 64);
    }

    fn get(&self, i: usize) -> bool {
        self.words()[i / 64] & (1 << (i % 64)) != 0
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words().iter().enumerate().flat_map(|(w, &bits)| {
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| w * 64 + b)
        })
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

    /// Whether a field or key name names a secret (`password`, `db_pass`, `X-Api-Key`,
    /// `client_secret`), or suggests one (`hmac`, `signature_seed`, `user_auth`: their
    /// values are redacted only when they look random).
    pub fn is_secret_key(&self, key: &str) -> bool {
        self.classify(key).is_some()
    }

    /// [`classify_key`], after a cheap test: every secret key part contains one of the
    /// prefilter's keywords.
    fn classify(&self, key: &str) -> Option<(KeyStrength, &'static str)> {
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

    fn is_marker(&self, v: &str) -> bool {
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
    fn is_near_miss(&self, v: &str) -> bool {
        self.inner.owned.iter().any(|(prefix, rule)| {
            v.starts_with(prefix) && !self.inner.rules[*rule].regex.is_match(v)
        })
    }

    /// Decides on one match: the span to redact and its kind, or `None`.
    fn accept(
        &self,
        rule: &Rule,
        caps: &Captures<'_>,
        text: &str,
        found: Found,
    ) -> Option<(usize, usize, &'static str)> {
        let unquoted = found.unquoted;
        let mut start = found.start;
        let mut value = &text[found.start..found.end];
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
                let (strength, kind) = classify_key(key, &self.inner.extra_keys)?;
                let n = normalize_key(key);
                let password_like = n.contains("pass") || n.contains("pwd");
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
                let strong = l.starts_with("pass") || l == "pwd";
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
                if exempt_quoted(text, quote, &self.inner.extra_keys) || !is_random_secret(value) {
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

    /// Redacts the secrets in `text`. Returns it borrowed when nothing was found.
    ///
    /// A redaction can uncover a candidate that a longer, rejected match hid (or turn a
    /// placeholder-looking value into a plain one), so the passes repeat until nothing
    /// changes (at most 8 passes, a bound for adversarial input; real text is stable after
    /// the second): sanitizing the output again changes nothing.
    pub fn sanitize_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.redact(text, true)
    }

    fn redact<'a>(&self, text: &'a str, count: bool) -> Cow<'a, str> {
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
        let inner = &*self.inner;
        let mut active = Active::new(inner.rules.len());
        let mut any = false;
        let bytes = text.as_bytes();
        let hits = inner
            .prefilter
            .try_find_overlapping_iter(Input::new(text))
            .expect("an unanchored standard DFA supports overlapping search");
        for m in hits {
            for &r in &inner.gate[m.pattern().as_usize()] {
                if active.get(r) || inner.rules[r].near.is_some_and(|f| !f(bytes, m.start())) {
                    continue;
                }
                active.set(r);
                any = true;
            }
        }
        for &(r, scan) in &inner.scans {
            if scan(text) {
                active.set(r);
                any = true;
            }
        }
        for &r in &inner.always {
            active.set(r);
            any = true;
        }
        if !any {
            return Cow::Borrowed(text);
        }
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

    /// Sanitizes a JSON value in place, at any depth: a value whose key names a secret is
    /// replaced by the marker (numbers and booleans are kept unless the key is a password;
    /// under keys that only suggest a secret, such as `hmac`, only random-looking strings),
    /// every other string goes through [`Sanitizer::sanitize_str`].
    pub fn sanitize_json(&self, value: &mut Value) {
        self.sanitize_json_under(value, None);
    }

    /// [`Sanitizer::sanitize_json`] of a value under `label` (its key, or the key of the
    /// list it is in): a string of its own that looks like key material is redacted unless
    /// the label names an identifier or a hash, as a quoted one is in text.
    fn sanitize_json_under(&self, value: &mut Value, label: Option<&str>) {
        match value {
            Value::String(s) => {
                let random = label.is_some_and(|l| {
                    is_random_secret(s)
                        && !exempt_label(l, &self.inner.extra_keys)
                        && !self.inner.allow.iter().any(|a| a.is_match(s))
                });
                if random {
                    let kind = "high_entropy_string";
                    self.count(kind);
                    *s = self.marker(kind);
                } else if let Cow::Owned(clean) = self.sanitize_str(s) {
                    *s = clean;
                }
            }
            Value::Array(items) => items
                .iter_mut()
                .for_each(|v| self.sanitize_json_under(v, label)),
            Value::Object(map) => {
                let jwk = map.contains_key("kty");
                for (k, v) in map.iter_mut() {
                    if let Some((strength, kind)) = self.classify(k) {
                        let n = normalize_key(k);
                        let password_like = n.contains("pass") || n.contains("pwd");
                        let strong = strength == KeyStrength::Strong;
                        let redact = match v {
                            Value::Null | Value::Bool(_) => false,
                            Value::Number(_) => strong && password_like,
                            Value::String(s) if self.is_marker(s) => false,
                            Value::String(s) => {
                                // The structure is explicit here: under a strong key any
                                // string but a placeholder is a secret; and a string that
                                // holds a secret anywhere goes whole.
                                let value_ok = if strong {
                                    !looks_fake(s)
                                } else {
                                    key_value_ok(s, strength, password_like, false)
                                };
                                matches!(self.redact(s, false), Cow::Owned(_))
                                    || (value_ok
                                        && !self.is_near_miss(s.trim())
                                        && !self.inner.allow.iter().any(|a| a.is_match(s)))
                            }
                            Value::Array(a) => strong && !a.is_empty(),
                            Value::Object(o) => strong && !o.is_empty(),
                        };
                        if redact {
                            self.count(kind);
                            *v = Value::String(self.marker(kind));
                            continue;
                        }
                    }
                    let public = jwk && JWK_PUBLIC_MEMBERS.contains(&k.as_str());
                    self.sanitize_json_under(v, (!public).then_some(k.as_str()));
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
            // A word ending in `pass` names a password; `]` after a quoted key is an index.
            ("mysql_pass: Tr0ub4dor&3x", "Tr0ub4dor"),
            (r#"app.config["SECRET_KEY"] = "q8Zr2vLm5NxT7wPb""#, "q8Zr2vLm5NxT7wPb"),
            // A key quoted as the first argument of a call, the value as the second (also
            // with escaped quotes inside).
            (r#"env.get("db_password", "Vx93kLq0Zt")"#, "Vx93kLq0Zt"),
            (r#"props.put("sasl.jaas.config", "ScramLoginModule required username=\"orders\" password=\"Zq8vT2mK9pL4\";");"#, "Zq8vT2mK9pL4"),
            // An XML element and a command-line flag.
            ("<apiToken>Rk29fLq8Wm3x</apiToken>", "Rk29fLq8Wm3x"),
            ("deploy --db-password Pz4nQ8rT2v", "Pz4nQ8rT2v"),
            // A secret word before a quoted value; a context word before a random one.
            ("ldap bind pass 'q:W3$e9~rT'", "q:W3$e9~rT"),
            ("verifying with shared value 'Zq7Lx2Vb9Nm4Kp8Rt3Wy6Hs1'", "Zq7Lx2Vb9Nm4Kp8Rt3Wy6Hs1"),
            // Keys that only suggest a secret, with a random value.
            ("X-Webhook-Signature-Seed: Hq8ZvL2mX9pR4tW7yB3nK6sD", "Hq8ZvL2mX9pR4tW7yB3nK6sD"),
            (r#"{"basic_auth":"dXNlcjpUcjB1YjRkb3IzeFl6OXc="}"#, "dXNlcjpUcjB1YjRkb3IzeFl6OXc="),
            // `-u user:pass` on a command line.
            ("curl -u ops:Zq8-vT2mK9 https://ci", "Zq8-vT2mK9"),
            // An AWS-shaped secret with `EXAMPLE` inside random text is not the doc example.
            ("aws_secret_access_key = Zq9xLm3NpQ7rStUvEXAMPLEWx1yZa2Bc4De5Fg6H", "Zq9xLm3NpQ7rStUvEXAMPLEWx1yZa2Bc4De5Fg6H"),
            // Structural gates: Telegram after `bot`, Discord's three dotted parts.
            ("GET /bot987654321:AAF0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0u/getMe", "987654321:AAF0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0u"),
            ("Bot MTAxMjM0NTY3ODkwMTIzNDU2.Gh7Kp2.Zq8vT2mK9pL4xW7rYb3nD6sF1hJ5cA0eQ", "MTAxMjM0NTY3ODkwMTIzNDU2.Gh7Kp2"),
            // More prefix-anchored tokens.
            ("vault token hvs.CAESIJx7Zq8vT2mK9pL4xW7rYb3n", "hvs.CAESIJx7Zq8vT2mK9pL4xW7rYb3n"),
            ("docker login -p dckr_pat_Zq8vT2mK9pL4xW7rYb3nD6sF1hJ5", "dckr_pat_Zq8vT2mK9pL4xW7rYb3nD6sF1hJ5"),
            // A cookie's own value.
            ("Cookie: sid=Zq8vT2mK9pL4xW7r; theme=dark", "Zq8vT2mK9pL4xW7r"),
            // Oracle's `user/password@` and a .NET / Spring config attribute pair.
            ("url=jdbc:oracle:thin:scott/Tg7pLq2xVb9@//db:1521/ORCL", "Tg7pLq2xVb9"),
            (r#"<add key="SmtpPassword" value="Hq8ZvL2mX9pR" />"#, "Hq8ZvL2mX9pR"),
            (r#"<property name='db.password' value='Wm3xRk29fLq8'/>"#, "Wm3xRk29fLq8"),
            // A Kubernetes env list; ODBC's braced value with `;` and `}}` inside.
            ("env:\n  - name: DB_PASSWORD\n    value: \"Pz4n;Q8rT2v\"\n", "Pz4n;Q8rT2v"),
            ("Driver={ODBC};Server=db;PWD={Yw9b;q1A}}de};Encrypt=yes", "q1A}}de"),
            // Command-line clients whose password flag is their own.
            ("+ mysql -h db -u root -pj12pXog3gd1 -e 'SHOW DATABASES'", "j12pXog3gd1"),
            ("sshpass -p 'QoBbwJ0pvw' ssh deploy@10.0.4.17", "QoBbwJ0pvw"),
            ("redis-cli -h cache -p 6379 -a AxBaQ30vb0vfSS9 INFO", "AxBaQ30vb0vfSS9"),
            // More provider prefixes.
            ("key=xai-2detExG9b6yBvyfB7BLw88ZnWBo2zVQcwDKJdewprSeOV7RRnrOzha0Fm6a9CAIBJMI3PTModGVUk9jl", "xai-2detExG9b6yB"),
            ("GROQ gsk_Zq8vT2mK9pL4xW7rYb3nD6sF1hJ5cA0eQZq8vT2mK9pL4xW7r", "gsk_Zq8vT2mK9pL4"),
            // A config line keeps `&`, `;` and `,` inside the value.
            ("[config] mysql.passwd = abCdef&35-fhQczBK", "35-fhQczBK"),
            ("db_password: abCdef;35-fhQczBK, user: bob", "35-fhQczBK"),
            ("user: bob,password: hunter2x,role: admin", "hunter2x"),
            ("confluent api-key store JP3MIO5O7UFVJ1WW s/p5XEF/fuTQhjpGhUl3AScsGsTfEWgFSnfBP1my1n4lASOkszPq8hVtRV9Kyi+d --resource lkc-1", "s/p5XEF/fuTQhjpG"),
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
            // `pass` inside a longer word; the call argument is a placeholder.
            "tests_passed=12 bypass: cache",
            r#"env.get("SLACK_TOKEN", "xoxb-xxxxxxxxxxxx")"#,
            // Descriptive XML element and flag.
            "<ClientSecretId>2f1c2d3e-4b5a-4c6d-8e7f-001122334455</ClientSecretId>",
            "vault --token-file /run/secrets/vault-token",
            // Lowercase words after `password`; a context word before a non-random value.
            "wrong password 'admin' for user bob",
            "shared value 'enabled'",
            // Keys that only suggest a secret, with a plain value.
            "hmac=sha256 X-Request-Signature-Seed: 42 user_auth=basic",
            // Resource names, hints about a key, pagination tokens.
            "GetSecretValue arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbC123 ok",
            "api_key_last4=7f3c owner=payments",
            // Usage text, MySQL's own error text, a webhook's payload digest, a variable.
            "Usage: myapp --db-url postgres://user:password@localhost:5432/mydb",
            "Access denied for user 'app'@'10.0.4.17' (using password: YES)",
            "X-Hub-Signature-256: sha256=85cfda040f127f0379c6ded31214ac5dcf8a9f999b6e610988d1c15466fb4cf4",
            "psycopg2.connect(host=host, password=password)",
            "credential_source = Ec2InstanceMetadata",
            // `mysql` in a path or an image name is not the client.
            "find /var/lib/mysql -name '*.ibd' -print",
            "docker run --name db mysql:8 -port 3306",
            r#"{"secret_arn":"arn:aws:secretsmanager:us-east-1:599277692184:secret:prod/db-AbC123"}"#,
            r#"{"nextPageToken":"Jx9fQ2mLz8Vb4Nq7Rt1Wy6Hs3Kp","pageSize":100}"#,
            // curl placeholders.
            "curl -u guest:guest http://a; curl -u <name:secret> http://b; curl --user ops:[TOKEN] c",
            // Near-misses of typed formats stay, also under a secret key.
            r#""bot_token": "xoxb-12345""#,
            "xoxb-98765-zyx321",
            "sk-ant-api03-abc123-AA",
            "HJ5cAIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7rS8tU9",
            // Public keys, URLs under token keys, artifact versions, empty values.
            r#"publicToken = "Qm7Zx2Vb9Nw4Kp8Rt3Wy6Hs1Ld5Fg0Jc""#,
            "token_url='https://auth.example.org/oauth/token'",
            "dep = io.jsonwebtoken:jjwt-api-0.12.3",
            "API_KEY=\nOTHER_API_KEY=",
            // Paths, references and status words under a password key.
            "PWD=/var/lib/app OLDPWD=/root",
            r#"password = os.environ["DB_PASSWORD"]"#,
            r#""password": "required""#,
            // The same user and password in a URL; a cookie without a secret.
            "postgres://postgres:postgres@localhost:5432/postgres",
            "Set-Cookie: lang=en; Path=/",
            // `Bearer` followed by prose or a key name.
            "bearer authentication failed; token_type=Bearer expires_in=3600",
            // Structural gates: clock times and hostnames are not bot tokens.
            "09:12:33.123 GET api.internal.example.org/v1",
        ];
        for text in negatives {
            assert_eq!(s.sanitize_str(text), text);
        }
    }

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
    fn json_weak_keys_and_near_misses() {
        let s = Sanitizer::default();
        let mut v = json!({
            "hmac": "Hq8ZvL2mX9pR4tW7yB3nK6sD",
            "signature": "sha256",
            "seed": 42,
            "slack_token": "xoxp-555000111",
            "password_policy": "strong",
            "note": "password=Zq8vT2mK9pL4"
        });
        s.sanitize_json(&mut v);
        assert_eq!(
            v,
            json!({
                "hmac": "[REDACTED:secret]",
                "signature": "sha256",
                "seed": 42,
                "slack_token": "xoxp-555000111",
                "password_policy": "strong",
                "note": "password=[REDACTED:connection_string_password]"
            })
        );
        let mut again = v.clone();
        s.sanitize_json(&mut again);
        assert_eq!(again, v);
    }

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
        ] {
            assert!(!s.is_secret_key(key), "{key}");
        }
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

    /// Recorded in a tracing field (with `%` or `?`), a `Secret` is only its marker.
    #[test]
    fn secret_recorded_in_tracing_fields_is_the_marker() {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let token = Secret::new(String::from("ghp_live_value_123"));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(token = %token, debug = ?token, "login");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(out.contains("token=[REDACTED] debug=[REDACTED]"), "{out}");
        assert!(!out.contains("ghp_live_value_123"), "{out}");
        assert_eq!(token.expose(), "ghp_live_value_123");
    }
}
