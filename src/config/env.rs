//! Environment variables read by [`Builder::build`](super::Builder::build) (code set on the
//! builder wins).

// Every setting that has a variable resolves through one ladder, `Vars::setting`: the
// builder's value, else the variable parsed, else the default.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::BuildError;

/// Comma-separated `host:port` list.
pub const BOOTSTRAP_SERVERS: &str = "OMNINODE_KAFKA_BOOTSTRAP_SERVERS";
/// Service name (envelope `source.service_name`).
pub const SERVICE_NAME: &str = "OMNINODE_SERVICE_NAME";
/// Instance id (envelope `source.instance_id`).
pub const INSTANCE_ID: &str = "OMNINODE_INSTANCE_ID";
/// Default tenant.
pub const TENANT_ID: &str = "OMNINODE_TENANT_ID";
/// Default namespace.
pub const NAMESPACE: &str = "OMNINODE_NAMESPACE";
/// Prefix of every Kafka topic (not of `event_type`).
pub const TOPIC_PREFIX: &str = "OMNINODE_TOPIC_PREFIX";
/// Spool directory.
pub const SPOOL_DIR: &str = "OMNINODE_SPOOL_DIR";
/// Spool size bound in bytes.
pub const SPOOL_MAX_BYTES: &str = "OMNINODE_SPOOL_MAX_BYTES";
/// When the write-ahead spool is synced: `always`, `never`, or an interval (`10ms`).
pub const SPOOL_FSYNC: &str = "OMNINODE_SPOOL_FSYNC";
/// Overrides the retry budget of both retryable classes.
pub const DLQ_MAX_RETRIES: &str = "OMNINODE_DLQ_MAX_RETRIES";
/// Queue capacity in events.
pub const QUEUE_CAPACITY: &str = "OMNINODE_QUEUE_CAPACITY";
/// Default shutdown deadline: `5s`, `500ms`, or a bare number of milliseconds.
pub const SHUTDOWN_TIMEOUT_MS: &str = "OMNINODE_SHUTDOWN_TIMEOUT_MS";
/// How long events may wait without an acknowledgement before the health is degraded
/// (`15s`, `500ms`, or milliseconds).
pub const DEGRADED_AFTER: &str = "OMNINODE_DEGRADED_AFTER";
/// `disk` (default) or `memory`: where undelivered events are kept (see
/// [`SpoolMode`](super::SpoolMode)).
pub const SPOOL: &str = "OMNINODE_SPOOL";
/// `true`/`1`: the pipeline does nothing (no Kafka, no spool, no worker), like
/// `OTEL_SDK_DISABLED`.
pub const DISABLED: &str = "OMNINODE_DISABLED";
/// Prefix of librdkafka passthrough properties: `OMNINODE_KAFKA_SASL_PASSWORD` becomes
/// `sasl.password`.
pub const KAFKA_PREFIX: &str = "OMNINODE_KAFKA_";

/// A setting's variable, and how to fix a value of it that does not parse.
#[derive(Debug, Clone, Copy)]
pub(super) struct Var {
    name: &'static str,
    hint: &'static str,
}

impl Var {
    /// A variable whose every value is usable (text, a path).
    const fn text(name: &'static str) -> Self {
        Var { name, hint: "" }
    }

    /// A variable whose value may not parse, and how to fix it then.
    const fn number(name: &'static str, hint: &'static str) -> Self {
        Var { name, hint }
    }
}

pub(super) const BOOTSTRAP_SERVERS_VAR: Var = Var::text(BOOTSTRAP_SERVERS);
pub(super) const SERVICE_NAME_VAR: Var = Var::text(SERVICE_NAME);
pub(super) const INSTANCE_ID_VAR: Var = Var::text(INSTANCE_ID);
pub(super) const TENANT_ID_VAR: Var = Var::text(TENANT_ID);
pub(super) const NAMESPACE_VAR: Var = Var::text(NAMESPACE);
pub(super) const TOPIC_PREFIX_VAR: Var = Var::text(TOPIC_PREFIX);
pub(super) const SPOOL_DIR_VAR: Var = Var::text(SPOOL_DIR);
pub(super) const QUEUE_CAPACITY_VAR: Var =
    Var::number(QUEUE_CAPACITY, "use a whole number of events, e.g. 16384");
