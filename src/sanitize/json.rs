//! JSON values: a value whose key names a secret goes whole, a string of its own is judged
//! by its key as a quoted one is in text, every other string is sanitized as text.

use std::borrow::Cow;

use serde_json::Value;

use super::engine::Sanitizer;
use super::entropy::{exempt_label, is_random_secret, JWK_PUBLIC_MEMBERS};
use super::keys::{is_password_like, normalize_key, KeyStrength};
use super::placeholder::{key_value_ok, looks_fake, MIN_SECRET_DIGITS};

impl Sanitizer {
    /// Sanitizes a JSON value in place, at any depth: a value whose key names a secret is
    /// replaced by the marker (booleans are kept; numbers too, unless the key names a
    /// password or the number has 8 digits or more;
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
                self.sanitize_keys(map);
                let jwk = map.contains_key("kty");
                for (k, v) in map.iter_mut() {
                    // A key that was a secret (now a marker) does not make its value one.
                    let class = (!self.is_marker(k)).then(|| self.classify(k)).flatten();
                    if let Some((strength, kind)) = class {
                        let password_like = is_password_like(k);
                        let strong = strength == KeyStrength::Strong;
                        let redact = match v {
                            Value::Null | Value::Bool(_) => false,
                            // A password is a secret whatever its digits; under another secret
                            // key a long number is (`api_key: 12345678901234`), a count is not
                            // (`prompt_tokens: 1234`).
                            Value::Number(num) => {
                                strong
                                    && (password_like
                                        || (num.to_string().len() >= MIN_SECRET_DIGITS
                                            && !normalize_key(k).ends_with("tokens")))
                            }
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

impl Sanitizer {
    /// Object keys are text that leaves the process too (a map keyed by a token): a key long
    /// enough to hold a secret ([`MIN_KEY_SECRET_LEN`] bytes) goes through the text rules and
    /// detectors, and the map is rebuilt only when one changed. Two keys that become the
    /// same marker stay apart (`#2`, `#3`, ...).
    fn sanitize_keys(&self, map: &mut serde_json::Map<String, Value>) {
        let changes = |k: &String| {
            k.len() >= MIN_KEY_SECRET_LEN && matches!(self.sanitize_str(k), Cow::Owned(_))
        };
        if !map.keys().any(changes) {
            return;
        }
        for (k, v) in std::mem::take(map) {
            let clean = if k.len() >= MIN_KEY_SECRET_LEN {
                self.sanitize_str(&k).into_owned()
            } else {
                k
            };
            let mut key = clean.clone();
            let mut n = 1;
            while map.contains_key(&key) {
                n += 1;
                key = format!("{clean}#{n}");
            }
            map.insert(key, v);
        }
    }
}

/// Shortest object key scanned for a secret: every detector's shortest match is longer, and
/// most keys (field names) are shorter, so they cost nothing.
const MIN_KEY_SECRET_LEN: usize = 16;

#[cfg(test)]
mod tests {
    use crate::sanitize::Sanitizer;
    use serde_json::json;

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
    fn object_keys_holding_secrets_are_redacted() {
        let s = Sanitizer::default();
        let token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
        let mut v = json!({
            "sessions": { token: {"user": "alice"}, "user_id": 7 },
            "by_url": { "postgres://app:Hunter2Secret99@db.internal/x": 1 },
            "pairs": { token: 1, "ghp_zyxwvutsrqponmlkjihgfedcba9876543210": 2 }
        });
        s.sanitize_json(&mut v);
        let text = v.to_string();
        assert!(
            !text.contains("ghp_") && !text.contains("Hunter2"),
            "{text}"
        );
        assert_eq!(v["sessions"]["user_id"], 7);
        assert_eq!(v["sessions"]["[REDACTED:github_token]"]["user"], "alice");
        // Two keys that became the same marker are both kept.
        assert_eq!(v["pairs"].as_object().unwrap().len(), 2, "{text}");
        assert!(s.redaction_counts()["github_token"] >= 3);
    }

    #[test]
    fn numbers_under_secret_keys() {
        let s = Sanitizer::default();
        let mut v = json!({
            "api_key": 12345678901234u64,
            "auth_token": 87654321,
            "user_password": 1234,
            "prompt_tokens": 123456789,
            "token_count": 12,
            "port": 5432,
            "retries": 12345678,
            "pin": 8812,
            "otp_code": 492031,
            "shipping": 4821,
            "pinecone_index": 7
        });
        s.sanitize_json(&mut v);
        assert_eq!(
            v,
            json!({
                "api_key": "[REDACTED:api_key]",
                "auth_token": "[REDACTED:token]",
                "user_password": "[REDACTED:password]",
                "prompt_tokens": 123456789,
                "token_count": 12,
                "port": 5432,
                "retries": 12345678,
                "pin": "[REDACTED:pin]",
                "otp_code": "[REDACTED:otp]",
                "shipping": 4821,
                "pinecone_index": 7
            })
        );
        for (text, kept) in [
            ("api_key = 12345678901234", false),
            ("--api-key 12345678901234", false),
            ("token: 87654321", false),
            ("max_tokens=1024", true),
            ("token: 3", true),
            ("mapping=12345678901234", true),
            ("spinner: 4921", true),
            // A PIN or one-time code is a secret however short; words that hold `pin` or
            // `otp` are not keys of one.
            ("pin = 1234", false),
            ("otp: 492031", false),
            (r#""pin": 8812"#, false),
            ("user_pin=0420 pinCode: 77310 otp_code=492031", false),
            ("pinned: 1234 shipping: 4821 topic: 4821 opinion=4821", true),
            ("pincode: 560001", true),
        ] {
            let out = s.sanitize_str(text);
            assert_eq!(out == text, kept, "{text} -> {out}");
        }
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
}
