//! librdkafka passthrough properties: the `OMNINODE_KAFKA_*` variables, and the redaction of
//! the secret ones in `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use super::env::KAFKA_PREFIX;

/// Whether a librdkafka property holds a secret (redacted in `Debug`): librdkafka's own
/// sensitive properties, and any name the sanitizer's key rules call a secret.
pub fn is_sensitive_property(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    crate::sanitize::names_secret(name)
        || n.contains("password")
        || n.contains("secret")
        || n.contains("sasl.username")
        || n.contains("jaas")
        || n.contains("oauthbearer.config")
        || n.ends_with(".pem")
        || n.contains("key.pem")
        || n.contains("token")
        || n.contains("credential")
        || n.contains("user.info")
}

/// The properties given in the environment: `OMNINODE_KAFKA_SASL_PASSWORD` is
/// `sasl.password`. The bootstrap servers are a setting of their own, not a property.
pub(super) fn from_env(vars: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut props = BTreeMap::new();
    for (k, v) in vars {
        if let Some(rest) = k.strip_prefix(KAFKA_PREFIX) {
            if rest != "BOOTSTRAP_SERVERS" {
                props.insert(rest.to_ascii_lowercase().replace('_', "."), v.clone());
            }
        }
    }
    props
}

/// Properties for `Debug`, the values of sensitive ones replaced by `[REDACTED]`.
pub(super) struct RedactedProps<'a>(pub(super) &'a BTreeMap<String, String>);

impl fmt::Debug for RedactedProps<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown: &str = if is_sensitive_property(k) {
                    "[REDACTED]"
                } else {
                    v
                };
                (k, shown)
            }))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{env::vars, resolve::resolve, Builder};
    use super::*;

    #[test]
    fn debug_redacts_secret_properties() {
        let b = Builder::default()
            .bootstrap_servers("h:1")
            .kafka_property("sasl.password", "hunter2-secret-value")
            .kafka_property("ssl.key.pem", "-----BEGIN PRIVATE KEY-----abc")
            // Not librdkafka's, but passed along by users: names the key rules know.
            .kafka_property("schema.registry.api.key", "apikey-value-1")
            .kafka_property("basic.auth.user.info", "bob:basic-pass-2")
            .kafka_property("client.id", "visible");
        let c = resolve(&b, &BTreeMap::new()).unwrap();
        for text in [format!("{b:?}"), format!("{c:?}"), format!("{c:#?}")] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("BEGIN PRIVATE"), "{text}");
            assert!(!text.contains("apikey-value-1"), "{text}");
            assert!(!text.contains("basic-pass-2"), "{text}");
            assert!(text.contains("visible"), "{text}");
        }
    }

    #[test]
    fn env_names_become_property_names() {
        let vars = vars(&[
            ("OMNINODE_KAFKA_SASL_PASSWORD", "hunter2"),
            ("OMNINODE_KAFKA_SECURITY_PROTOCOL", " SASL_SSL "),
            ("OMNINODE_KAFKA_BOOTSTRAP_SERVERS", "h:1"),
            ("OMNINODE_SERVICE_NAME", "svc"),
        ]);
        let props: Vec<_> = from_env(&vars).into_iter().collect();
        assert_eq!(
            props,
            [
                ("sasl.password".to_owned(), "hunter2".to_owned()),
                ("security.protocol".to_owned(), " SASL_SSL ".to_owned()),
            ]
        );
    }
}