pub(super) const SPOOL_MAX_BYTES_VAR: Var =
    Var::number(SPOOL_MAX_BYTES, "use a size in bytes, e.g. 268435456");
pub(super) const SPOOL_FSYNC_VAR: Var = Var::number(
    SPOOL_FSYNC,
    "use always, never, or an interval such as 10ms or 1s",
);
pub(super) const DLQ_MAX_RETRIES_VAR: Var =
    Var::number(DLQ_MAX_RETRIES, "use a whole number of retries, e.g. 3");
pub(super) const SHUTDOWN_TIMEOUT_VAR: Var = Var::number(
    SHUTDOWN_TIMEOUT_MS,
    "use a duration such as 10s or 500ms (a bare number is milliseconds)",
);
pub(super) const DEGRADED_AFTER_VAR: Var = Var::number(
    DEGRADED_AFTER,
    "use a duration such as 15s or 500ms (a bare number is milliseconds)",
);
pub(super) const SPOOL_VAR: Var = Var::number(SPOOL, "use disk or memory");
pub(super) const DISABLED_VAR: Var = Var::number(DISABLED, "use true or false");

/// A setting's type, read from its variable's (trimmed, non-empty) text.
pub(super) trait FromEnv: Sized {
    /// `None` when the text is not a value of the type.
    fn from_env(text: &str) -> Option<Self>;
}

impl FromEnv for String {
    fn from_env(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
}

impl FromEnv for PathBuf {
    fn from_env(text: &str) -> Option<Self> {
        Some(PathBuf::from(text))
    }
}

macro_rules! from_env_by_parse {
    ($($ty:ty),*) => {$(
        impl FromEnv for $ty {
            fn from_env(text: &str) -> Option<Self> {
                text.parse().ok()
            }
        }
    )*};
}
from_env_by_parse!(usize, u64, u32, super::FsyncPolicy, super::SpoolMode);

/// `5s`, `500ms`, or a bare number of milliseconds.
impl FromEnv for Duration {
    fn from_env(text: &str) -> Option<Self> {
        super::parse_duration(text)
    }
}

impl FromEnv for bool {
    fn from_env(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        }
    }
}

/// For a setting that has no default value (`None` is the default).
impl<T: FromEnv> FromEnv for Option<T> {
    fn from_env(text: &str) -> Option<Self> {
        T::from_env(text).map(Some)
    }
}

/// The `OMNINODE_*` variables a [`Builder`](super::Builder) resolves against.
#[derive(Debug, Clone, Copy)]
pub(super) struct Vars<'a>(pub(super) &'a BTreeMap<String, String>);

impl Vars<'_> {
    /// A variable's value, trimmed; an empty one counts as unset.
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// One setting's ladder: the builder's value, else `var` parsed (a value that does not
    /// parse is [`BuildError::BadValue`] with the variable's hint), else `default`.
    pub(super) fn setting<T: FromEnv>(
        &self,
        code: Option<T>,
        var: Var,
        default: impl FnOnce() -> T,
    ) -> Result<T, BuildError> {
        if let Some(value) = code {
            return Ok(value);
        }
        match self.get(var.name) {
            Some(text) => {
                T::from_env(&text).ok_or_else(|| BuildError::bad_value(var.name, text, var.hint))
            }
            None => Ok(default()),
        }
    }
}

/// The process's `OMNINODE_*` variables, or none when the builder ignores the environment.
pub(super) fn read(ignore_env: bool) -> BTreeMap<String, String> {
    if ignore_env {
        return BTreeMap::new();
    }
    std::env::vars()
        .filter(|(k, _)| k.starts_with("OMNINODE_"))
        .collect()
}

