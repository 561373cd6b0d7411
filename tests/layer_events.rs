//! Plain tracing code, `#[instrument]`-annotated agents and the audit/security macros
//! produce the event stream of SPEC §1–§2 on a real broker.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tracing::instrument;
use tracing_subscriber::prelude::*;

#[instrument(fields(agent_name = "outer", user_request = "summarize", session_id = "s-1", quality_score, metrics.tokens))]
fn outer_agent() {
    tracing::info!(step = 1, "outer working");
    inner_agent(3).unwrap();
    let span = tracing::Span::current();
    span.record("quality_score", 0.75);
    span.record("metrics.tokens", 120u64);
}

#[instrument(fields(agent_name = "inner"))]
fn inner_agent(n: u32) -> Result<u32, String> {
    tracing::info!(n, "inner working");
    Ok(n * 2)
}

#[instrument(err, fields(agent_name = "failing"))]
fn failing_agent() -> Result<(), std::io::Error> {
    Err(std::io::Error::other("disk on fire"))
}

#[instrument(fields(agent_name = "async-agent"))]
async fn async_agent() -> u32 {
    for _ in 0..3 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    7
}

#[instrument(err, fields(agent_name = "async-failing"))]
async fn async_failing() -> Result<(), String> {
    tokio::task::yield_now().await;
    Err("async boom".to_string())
}

fn by_type<'a>(records: &'a [common::Consumed], t: &str) -> Vec<&'a Value> {
    records
        .iter()
        .map(|r| &r.value)
        .filter(|v| v["event_type"] == t)
        .collect()
}

fn agent<'a>(records: &'a [common::Consumed], t: &str, name: &str) -> Vec<&'a Value> {
    by_type(records, t)
        .into_iter()
        .filter(|v| v["payload"]["agent_name"] == name)
        .collect()
}

