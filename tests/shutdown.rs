//! Shutdown is explicit and bounded (SPEC §4): `shutdown(deadline)` returns in time even
//! when the broker never answers, what was not delivered is in the spool, and agent
//! executions still open end with `execution.failed` (`error_type: "shutdown"`).

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{APP, AUDIT};
use serde_json::Value;
use tracing_omninode::wire::WireRecord;
use tracing_subscriber::prelude::*;

const STARTED: &str = "omninode.agent.execution.started.v1";
const COMPLETED: &str = "omninode.agent.execution.completed.v1";
const FAILED: &str = "omninode.agent.execution.failed.v1";
/// What `shutdown` may take past its deadline.
const MARGIN: Duration = Duration::from_secs(1);

fn value(r: &WireRecord) -> Value {
    serde_json::from_str(&r.value).unwrap()
}

/// Emits `audits` audit events and a few logs inside an open agent span, then shuts the
/// pipeline down with `deadline` while the span is still open. Checks the report; returns
/// how long shutdown took and the spool's records.
fn run_and_shut_down(
    bootstrap: &str,
    deadline: Duration,
    audits: usize,
) -> (Duration, Vec<WireRecord>) {
    let prefix = common::unique_prefix("shutdown");
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    let (took, report) =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let span = tracing::info_span!("agent", agent_name = "planner", user_request = "plan");
            let _entered = span.enter();
            for i in 0..audits {
                tracing_omninode::audit!(
                    action = "document.read",
                    actor = "alice",
                    resource = format!("doc/{i}"),
                    outcome = "success"
                );
                tracing::info!(i, "working on {i}");
            }
            let started = Instant::now();
            let report = guard.shutdown(deadline);
            (started.elapsed(), report)
        });
    let report = report.expect("shutdown reports");
    assert_eq!(report.delivered, 0, "{report:?}");
    // The audits, the logs, the agent's started and failed events.
    let total = 2 * audits as u64 + 2;
    assert_eq!(report.spooled, total, "{report:?}");
    assert_eq!(report.dropped, 0, "{report:?}");
    let records = common::drain_spool(spool.path());
    assert_eq!(records.len() as u64, total);
    for r in &records {
        assert!(r.topic.starts_with(&prefix), "{}", r.topic);
    }
    (took, records)
}

fn check_spooled(records: &[WireRecord], audits: usize) {
    let of = |t: &str| {
        records
            .iter()
            .filter(|r| r.header("x-event-type") == Some(t))
            .map(value)
            .collect::<Vec<_>>()
    };
    let spooled_audits = of(AUDIT);
    assert_eq!(spooled_audits.len(), audits);
    let started = of(STARTED);
    let failed = of(FAILED);
    assert_eq!((started.len(), failed.len()), (1, 1), "{records:?}");
    assert_eq!(failed[0]["payload"]["error_type"], "shutdown");
    assert_eq!(failed[0]["causation_id"], started[0]["event_id"]);
    assert!(of(COMPLETED).is_empty());
}

#[test]
fn shutdown_is_bounded_when_the_broker_refuses_connections() {
    let deadline = Duration::from_secs(2);
    let (took, records) = run_and_shut_down(&common::closed_port(), deadline, 20);
    assert!(took <= deadline + MARGIN, "shutdown took {took:?}");
    check_spooled(&records, 20);
}

/// A deadline that has already passed when the worker gets to it: nothing queued or in
/// flight may be lost; all of it goes to the spool.
#[test]
fn shutdown_with_a_zero_deadline_spools_everything() {
    for deadline in [Duration::ZERO, Duration::from_millis(1)] {
        let (took, records) = run_and_shut_down(&common::closed_port(), deadline, 200);
        assert!(took <= deadline + MARGIN, "shutdown took {took:?}");
        check_spooled(&records, 200);
    }
}