/// A variable map for tests.
#[cfg(test)]
pub(super) fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_beats_env_beats_default() {
        // (code, environment, expected)
        let cases: [(Option<usize>, Option<&str>, usize); 6] = [
            (Some(7), Some("100"), 7),
            (Some(7), None, 7),
            (Some(7), Some("not a number"), 7),
            (None, Some(" 100 "), 100),
            (None, None, 16_384),
            (None, Some("   "), 16_384),
        ];
        for (code, env, expected) in cases {
            let map = vars(
                &env.map(|v| (QUEUE_CAPACITY, v))
                    .into_iter()
                    .collect::<Vec<_>>(),
            );
            let got = Vars(&map).setting(code, QUEUE_CAPACITY_VAR, || 16_384);
            assert_eq!(got.unwrap(), expected, "code {code:?}, env {env:?}");
        }
    }

    #[test]
    fn every_type_reads_its_variable() {
        let map = vars(&[
            (SERVICE_NAME, " svc "),
            (SPOOL_DIR, "/var/spool/x"),
            (SPOOL_MAX_BYTES, "8192"),
            (DLQ_MAX_RETRIES, "2"),
            (SHUTDOWN_TIMEOUT_MS, "1500"),
        ]);
        let v = Vars(&map);
        assert_eq!(
            v.setting(None, SERVICE_NAME_VAR, String::new).unwrap(),
            "svc"
        );
        assert_eq!(
            v.setting(None, SPOOL_DIR_VAR, PathBuf::new).unwrap(),
            PathBuf::from("/var/spool/x")
        );
        assert_eq!(v.setting(None, SPOOL_MAX_BYTES_VAR, || 0u64).unwrap(), 8192);
        assert_eq!(
            v.setting(None, DLQ_MAX_RETRIES_VAR, || None::<u32>)
                .unwrap(),
            Some(2)
        );
        assert_eq!(
            v.setting(None, SHUTDOWN_TIMEOUT_VAR, || Duration::ZERO)
                .unwrap(),
            Duration::from_millis(1500)
        );
        // Unset: the default, including "no value" for a setting without one.
        let empty = BTreeMap::new();
        assert_eq!(
            Vars(&empty)
                .setting(None, DLQ_MAX_RETRIES_VAR, || None::<u32>)
                .unwrap(),
            None
        );
    }

    #[test]
    fn bad_env_value_is_bad_value_with_the_hint() {
        // (variable, value, hint)
        let cases = [
            (
                QUEUE_CAPACITY_VAR,
                "lots",
                "use a whole number of events, e.g. 16384",
            ),
            (
                QUEUE_CAPACITY_VAR,
                "-1",
                "use a whole number of events, e.g. 16384",
            ),
            (
                SPOOL_MAX_BYTES_VAR,
                "1GB",
                "use a size in bytes, e.g. 268435456",
            ),
            (
                DLQ_MAX_RETRIES_VAR,
                "3.5",
                "use a whole number of retries, e.g. 3",
            ),
            (
                SHUTDOWN_TIMEOUT_VAR,
                "ten seconds",
                "use a duration such as 10s or 500ms (a bare number is milliseconds)",
            ),
        ];
        for (var, value, hint) in cases {
            let map = vars(&[(var.name, &format!(" {value} "))]);
            // Every numeric setting, whatever its type, fails the same way.
            let errors = [
                Vars(&map).setting(None, var, || 0usize).map(drop),
                Vars(&map).setting(None, var, || 0u64).map(drop),
                Vars(&map).setting(None, var, || None::<u32>).map(drop),
                Vars(&map).setting(None, var, || Duration::ZERO).map(drop),
            ];
            for e in errors {
                match e {
                    Err(BuildError::BadValue {
                        name,
                        value: v,
                        hint: h,
                    }) => {
                        assert_eq!((name.as_str(), v.as_str(), h), (var.name, value, hint));
                    }
                    other => panic!("{value:?} under {}: {other:?}", var.name),
                }
            }
            assert_eq!(
                Vars(&map)
                    .setting(None, var, || 0usize)
                    .unwrap_err()
                    .to_string(),
                format!("{}=`{value}` is invalid: {hint}", var.name)
            );
        }
    }
}