#[test]
fn tracing_code_becomes_the_event_stream() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("layer");
    common::provision(&bootstrap, &prefix);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_test_writer())
        .with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let _root = tracing::info_span!("http", route = "/plan", tenant_id = "globex").entered();
        tracing::info!(
            code = "ORDER_OK",
            user = "alice",
            route = "/inner-wins",
            "plain log line"
        );
        tracing::debug!("below the default level: not shipped");
        tracing_omninode::audit!(
            action = "user.delete",
            actor = "alice",
            resource = "user/42",
            outcome = "success"
        );
        tracing_omninode::security!(
            tenant_id = "initech",
            event_type = "permission_check",
            user_id = "u-9",
            resource = "billing",
            decision = "deny"
        );
        outer_agent();
        let _ = failing_agent();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(async_agent().await, 7);
            assert!(async_failing().await.is_err());
        });
    });
    let report = guard.shutdown(Duration::from_secs(20)).unwrap();
    assert_eq!(report.dead_lettered, 0, "{report:?}");
    let want = report.delivered as usize;
    let got = common::consume(
        &bootstrap,
        &common::event_topics(&prefix),
        want,
        Duration::from_secs(20),
    );
    assert_eq!(got.len(), want);

    // Application logs from plain tracing code.
    let logs = by_type(&got, "omninode.logging.application.v1");
    let plain = logs
        .iter()
        .find(|v| v["payload"]["message"] == "plain log line")
        .expect("plain log");
    assert_eq!(plain["payload"]["level"], "INFO");
    assert_eq!(plain["payload"]["logger"], "layer_events");
    assert_eq!(plain["payload"]["code"], "ORDER_OK");
    assert_eq!(plain["payload"]["context"]["user"], "alice");
    assert_eq!(
        plain["payload"]["context"]["route"], "/inner-wins",
        "event fields win over span fields"
    );
    assert_eq!(plain["tenant_id"], "globex", "tenant from the span");
    assert!(logs
        .iter()
        .all(|v| v["payload"]["message"] != "below the default level: not shipped"));

    // Audit and security.
    let audit = by_type(&got, "omninode.logging.audit.v1");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["payload"]["actor"], "alice");
    assert_eq!(audit[0]["payload"]["tenant_id"], "globex");
    let sec = by_type(&got, "omninode.logging.security.v1");
    assert_eq!(sec.len(), 1);
    assert_eq!(sec[0]["payload"]["decision"], "deny");
    assert_eq!(
        sec[0]["tenant_id"], "initech",
        "macro tenant wins over the span's"
    );
    let key_of: HashMap<String, Option<String>> = got
        .iter()
        .map(|r| {
            (
                r.value["event_id"].as_str().unwrap().to_owned(),
                r.key.clone(),
            )
        })
        .collect();
    assert_eq!(
        key_of[sec[0]["event_id"].as_str().unwrap()].as_deref(),
        Some("initech")
    );

    // Agent lifecycle: exactly one started and one end per execution.
    const STARTED: &str = "omninode.agent.execution.started.v1";
    const COMPLETED: &str = "omninode.agent.execution.completed.v1";
    const FAILED: &str = "omninode.agent.execution.failed.v1";
    for (name, end) in [
        ("outer", COMPLETED),
        ("inner", COMPLETED),
        ("failing", FAILED),
        ("async-agent", COMPLETED),
        ("async-failing", FAILED),
    ] {
        let s = agent(&got, STARTED, name);
        assert_eq!(s.len(), 1, "{name}: one started");
        let e = agent(&got, end, name);
        assert_eq!(e.len(), 1, "{name}: one end");
        let other = if end == COMPLETED { FAILED } else { COMPLETED };
        assert!(agent(&got, other, name).is_empty(), "{name}");
        assert_eq!(
            e[0]["causation_id"], s[0]["event_id"],
            "{name}: end caused by start"
        );
        assert_eq!(e[0]["correlation_id"], s[0]["correlation_id"]);
    }
    let outer_start = agent(&got, STARTED, "outer")[0];
    assert_eq!(outer_start["payload"]["user_request"], "summarize");
    assert_eq!(outer_start["payload"]["session_id"], "s-1");
    assert!(outer_start["causation_id"].is_null());
    let outer_done = agent(&got, COMPLETED, "outer")[0];
    assert_eq!(outer_done["payload"]["quality_score"], 0.75);
    assert_eq!(outer_done["payload"]["metrics"]["tokens"], 120);

    // Correlation inherited and causation chained through nested agent spans.
    let inner_start = agent(&got, STARTED, "inner")[0];
    assert_eq!(inner_start["correlation_id"], outer_start["correlation_id"]);
    assert_eq!(inner_start["causation_id"], outer_start["event_id"]);
    let inner_log = logs
        .iter()
        .find(|v| v["payload"]["message"] == "inner working")
        .unwrap();
    assert_eq!(inner_log["causation_id"], inner_start["event_id"]);
    assert_eq!(inner_log["correlation_id"], outer_start["correlation_id"]);

    // Failures carry the error.
    let failed = agent(&got, FAILED, "failing")[0];
    assert_eq!(failed["payload"]["error_message"], "disk on fire");
    let afailed = agent(&got, FAILED, "async-failing")[0];
    assert_eq!(afailed["payload"]["error_message"], "async boom");

    // Sequence numbers: unique, from 1, no gaps (nothing was dropped).
    let mut seqs: Vec<u64> = got
        .iter()
        .map(|r| r.value["sequence"].as_u64().unwrap())
        .collect();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), got.len());
}

#[test]
fn events_outside_spans_get_fresh_correlation_ids() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("nospan");
    common::provision(&bootstrap, &prefix);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!("one");
        tracing::info!("two");
        let _s = tracing::info_span!("job", correlation_id = "order-42").entered();
        tracing::info!("three");
    });
    guard.shutdown(Duration::from_secs(20)).unwrap();
    let got = common::consume(
        &bootstrap,
        &common::event_topics(&prefix),
        3,
        Duration::from_secs(20),
    );
    assert_eq!(got.len(), 3);
    let corr = |m: &str| {
        got.iter()
            .find(|r| r.value["payload"]["message"] == m)
            .unwrap()
            .value["correlation_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_ne!(corr("one"), corr("two"));
    // A non-UUID correlation id maps to a stable UUIDv5 of the string.
    let expected = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"order-42").to_string();
    assert_eq!(corr("three"), expected);
}

#[test]
fn the_layer_accepts_a_per_layer_filter() {
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::Layer as _;
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("filter");
    common::provision(&bootstrap, &prefix);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_test_writer())
        .with(layer.with_filter(LevelFilter::WARN));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("filtered out for this layer only");
        tracing::warn!("kept");
    });
    let report = guard.shutdown(Duration::from_secs(20)).unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    let got = common::consume(
        &bootstrap,
        &common::event_topics(&prefix),
        1,
        Duration::from_secs(20),
    );
    assert_eq!(got[0].value["payload"]["message"], "kept");
}
