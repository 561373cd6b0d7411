//! The built-in rules (data): what each rule matches, which literals or scans gate it,
//! how a match is checked and where its value is; the key-name pattern the key rules share,
//! the prefixes the detectors own and the authorization schemes.

use regex::Regex;

use super::check::Check;
use super::entropy::quoted_random_scan;
use super::gate::{
    discord_scan, near_assignment, near_call_argument, near_cli_flag, near_code_word,
    near_login_token, near_set_command, near_short_flag, near_xml_element, telegram_scan,
};

pub(super) struct Rule {
    pub(super) kind: &'static str,
    pub(super) regex: Regex,
    pub(super) gate: Gate,
    pub(super) check: Check,
    /// The local check of [`Gate::KeywordsAt`].
    pub(super) near: Option<fn(&[u8], usize) -> bool>,
    /// Where the value is.
    pub(super) syntax: Syntax,
    /// See [`far_alternatives`]: the pattern looked for, and the rule without the
    /// alternative that looks for it.
    pub(super) far: Option<(LastStart, Regex)>,
}

/// A byte-level test of a whole text (see [`Gate::Scan`]).
pub(super) type ScanFn = fn(&str) -> bool;

/// How a rule decides which runs of text may reach its regex.
#[derive(Clone, Copy)]
pub(super) enum Gate {
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

/// Where a rule's value is: in its capture groups, or parsed after the match (the key rules
/// match only `key =`; parsing the value by hand keeps the regex small and fast).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Syntax {
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
pub(super) fn builtin_rules() -> Vec<RuleDef> {
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
    // `config set <key> <value>`, `setenv KEY value`, `export KEY value`, `git config --global
    // KEY value`, `consul kv put path/KEY value` (the commands of `SET_COMMANDS`; the gate checks which word it is).
    let set_rule = format!(
        r#"(?:^|[\s;&|(])(?:[A-Za-z\-]+:)?(?i:set|setenv|setx|export|env|config|configure|put)(?:[ \t]+-{{1,2}}[A-Za-z][A-Za-z\-]*){{0,2}}[ \t]+(?:[^\s=]*[/:])?(?P<key>{KEY_NAME})["']?[ \t]+"#
    );
    let detectors: Vec<(&'static str, String, Gate, Check)> = vec![
        ("private_key", format!(r"{PEM_HEADER}(?:[\s\S]{{32,}}?{PEM_FOOTER}|{PEM_BODY})"), Keywords(&["-----begin"]), Pem),
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
        // `login -u user -p password` (docker, podman, helm registry, oc, cf, az) and twine's
        // `-p`; elsewhere `-p` is often a port or a path, and a number of up to 5 digits is.
        ("cli_password", r#"\b(?:login|twine[ \t]+upload)\b[^\n|;&]*?[ \t]-p[ \t]+(?:'(?P<vq3>[^'\n]+)'|"(?P<vq2>[^"\n]+)"|(?P<vu>[^\s'"]*[^\s'"\d][^\s'"]*|\d{6,}))"#.into(), KeywordsAt(&["-p"], near_short_flag), Password),
        // The value of a secret store's set command (`az keyvault secret set --value`, `gh
        // secret set --body`, `aws secretsmanager ... --secret-string`, `aws ssm
        // put-parameter --value`).
        ("cli_secret", r#"(?i)\b(?:secrets?|put-parameter)\b[^\n|;&]*?[ \t]--(?:value|body|secret-string)(?:[ \t]+|=)(?:'(?P<vq3>[^'\n]+)'|"(?P<vq2>[^"\n]+)"|(?P<vu>[^\s'"]+))"#.into(), Keywords(&["--value", "--body", "--secret-string"]), Password),
        // `config http-basic.<repository> <user> <password>` (poetry, composer).
        ("cli_password", r#"\bhttp-basic\.[^\s]+[ \t]+(?P<user>[^\s'"]+)[ \t]+(?:'(?P<vq3>[^'\n]+)'|"(?P<vq2>[^"\n]+)"|(?P<vu>[^\s'"]+))"#.into(), Keywords(&["http-basic."]), Password),
        ("confluent_api_secret", r"\bconfluent[ \t]+api-key[ \t]+store[ \t]+(?P<user>[A-Za-z0-9]{16})[ \t]+(?P<secret>[A-Za-z0-9+/]{64})".into(), Keywords(&["confluent"]), Password),
        ("basic_auth", r"(?i)\bbasic[ \t]+(?P<secret>[A-Za-z0-9+/]{8,}={0,3})".into(), Keywords(&["basic"]), Credential),
        ("authorization", r#"(?i)\b(?:proxy-)?authorization\\?["']?[ \t]{0,3}[:=][ \t]{0,3}\\?["']?(?P<secret>(?:[A-Za-z]+[ \t]+)?[^\s"',;\\]{6,})"#.into(), Keywords(&["authorization"]), Credential),
        ("api_key_header", r#"(?i)\b(?:x-[a-z\-]*)?(?:api-?key|private-token|x-auth-token|apikey)\\?["']?[ \t]{0,3}:[ \t]{0,3}\\?["']?(?P<secret>[^\s"',;\\]{6,})"#.into(), Keywords(&["api-key", "apikey", "api_key", "private-token", "x-auth-token"]), Credential),
        ("url_password", r#"\b[a-zA-Z][a-zA-Z0-9+.\-]{1,20}://(?P<user>[^\s:/@"'<>]*):(?P<secret>[^\s@/"'<>]+)@"#.into(), Keywords(&["://"]), Password),
        ("connection_string_password", r#"(?i)(?:^|[;?&\s"',])(?:password|pwd|passwd)[ \t]*=[ \t]*(?P<secret>\{(?:[^}\n]|\}\}){0,256}\}|[^;&"'\s,]+)"#.into(), Keywords(&["password", "pwd", "passwd"]), Password),
        ("connection_string_password", r#"(?i)jdbc:oracle:[a-z0-9]+:(?P<user>[^/\s:@"']+)/(?P<secret>[^@\s"']+)@"#.into(), Keywords(&["jdbc:oracle:"]), Password),
        ("jaas_password", r#"(?i)password[ \t]*=[ \t]*\\?["'](?P<secret>[^"'\\]+)\\?["']"#.into(), Keywords(&["password"]), Password),
        ("secret_context", r#"(?i)\b(?P<ctx>pass(?:word|wd|phrase)?|pwd|identified[ \t]+by|shared[ _\-]?(?:value|secret|key)|hmac(?:[ _\-]?(?:key|secret))?|signing[ _\-]?(?:key|secret))[ \t]+(?:(?:is|was|to|of)[ \t]+)?(?:'(?P<vq3>[^'\s]{6,200})'|"(?P<vq2>[^"\s]{6,200})"|`(?P<vq1>[^`\s]{6,200})`|(?P<vu>[^\s"'`,;]{16,200}))"#.into(), Keywords(&["pass", "pwd", "identified", "shared", "hmac", "signing"]), ContextWord),
        // `cargo login <token>`: a random-looking run after `login` is a token.
        ("login_token", r#"\blogin[ \t]+(?P<vu>[^\s"'`,;]{16,200})"#.into(), KeywordsAt(&["login"], near_login_token), ContextWord),
        // A PIN or one-time code after its word (`pin 4821`, `PIN is 4821`, `otp code 492031`).
        ("pin", r"(?i)\bpin(?:[ \t]+(?:code|number|is|was))*[ \t]+(?P<secret>\d{4,10})\b".into(), KeywordsAt(&["pin"], near_code_word), Password),
        ("otp", r"(?i)\b[th]?otp(?:[ \t]+(?:code|is|was))*[ \t]+(?P<secret>\d{4,10})\b".into(), KeywordsAt(&["otp", "totp", "hotp"], near_code_word), Password),
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
            set_rule,
            KeywordsAt(KEY_GATE, near_set_command),
            KeyValue,
            Syntax::Flag,
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

/// A PEM private key block: its header, then the block up to its footer, or (a block cut
/// short, or JSON-escaped) at least 32 characters of its body.
const PEM_HEADER: &str = r"-----BEGIN[ A-Z0-9_-]*PRIVATE KEY(?: BLOCK)?-----";
const PEM_FOOTER: &str = r"-----END[ A-Z0-9_-]*PRIVATE KEY(?: BLOCK)?-----";
const PEM_BODY: &str = r"(?:\\[nr]|[A-Za-z0-9+/=\s]){32,}";

/// Rules whose first alternative looks for a pattern that may lie anywhere ahead (a PEM
/// block's footer): searched from past the last place that pattern starts, the rule runs as
/// the same pattern less that alternative, which finds the same matches without going to
/// the end of the text for a footer that is not there. Kind, where the pattern last starts,
/// and the rule without that alternative.
pub(super) fn far_alternatives() -> Vec<(&'static str, LastStart, String)> {
    vec![(
        "private_key",
        last_pem_footer,
        format!("{PEM_HEADER}{PEM_BODY}"),
    )]
}

/// Where a pattern last starts in a text, found in one linear scan.
pub(super) type LastStart = fn(&str) -> Option<usize>;

/// Where the last [`PEM_FOOTER`] starts: a footer lies within one run of its bytes
/// (`[ A-Z0-9_-]`), so it is the last `-----END` of the last run that has one before a
/// `PRIVATE KEY-----` or `PRIVATE KEY BLOCK-----`.
fn last_pem_footer(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let class = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit() || b" _-".contains(&c);
    let mut re = b.len();
    while re > 0 {
        while re > 0 && !class(b[re - 1]) {
            re -= 1;
        }
        let mut rs = re;
        while rs > 0 && class(b[rs - 1]) {
            rs -= 1;
        }
        let run = &text[rs..re];
        let tail = ["PRIVATE KEY-----", "PRIVATE KEY BLOCK-----"]
            .iter()
            .filter_map(|t| run.rfind(t))
            .max();
        if let Some(start) = tail.and_then(|t| run[..t].rfind("-----END")) {
            return Some(rs + start);
        }
        re = rs;
    }
    None
}

/// The key candidate: an identifier containing one of [`KEY_GATE`].
const KEY_NAME: &str = r"[A-Za-z0-9_.\-]*(?i:pass|pwd|pw|secret|token|key|cred|cookie|auth|hmac|seed|sig|jaas|pin|otp)[A-Za-z0-9_.\-]*";

/// A value: `\"escaped\"`, `"double"`, `'single'` or unquoted.
pub(super) const VALUE: &str = r#"(?:\\"(?P<vq1>[^"\\]*)\\"|"(?P<vq2>(?:[^"\\\n]|\\.)*)"|'(?P<vq3>[^'\n]*)'|(?P<vu>[^\s"',;&\\]+))"#;

/// Literals that gate the key rules (their regexes find a key candidate containing one of
/// them; [`classify_key`](super::keys::classify_key) decides).
pub(super) const KEY_GATE: &[&str] = &[
    "pass", "pwd", "pw", "secret", "token", "key", "cred", "cookie", "auth", "hmac", "seed", "sig",
    "jaas", "pin", "otp",
];

/// Detector prefixes: a value under a secret key that starts with one of these is only
/// redacted when the detector of that kind matches it (otherwise it is a near-miss).
pub(super) const OWNED_PREFIXES: &[(&str, &str)] = &[
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
pub(super) const AUTH_SCHEMES: &[&str] = &[
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

#[cfg(test)]
mod tests {
    use crate::sanitize::Sanitizer;

    #[test]
    fn last_pem_footer_is_the_last_start_of_the_footer_pattern() {
        let footer = regex::Regex::new(super::PEM_FOOTER).unwrap();
        for text in [
            "",
            "-----END PRIVATE KEY-----",
            "x -----END RSA PRIVATE KEY----- y -----END PRIVATE KEY BLOCK----- z",
            "-----END PRIVATE KEY-----END PRIVATE KEY-----",
            "-----END -----END X PRIVATE KEY----- -----END",
            "-----END PRIVATE KEY---- PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----abc-----END",
        ] {
            let brute = (0..=text.len())
                .rev()
                .find(|&i| footer.find_at(text, i).is_some_and(|m| m.start() == i));
            assert_eq!(super::last_pem_footer(text), brute, "{text}");
        }
    }

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
            // A name and its value after a set command (`config set`, `setenv`, `export`,
            // fish's `set -gx`, heroku's `config:set`, npm's registry-scoped key).
            ("mytool config set api_key Zq8vT2mK9pL4xW7rYb3n", "Zq8vT2mK9pL4xW7rYb3n"),
            ("npm config set //registry.npmjs.org/:_authToken 5eb4223e-4f1d-4d2b-9a8e-51c4f7e2d913", "5eb4223e"),
            ("setenv DB_PASS Tr0ub4dor.3x", "Tr0ub4dor.3x"),
            ("set -gx API_TOKEN Rk29fLq8Wm3x", "Rk29fLq8Wm3x"),
            ("heroku config:set SECRET_KEY Hq8ZvL2mX9pR4tW7 -a shop", "Hq8ZvL2mX9pR4tW7"),
            ("git config --global github.token Wm3xRk29fLq8Zq8vT2", "Wm3xRk29fLq8Zq8vT2"),
            (r#"dotnet user-secrets set "Smtp:Password" "Tg7pLq2xVb9""#, "Tg7pLq2xVb9"),
            // `login -u user -p password`; a secret store's value flag.
            ("docker login -u ci -p Zq8vT2mK9pL4 registry.local", "Zq8vT2mK9pL4"),
            ("oc login https://api:6443 -u admin -p 'Hq8Z vL2m'", "Hq8Z vL2m"),
            ("twine upload -u __token__ -p Rk29fLq8Wm3xQ dist/*", "Rk29fLq8Wm3xQ"),
            ("az keyvault secret set --vault-name kv --name db-pass --value Wm3xRk29fLq8", "Wm3xRk29fLq8"),
            ("gh secret set DEPLOY_TOKEN --body Pz4nQ8rT2v", "Pz4nQ8rT2v"),
            ("aws secretsmanager put-secret-value --secret-id db --secret-string Yw9bq1Ade", "Yw9bq1Ade"),
            // A PIN or one-time code after its word.
            ("enter pin 4821 to unlock", "4821"),
            ("PIN is 7731", "7731"),
            ("otp 492031 sent", "492031"),
            ("totp code 118822", "118822"),
            // SQL's `IDENTIFIED BY`, a key stored under a path, a token after `login`.
            (r#"mysql -e "CREATE USER 'a'@'%' IDENTIFIED BY 'Zq8vT2mK9pL4'""#, "Zq8vT2mK9pL4"),
            ("consul kv put app/db_password Hq8ZvL2mX9pR", "Hq8ZvL2mX9pR"),
            ("etcdctl put /app/api_token Wm3xRk29fLq8", "Wm3xRk29fLq8"),
            ("cargo login Zq8vT2mK9pL4xW7rYb3n", "Zq8vT2mK9pL4xW7rYb3n"),
            ("composer config --global http-basic.repo.local deploy Tg7pLq2xVb9", "Tg7pLq2xVb9"),
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
            // A set command with a name that is not a secret, or a word of prose after it.
            "mytool config set log_level debug; set token expired; export TOKEN_TTL 3600",
            "set password for user bob; git config --global user.name bob",
            // `-p` as a port, mysql's prompt (its next word is the database), a file or a
            // variable as a secret's value.
            "docker login -u ci -p 5000 r; psql -U app -p 5432; mysql -u root -p orders",
            r#"gh secret set TOKEN --body-file t.txt; gh secret set TOKEN --body "$TOKEN""#,
            "az keyvault secret show --name db-pass --value-only",
            // A word after `login`; `put` with a name that is not a secret.
            "login succeeded for user alice; docker login registry.internal.local:5000",
            "consul kv put app/max_connections 100; put token in the header",
            // `pin` / `otp` inside words, a GPIO pin, an Indian postal code.
            "spinner 4821 pinned 4821 shipping 4821 laptop 4821 hotpath 1234",
            "wire the LED to pin 13; pincode 560001",
            // Structural gates: clock times and hostnames are not bot tokens.
            "09:12:33.123 GET api.internal.example.org/v1",
        ];
        for text in negatives {
            assert_eq!(s.sanitize_str(text), text);
        }
    }
}
