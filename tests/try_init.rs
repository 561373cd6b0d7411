//! `try_init()` reads the environment, installs `registry + EnvFilter + layer` globally and
//! returns the guard; a second call reports that a subscriber is already installed.

mod common;

use std::time::Duration;

#[test]
fn try_init_installs_a_working_global_pipeline() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("init");
    common::provision(&bootstrap, &prefix);
    let spool = common::spool_dir();
    // This test binary holds only this test, so setting the process environment is safe.
    std::env::set_var("OMNINODE_KAFKA_BOOTSTRAP_SERVERS", &bootstrap);
    std::env::set_var("OMNINODE_TOPIC_PREFIX", &prefix);
    std::env::set_var("OMNINODE_SERVICE_NAME", "init-svc");
    std::env::set_var("OMNINODE_TENANT_ID", "env-tenant");
    std::env::set_var("OMNINODE_SPOOL_DIR", spool.path());
    // Wants only warnings: audit events and agent runs must get through anyway.
    std::env::set_var("RUST_LOG", "warn");
    let guard = tracing_omninode::try_init().expect("first init");
    assert!(matches!(
        tracing_omninode::try_init(),
        Err(tracing_omninode::InitError::AlreadyInstalled(_))
    ));
    tracing::warn!(answer = 42, "configured from the environment");
    tracing::info!("filtered out by RUST_LOG");
    // An agent run at INFO: its lifecycle events are never filtered away by RUST_LOG.
    tracing::info_span!("plan", agent_name = "planner").in_scope(|| {
        tracing::info!("inside the run, filtered out by RUST_LOG");
    });
    tracing_omninode::audit!(
        action = "init.check",
        actor = "test",
        resource = "env",
        outcome = "success"
    );
    let report = guard.shutdown(Duration::from_secs(20)).unwrap();
    assert_eq!(report.delivered, 4, "{report:?}");
    let got = common::consume(
        &bootstrap,
        &common::event_topics(&prefix),
        4,
        Duration::from_secs(20),
    );
    assert_eq!(got.len(), 4);
    let types: Vec<&str> = got
        .iter()
        .map(|r| r.value["event_type"].as_str().unwrap())
        .collect();
    for t in [
        "omninode.logging.audit.v1",
        "omninode.agent.execution.started.v1",
        "omninode.agent.execution.completed.v1",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    let v = &got
        .iter()
        .find(|r| r.value["event_type"] == "omninode.logging.application.v1")
        .expect("the log line")
        .value;
    assert_eq!(v["source"]["service_name"], "init-svc");
    assert_eq!(v["tenant_id"], "env-tenant");
    assert_eq!(v["payload"]["context"]["answer"], 42);
}
