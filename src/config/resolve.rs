//! [`resolve`]: a [`Builder`] over the environment over the defaults, validated into a
//! [`Config`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tracing::Level;

use super::env::{self, Vars};
use super::{kafka_props, BuildError, Builder, Config, SpoolMode, DEFAULT_DEGRADED_AFTER};
use super::{
    DEFAULT_BATCH_SIZE, DEFAULT_GUARANTEED_WAIT, DEFAULT_LINGER, DEFAULT_MESSAGE_MAX_BYTES,
    DEFAULT_MESSAGE_TIMEOUT, DEFAULT_QUEUE_CAPACITY, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_SPOOL_FSYNC,
    DEFAULT_SPOOL_MAX_BYTES,
};

/// The default spool directory of a service: under the user's state directory
/// (`$XDG_STATE_HOME`, else `~/.local/state`, on Linux; the local data directory elsewhere),
/// `omninode/spool/<service>-<cluster>`, where `<cluster>` is a short hash of the bootstrap
/// servers and the topic prefix, so two services, or one service configured for two
/// clusters, never share a directory by accident; the temp directory only when the user
/// has neither. The spool refuses a directory another user owns or may write to, so a
/// shared temp directory fails the build with a message that says what to set.
pub(crate) fn default_spool_dir(service_name: &str, bootstrap: &str, prefix: &str) -> PathBuf {
    use sha2::Digest;
    let mut servers: Vec<&str> = bootstrap.split(',').map(str::trim).collect();
    servers.sort_unstable();
    let digest = sha2::Sha256::digest(format!("{}\n{prefix}", servers.join(",")));
    let cluster: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("omninode").join("spool"))
        .unwrap_or_else(|| std::env::temp_dir().join("omninode-spool"))
        .join(format!(
            "{}-{cluster}",
            service_name.replace(['/', '\\'], "_")
        ))
}

fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}", std::process::id())
}

fn default_service_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown-service".into())
}

/// `Err(BadValue)` for the setting `name` unless `ok`.
fn ensure(ok: bool, name: &str, value: String, hint: &'static str) -> Result<(), BuildError> {
    if ok {
        Ok(())
    } else {
        Err(BuildError::bad_value(name, value, hint))
    }
}

fn check_bootstrap_servers(servers: &str) -> Result<(), BuildError> {
    for server in servers.split(',') {
        let server = server.trim();
        let server = server.rsplit_once("://").map_or(server, |(_, s)| s);
        let ok = server
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(BuildError::BadBootstrapServer(server.to_owned()));
        }
    }
    Ok(())
}

