//! Deployable anywhere: where the home directory cannot be written (a read-only container
//! filesystem), the default disk spool fails the build with an error that names both ways
//! out, and `OMNINODE_SPOOL=memory` starts, bridges an outage in memory and replays it;
//! `OMNINODE_DISABLED=true` starts without any Kafka at all.
//!
//! One test in this binary: it sets the process environment. The home is a path under
//! `/dev/null`, which nobody can create, not even root (CI runs as root).

mod common;

use std::time::Duration;

use tracing_omninode::HealthStatus;
use tracing_subscriber::prelude::*;

#[test]
fn an_unwritable_home_fails_with_both_ways_out_and_starts_with_the_memory_spool() {
    std::env::set_var("HOME", "/dev/null/home");
    std::env::remove_var("XDG_STATE_HOME");
    for (k, _) in std::env::vars() {
        if k.starts_with("OMNINODE_") && k != "OMNINODE_TEST_BOOTSTRAP" {
            std::env::remove_var(k);
        }
    }
    let prefix = common::unique_prefix("ro-home");
    let mock = common::mock(&prefix);
    std::env::set_var("OMNINODE_KAFKA_BOOTSTRAP_SERVERS", mock.bootstrap_servers());
    std::env::set_var("OMNINODE_TOPIC_PREFIX", &prefix);
    std::env::set_var("OMNINODE_SERVICE_NAME", "ro-svc");

    // The default disk spool cannot be created.
    let err = tracing_omninode::builder().build().unwrap_err();
    let text = format!("{err:?}");
    for needle in [
        "/dev/null/home",
        "OMNINODE_SPOOL_DIR",
        "OMNINODE_SPOOL=memory",
        "lost",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }

    // Memory only: starts, keeps what an outage holds back, replays it when the broker is
    // back.
    std::env::set_var("OMNINODE_SPOOL", "memory");
    let (layer, guard) = tracing_omninode::builder()
        .message_timeout(Duration::from_secs(1))
        .build()
        .expect("the memory spool needs no directory");
    let subscriber = tracing_subscriber::registry().with(layer);
    mock.broker_down(1).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..5 {
            common::audit(&format!("r{i}"));
        }
    });
    let m = common::wait_for(&guard, Duration::from_secs(20), |m| m.spooled >= 5);
    assert!(m.spooled >= 5 && m.spool_records >= 5, "{m:?}");
    mock.broker_up(1).unwrap();
    let m = common::wait_for(&guard, Duration::from_secs(30), |m| m.replayed >= 5);
    assert_eq!((m.delivered, m.replayed, m.dropped), (5, 5, 0), "{m:?}");
    let report = guard.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(report.delivered, 5, "{report:?}");

    // Disabled: no brokers needed, nothing captured, flush and shutdown return at once.
    for k in ["OMNINODE_KAFKA_BOOTSTRAP_SERVERS", "OMNINODE_SPOOL"] {
        std::env::remove_var(k);
    }
    std::env::set_var("OMNINODE_DISABLED", "true");
    let (layer, guard) = tracing_omninode::builder().build().expect("disabled");
    let health = guard.handle();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        common::audit("ignored");
        tracing::info!("ignored too");
    });
    assert_eq!(guard.metrics().enqueued, 0);
    assert_eq!(health.health().status, HealthStatus::Disabled);
    assert!(health.health().healthy);
    assert!(guard.flush(Duration::from_secs(1)).is_ok());
    assert!(guard.shutdown(Duration::from_secs(1)).is_ok());
    assert_eq!(health.status(), HealthStatus::ShutDown);
}
