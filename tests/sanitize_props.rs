//! Properties of the secret sanitizer (SPEC §6) over generated input:
//!
//! - it never panics, on arbitrary strings and on random text with secret-ish fragments
//!   (`password=`, `Bearer `, `-----BEGIN`, `://u:p@`, `eyJ`, markers, non-ASCII) spliced in;
//! - it is idempotent: `sanitize(sanitize(x)) == sanitize(x)`, for strings and JSON values;
//! - text that cannot contain a candidate comes back identical and borrowed;
//! - long repetitions of one fragment finish (the gates and value checks stay linear).

use std::borrow::Cow;
use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::{Map, Value};
use tracing_omninode::Sanitizer;

/// Fragments that trigger the rules' keywords and structural anchors, plus delimiters and
/// non-ASCII text that the byte-offset arithmetic must survive.
const FRAGMENTS: &[&str] = &[
    "password=",
    "passwd: ",
    "db_pass = ",
    "\"password\": \"",
    "\\\"password\\\":\\\"",
    "token=",
    "\"token\":",
    "api_key: ",
    "X-Api-Key: ",
    "Authorization: ",
    "authorization=",
    "Bearer ",
    "Basic ",
    "Token ",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----\\n",
    "-----END PRIVATE KEY-----",
    "://u:p@",
    "postgres://",
    "@",
    "eyJ",
    "eyJhbGciOiJIUzI1NiJ9.",
    ".",
    ":",
    "-u ",
    "--user ",
    " --password ",
    "curl -u a:",
    "sasl.password=",
    "sasl.jaas.config=",
    "password=\"",
    "getenv(\"api_token\", \"",
    "<password>",
    "</password>",
    "hmac=",
    "shared value '",
    "pass '",
    "user_auth=",
    "[REDACTED:password]",
    "[REDACTED",
    "]",
    "[",
    "${",
    "}",
    "{{",
    "$(",
    ")",
    "<",
    ">",
    "'",
    "\"",
    "\\",
    "\\n",
    "\n",
    "\t",
    ";",
    "&",
    "=",
    ",",
    "/",
    "%",
    "~",
    "Q~",
    "T3BlbkFJ",
    "sk-",
    "sk-ant-api03-",
    "AIza",
    "AKIA",
    "ghp_",
    "glpat-",
    "xoxb-1234567890-",
    "hooks.slack.com/services/",
    "bot123456789:",
    "SG.",
    "hf_",
    "xxxx",
    "EXAMPLE",
    "é",
    "日本語",
    "😀",
    "\u{0}",
    "\u{2026}",
];

/// Random text with fragments spliced in.
fn spliced() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
        2 => "[A-Za-z0-9+/=_-]{0,48}",
        1 => "[ a-z0-9]{0,12}",
        1 => any::<String>().prop_map(|s| s.chars().take(16).collect::<String>()),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// Keys for generated JSON: secret keys of each strength, descriptive and neutral keys.
const KEYS: &[&str] = &[
    "password",
    "db_password",
    "token",
    "api_key",
    "hmac",
    "user_auth",
    "signature_seed",
    "token_count",
    "key",
    "request_id",
    "msg",
    "config",
    "sasl.password",
    "Authorization",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        spliced().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        proptest::sample::select(KEYS).prop_map(str::to_owned),
                        "[a-zA-Z_.-]{0,12}",
                    ],
                    inner,
                ),
                0..6,
            )
            .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Built once: compiling the rules per case would dominate the run.
static S: LazyLock<Sanitizer> = LazyLock::new(Sanitizer::default);

proptest! {
    // No regression files are written next to the tests; a failure prints its input.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn never_panics_on_arbitrary_strings(x in any::<String>()) {
        let s = &*S;
        let _ = s.sanitize_str(&x);
    }

    #[test]
    fn idempotent_on_spliced_text(x in spliced()) {
        let s = &*S;
        let once = s.sanitize_str(&x).into_owned();
        let twice = s.sanitize_str(&once);
        prop_assert_eq!(twice.as_ref(), once.as_str(), "input: {:?}", x);
    }

    /// The alphabet has no vowel, `s`, `k`, `w`, `g`, `y`, `.`, `:`, `-`, `_` or `~`, so it
    /// cannot spell any prefilter keyword (`sk`, `pw`, `key`, `cred`, `seed`, `eyj`, `://`,
    /// `gr1348941`, ...) nor the `.` / `:` shapes the Discord and Telegram scans look for.
    #[test]
    fn text_without_candidates_comes_back_borrowed(x in "[bcdfhjlmnpqrtvxz0-9 ,]{0,300}") {
        let s = &*S;
        let out = s.sanitize_str(&x);
        prop_assert!(matches!(out, Cow::Borrowed(_)));
        prop_assert_eq!(out.as_ref(), x.as_str());
    }

    #[test]
    fn sanitize_json_never_panics_and_is_idempotent(v in json()) {
        let s = &*S;
        let mut once = v.clone();
        s.sanitize_json(&mut once);
        let mut twice = once.clone();
        s.sanitize_json(&mut twice);
        prop_assert_eq!(&twice, &once, "input: {}", v);
    }
}

/// Long runs of one fragment (keywords without separators, unbalanced brackets, unclosed
/// quotes, many candidates) finish in linear time and stay idempotent.
#[test]
fn adversarial_repetitions_stay_fast() {
    let s = &*S;
    for unit in [
        "key",
        "password=",
        "a=b ",
        ")",
        "password=)",
        "token: \"",
        "xoxb-1-",
        "eyJ",
        "-u a:",
        ":",
        ".",
        "aaaaaaaaaaaaaaaaaaaaaaaa.aaaaaa.",
        "12345:",
        "ghp_",
        "[REDACTED:x]",
        "\\\"password\\\":\\\"",
        "$(",
        "<",
        "&password=x",
    ] {
        let text = unit.repeat(16 * 1024 / unit.len());
        let once = s.sanitize_str(&text).into_owned();
        assert_eq!(s.sanitize_str(&once), once);
    }
}