/// Every setting from the builder, else from `vars`, else its default; then validated.
pub(super) fn resolve(b: &Builder, vars: &BTreeMap<String, String>) -> Result<Config, BuildError> {
    let v = Vars(vars);

    let disabled = v.setting(b.disabled, env::DISABLED_VAR, || false)?;
    let bootstrap_servers = v.setting(
        b.bootstrap_servers.clone().map(Some),
        env::BOOTSTRAP_SERVERS_VAR,
        || None,
    )?;
    let bootstrap_servers = match bootstrap_servers {
        Some(servers) => {
            check_bootstrap_servers(&servers)?;
            servers
        }
        // A disabled pipeline never connects.
        None if disabled => String::new(),
        None => return Err(BuildError::MissingBootstrapServers),
    };
    let default = || "default".to_owned();
    let service_name = v.setting(
        b.service_name.clone(),
        env::SERVICE_NAME_VAR,
        default_service_name,
    )?;
    let instance_id = v.setting(
        b.instance_id.clone(),
        env::INSTANCE_ID_VAR,
        default_instance_id,
    )?;
    let tenant_id = v.setting(b.tenant_id.clone(), env::TENANT_ID_VAR, default)?;
    let namespace = v.setting(b.namespace.clone(), env::NAMESPACE_VAR, default)?;
    for (name, value) in [
        ("service_name", &service_name),
        ("instance_id", &instance_id),
        ("tenant_id", &tenant_id),
        ("namespace", &namespace),
    ] {
        if value.trim().is_empty() {
            return Err(BuildError::Empty(name));
        }
    }
    let topic_prefix = v.setting(b.topic_prefix.clone(), env::TOPIC_PREFIX_VAR, String::new)?;
    if !topic_prefix
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return Err(BuildError::BadTopicPrefix(topic_prefix));
    }
    let queue_capacity = v.setting(b.queue_capacity, env::QUEUE_CAPACITY_VAR, || {
        DEFAULT_QUEUE_CAPACITY
    })?;
    ensure(
        queue_capacity > 0,
        "queue_capacity",
        queue_capacity.to_string(),
        "the queue needs room for at least one event",
    )?;
    let spool_max_bytes = v.setting(b.spool_max_bytes, env::SPOOL_MAX_BYTES_VAR, || {
        DEFAULT_SPOOL_MAX_BYTES
    })?;
    ensure(
        spool_max_bytes >= 4096,
        "spool_max_bytes",
        spool_max_bytes.to_string(),
        "the spool needs at least 4096 bytes",
    )?;
    let spool_fsync = v.setting(b.spool_fsync, env::SPOOL_FSYNC_VAR, || DEFAULT_SPOOL_FSYNC)?;
    let max_retries = v.setting(b.max_retries.map(Some), env::DLQ_MAX_RETRIES_VAR, || None)?;
    let shutdown_timeout = v.setting(b.shutdown_timeout, env::SHUTDOWN_TIMEOUT_VAR, || {
        DEFAULT_SHUTDOWN_TIMEOUT
    })?;
    let spool_dir = v.setting(b.spool_dir.clone(), env::SPOOL_DIR_VAR, || {
        default_spool_dir(&service_name, &bootstrap_servers, &topic_prefix)
    })?;
    let spool_mode = v.setting(b.spool_mode, env::SPOOL_VAR, SpoolMode::default)?;
    let degraded_after = v.setting(b.degraded_after, env::DEGRADED_AFTER_VAR, || {
        DEFAULT_DEGRADED_AFTER
    })?;

    // Settings without a variable: the builder's value, else the default.
    let batch_size = b.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
    ensure(
        (1..=1_000_000).contains(&batch_size),
        "batch_size",
        batch_size.to_string(),
        "use 1 ..= 1000000",
    )?;
    let message_max_bytes = b.message_max_bytes.unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
    ensure(
        (1000..=1_000_000_000).contains(&message_max_bytes),
        "message_max_bytes",
        message_max_bytes.to_string(),
        "librdkafka accepts 1000 ..= 1000000000",
    )?;
    let message_timeout = b.message_timeout.unwrap_or(DEFAULT_MESSAGE_TIMEOUT);
    ensure(
        message_timeout >= Duration::from_millis(100),
        "message_timeout",
        format!("{message_timeout:?}"),
        "use at least 100 ms",
    )?;

    let mut kafka_props = kafka_props::from_env(vars);
    kafka_props.extend(b.kafka_props.clone());

    Ok(Config {
        bootstrap_servers,
        service_name,
        instance_id,
        tenant_id,
        namespace,
        topic_prefix,
        queue_capacity,
        guaranteed_wait: b.guaranteed_wait.unwrap_or(DEFAULT_GUARANTEED_WAIT),
        batch_size,
        linger: b.linger.unwrap_or(DEFAULT_LINGER),
        message_timeout,
        message_max_bytes,
        spool_dir,
        spool_max_bytes,
        max_retries,
        shutdown_timeout,
        degraded_after,
        spool_mode,
        disabled,
        spool_fsync,
        max_level: b.max_level.unwrap_or(Level::INFO),
        idempotence: b.idempotence.unwrap_or(true),
        kafka_props,
        partition: b.partition.clone(),
        sanitizer: b.sanitizer.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::vars;

    #[test]
    fn code_overrides_env_overrides_default() {
        let env = vars(&[
            (env::BOOTSTRAP_SERVERS, "envhost:9092"),
            (env::SERVICE_NAME, "from-env"),
            (env::QUEUE_CAPACITY, "100"),
            (env::DLQ_MAX_RETRIES, "2"),
            ("OMNINODE_KAFKA_SASL_PASSWORD", "hunter2"),
        ]);
        let b = Builder::default().service_name("from-code");
        let c = resolve(&b, &env).unwrap();
        assert_eq!(c.bootstrap_servers, "envhost:9092");
        assert_eq!(c.service_name, "from-code");
        assert_eq!(c.queue_capacity, 100);
        assert_eq!(c.max_retries, Some(2));
        assert_eq!(
            c.kafka_props.get("sasl.password").map(String::as_str),
            Some("hunter2")
        );
        assert_eq!(c.tenant_id, "default");
    }

    #[test]
    fn bad_values_say_how_to_fix() {
        let cases: Vec<(Builder, BTreeMap<String, String>, &str)> = vec![
            (
                Builder::default(),
                vars(&[]),
                "OMNINODE_KAFKA_BOOTSTRAP_SERVERS",
            ),
            (
                Builder::default().bootstrap_servers("nohost"),
                vars(&[]),
                "host:port",
            ),
            (
                Builder::default().bootstrap_servers("h:1"),
                vars(&[(env::QUEUE_CAPACITY, "lots")]),
                "whole number",
            ),
            (
                Builder::default()
                    .bootstrap_servers("h:1")
                    .queue_capacity(0usize),
                vars(&[]),
                "at least one",
            ),
            (
                Builder::default()
                    .bootstrap_servers("h:1")
                    .topic_prefix("bad prefix/"),
                vars(&[]),
                "topic prefix",
            ),
            (
                Builder::default().bootstrap_servers("h:1").tenant_id(""),
                vars(&[]),
                "tenant_id must not be empty",
            ),
        ];
        for (b, env, needle) in cases {
            let e = resolve(&b, &env).unwrap_err().to_string();
            assert!(e.contains(needle), "{e:?} should mention {needle:?}");
        }
    }

    #[test]
    fn each_variable_sits_between_code_and_default() {
        struct Case {
            var: &'static str,
            /// The variable's value, and the field it gives.
            env: (&'static str, &'static str),
            /// The same setting in code, and the field it gives.
            code: (fn(Builder) -> Builder, &'static str),
            /// The field with neither.
            default: String,
            field: fn(&Config) -> String,
        }
        let default_spool = default_spool_dir(&default_service_name(), "h:1", "");
        let cases = [
            Case {
                var: env::SERVICE_NAME,
                env: ("from-env", "from-env"),
                code: (|b| b.service_name("from-code"), "from-code"),
                default: default_service_name(),
                field: |c| c.service_name.clone(),
            },
            Case {
                var: env::INSTANCE_ID,
                env: (" from-env ", "from-env"),
                code: (|b| b.instance_id("from-code"), "from-code"),
                default: default_instance_id(),
                field: |c| c.instance_id.clone(),
            },
            Case {
                var: env::TENANT_ID,
                env: ("from-env", "from-env"),
                code: (|b| b.tenant_id("from-code"), "from-code"),
                default: "default".into(),
                field: |c| c.tenant_id.clone(),
            },
            Case {
                var: env::NAMESPACE,
                env: ("from-env", "from-env"),
                code: (|b| b.namespace("from-code"), "from-code"),
                default: "default".into(),
                field: |c| c.namespace.clone(),
            },
            Case {
                var: env::TOPIC_PREFIX,
                env: ("env.", "env."),
                code: (|b| b.topic_prefix("code."), "code."),
                default: String::new(),
                field: |c| c.topic_prefix.clone(),
            },
            Case {
                var: env::SPOOL_DIR,
                env: ("/from-env", "/from-env"),
                code: (|b| b.spool_dir("/from-code"), "/from-code"),
                default: default_spool.display().to_string(),
                field: |c| c.spool_dir.display().to_string(),
            },
            Case {
                var: env::QUEUE_CAPACITY,
                env: ("100", "100"),
                code: (|b| b.queue_capacity(7usize), "7"),
                default: DEFAULT_QUEUE_CAPACITY.to_string(),
                field: |c| c.queue_capacity.to_string(),
            },
            Case {
                var: env::SPOOL_MAX_BYTES,
                env: ("8192", "8192"),
                code: (|b| b.spool_max_bytes(5000u64), "5000"),
                default: DEFAULT_SPOOL_MAX_BYTES.to_string(),
                field: |c| c.spool_max_bytes.to_string(),
            },
            Case {
                var: env::DLQ_MAX_RETRIES,
                env: ("2", "Some(2)"),
                code: (|b| b.max_retries(4u32), "Some(4)"),
                default: "None".into(),
                field: |c| format!("{:?}", c.max_retries),
            },
            Case {
                var: env::SHUTDOWN_TIMEOUT_MS,
                env: ("1500", "1.5s"),
                code: (|b| b.shutdown_timeout(Duration::from_secs(2)), "2s"),
                default: format!("{DEFAULT_SHUTDOWN_TIMEOUT:?}"),
                field: |c| format!("{:?}", c.shutdown_timeout),
            },
            Case {
                var: env::SHUTDOWN_TIMEOUT_MS,
                env: ("5s", "5s"),
                code: (|b| b.shutdown_timeout(Duration::from_secs(2)), "2s"),
                default: format!("{DEFAULT_SHUTDOWN_TIMEOUT:?}"),
                field: |c| format!("{:?}", c.shutdown_timeout),
            },
            Case {
                var: env::DEGRADED_AFTER,
                env: ("500ms", "500ms"),
                code: (|b| b.degraded_after(Duration::from_secs(2)), "2s"),
                default: format!("{DEFAULT_DEGRADED_AFTER:?}"),
                field: |c| format!("{:?}", c.degraded_after),
            },
            Case {
                var: env::SPOOL,
                env: ("memory", "Memory"),
                code: (|b| b.spool_mode(SpoolMode::Memory), "Memory"),
                default: "Disk".into(),
                field: |c| format!("{:?}", c.spool_mode),
            },
            Case {
                var: env::DISABLED,
                env: ("true", "true"),
                code: (|b| b.disabled(true), "true"),
                default: "false".into(),
                field: |c| c.disabled.to_string(),
            },
        ];
        // One sanitizer for all: building the default one per resolve is slow in debug.
        let base = Builder::default().sanitizer(crate::sanitize::Sanitizer::default());
        for case in cases {
            let (var, in_code, in_env) = (case.var, case.code, case.env);
            let without = vars(&[(env::BOOTSTRAP_SERVERS, "h:1")]);
            let with = vars(&[(env::BOOTSTRAP_SERVERS, "h:1"), (var, in_env.0)]);
            let field = |b: &Builder, vars| (case.field)(&resolve(b, vars).unwrap());
            assert_eq!(
                field(&in_code.0(base.clone()), &with),
                in_code.1,
                "{var}: code"
            );
            assert_eq!(field(&base, &with), in_env.1, "{var}: env");
            assert_eq!(field(&base, &without), case.default, "{var}: default");
        }
    }

    #[test]
    fn default_spool_dirs_differ_by_service_and_cluster() {
        let a = default_spool_dir("api", "k1:9092,k2:9092", "");
        assert_eq!(a, default_spool_dir("api", " k2:9092 , k1:9092", ""));
        assert_ne!(a, default_spool_dir("api", "other:9092", ""));
        assert_ne!(a, default_spool_dir("api", "k1:9092,k2:9092", "staging."));
        assert_ne!(a, default_spool_dir("billing", "k1:9092,k2:9092", ""));
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("api-") && name.len() == "api-".len() + 8,
            "{name}"
        );
    }

    #[test]
    fn a_disabled_pipeline_needs_no_brokers() {
        let base = Builder::default().sanitizer(crate::sanitize::Sanitizer::default());
        let config = resolve(&base, &vars(&[(env::DISABLED, "1")])).unwrap();
        assert!(config.disabled);
        assert!(matches!(
            resolve(&base, &vars(&[])),
            Err(BuildError::MissingBootstrapServers)
        ));
        let err = resolve(&base, &vars(&[(env::DISABLED, "maybe")])).unwrap_err();
        assert_eq!(
            format!("{err:?}"),
            "OMNINODE_DISABLED=`maybe` is invalid: use true or false",
            "Debug shows the message"
        );
    }
}