/// Worse than a refused connection: the TCP handshake completes (the kernel's backlog) but
/// the "broker" never answers a request.
#[test]
fn shutdown_is_bounded_when_the_broker_never_answers() {
    let black_hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = black_hole.local_addr().unwrap().to_string();
    let deadline = Duration::from_secs(2);
    let (took, records) = run_and_shut_down(&addr, deadline, 20);
    assert!(took <= deadline + MARGIN, "shutdown took {took:?}");
    check_spooled(&records, 20);
    drop(black_hole);
}

/// Dropping the guard shuts down with the configured default deadline.
#[test]
fn dropping_the_guard_is_a_bounded_shutdown() {
    let prefix = common::unique_prefix("drop");
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&common::closed_port(), &prefix, spool.path())
        .shutdown_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..10 {
            tracing_omninode::audit!(
                action = "document.read",
                actor = "alice",
                resource = format!("doc/{i}"),
                outcome = "success"
            );
        }
    });
    let started = Instant::now();
    drop(guard);
    let took = started.elapsed();
    assert!(
        took <= Duration::from_secs(1) + MARGIN,
        "drop took {took:?}"
    );
    let records = common::drain_spool(spool.path());
    let audits = records
        .iter()
        .filter(|r| r.header("x-event-type") == Some(AUDIT))
        .count();
    assert_eq!(audits, 10, "every audit event is in the spool");
}

/// With a working broker, an agent span still open at shutdown ends with
/// `execution.failed` (`error_type: "shutdown"`) on the broker, and never with `completed`.
#[test]
fn open_agent_span_ends_with_execution_failed_shutdown() {
    let prefix = common::unique_prefix("agent");
    let mock = common::mock_cluster(&prefix, &[STARTED, COMPLETED, FAILED, APP]);
    let bootstrap = mock.bootstrap_servers();
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    let report =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let outer = tracing::info_span!(
                "agent",
                agent_name = "planner",
                user_request = "plan the trip",
                correlation_id = "0190f0f0-0000-7000-8000-0000000000aa"
            );
            let _outer = outer.enter();
            let inner =
                tracing::info_span!("agent", agent_name = "researcher", user_request = "find");
            let _inner = inner.enter();
            tracing::info!("still working");
            let report = guard.shutdown(Duration::from_secs(10));
            // The spans close after shutdown: that must not add a `completed`.
            drop(_inner);
            drop(inner);
            report
        });
    let report = report.unwrap();
    assert_eq!(
        report.delivered, 5,
        "2 started, 2 failed, 1 log: {report:?}"
    );
    assert_eq!((report.spooled, report.dead_lettered), (0, 0), "{report:?}");

    let topics = |t: &str| vec![format!("{prefix}{t}")];
    let started = common::consume(&bootstrap, &topics(STARTED), 2, Duration::from_secs(10));
    let failed = common::consume(&bootstrap, &topics(FAILED), 2, Duration::from_secs(10));
    assert_eq!((started.len(), failed.len()), (2, 2));
    for agent in ["planner", "researcher"] {
        let s = started
            .iter()
            .find(|r| r.value["payload"]["agent_name"] == agent)
            .unwrap_or_else(|| panic!("{agent} started"));
        let f = failed
            .iter()
            .find(|r| r.value["payload"]["agent_name"] == agent)
            .unwrap_or_else(|| panic!("{agent} failed"));
        let p = &f.value["payload"];
        assert_eq!(p["error_type"], "shutdown", "{p}");
        assert!(p["error_message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(f.value["causation_id"], s.value["event_id"], "{agent}");
        assert_eq!(f.value["correlation_id"], s.value["correlation_id"]);
        assert_eq!(
            f.value["correlation_id"], "0190f0f0-0000-7000-8000-0000000000aa",
            "inherited from the outer span"
        );
        tracing_omninode::validate::validate_envelope(&f.value).unwrap();
    }
    let completed = common::consume(&bootstrap, &topics(COMPLETED), 1, Duration::from_secs(1));
    assert!(completed.is_empty(), "{completed:?}");
}
