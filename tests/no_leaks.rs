//! Secrets never reach error messages or `Debug` output of the configuration and guard.

mod common;

use std::time::Duration;

use tracing_subscriber::prelude::*;

#[test]
fn a_rejected_kafka_property_does_not_echo_its_value() {
    let spool = common::spool_dir();
    let err = common::builder("127.0.0.1:9", "", spool.path())
        .kafka_property(
            "sasl.jaas.confg",
            "PlainLoginModule password=\"hunter2-secret\"",
        )
        .build()
        .expect_err("librdkafka rejects an unknown property");
    let text = err.to_string();
    assert!(text.contains("sasl.jaas.confg"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn debug_of_config_and_guard_redacts_secrets() {
    let spool = common::spool_dir();
    let builder = common::builder(&common::closed_port(), "", spool.path())
        .kafka_property("sasl.password", "hunter2-secret")
        .shutdown_timeout(Duration::from_millis(500));
    assert!(!format!("{builder:?}").contains("hunter2"));
    let config = builder.resolve().unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
    let (layer, guard) = builder.build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let span = tracing::info_span!("agent", agent_name = "a", api_key = "sk-live-hunter2");
        let _e = span.enter();
        let shown = format!("{guard:?} {guard:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    });
    let _ = guard.shutdown(Duration::from_millis(500));
}
