//! What the layer does not ship is not captured, and filtering for the layer never takes
//! events away from a `fmt` layer composed alongside: with the layer as it is (it never
//! disables a callsite) and behind its own per-layer filter (`OmniNodeLayer::filtered`).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tracing::instrument;
use tracing::level_filters::LevelFilter;
use tracing::Level;
use tracing_omninode::{Guard, OmniNodeLayer};
use tracing_subscriber::prelude::*;

/// A `fmt` writer that keeps what it is given.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct Pipeline {
    bootstrap: String,
    prefix: String,
    _spool: tempfile::TempDir,
    guard: Guard,
}

fn pipeline(name: &str) -> (OmniNodeLayer, Pipeline) {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix(name);
    common::provision(&bootstrap, &prefix);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    (
        layer,
        Pipeline {
            bootstrap,
            prefix,
            _spool: spool,
            guard,
        },
    )
}

fn shipped(p: Pipeline) -> Vec<Value> {
    let report = p.guard.shutdown(Duration::from_secs(20)).unwrap();
    assert_eq!(report.dead_lettered, 0, "{report:?}");
    let got = common::consume(
        &p.bootstrap,
        &common::event_topics(&p.prefix),
        report.delivered as usize,
        Duration::from_secs(20),
    );
    assert_eq!(got.len() as u64, report.delivered);
    got.into_iter().map(|c| c.value).collect()
}

#[instrument(err(level = "debug"), fields(agent_name = "quiet-failure"))]
fn quiet_failure() -> Result<(), String> {
    Err("failed quietly".into())
}

/// What every case logs: a root span, a dependency's TRACE span with a field of its own,
/// events inside it at INFO and DEBUG, a TRACE agent span, an agent that fails with an
/// `err` event at DEBUG, and an audit event.
fn workload() {
    let _root = tracing::info_span!("request", route = "/search").entered();
    {
        let _dep =
            tracing::trace_span!(target: "dep::pool", "checkout", dep_detail = "conn-7").entered();
        tracing::info!("inside the dependency span");
        tracing::debug!("debug line for fmt only");
    }
    tracing::trace_span!("quiet", agent_name = "trace-level-agent")
        .in_scope(|| tracing::trace!("not shipped"));
    let _ = quiet_failure();
    tracing_omninode::audit!(
        action = "doc.read",
        actor = "alice",
        resource = "doc/1",
        outcome = "success"
    );
}

fn check_shipped(got: &[Value], case: &str) {
    let messages: Vec<&str> = got
        .iter()
        .filter_map(|v| v["payload"]["message"].as_str())
        .collect();
    assert!(
        !messages.contains(&"debug line for fmt only") && !messages.contains(&"not shipped"),
        "{case}: {messages:?}"
    );
    let inside = got
        .iter()
        .find(|v| v["payload"]["message"] == "inside the dependency span")
        .unwrap_or_else(|| panic!("{case}: {messages:?}"));
    let context = &inside["payload"]["context"];
    assert_eq!(context["route"], "/search", "{case}: the captured ancestor");
    assert!(
        context.get("dep_detail").is_none(),
        "{case}: the TRACE span's fields are not captured: {context}"
    );
    let by = |ty: &str, name: &str| {
        got.iter()
            .filter(|v| v["event_type"] == ty && v["payload"]["agent_name"] == name)
            .count()
    };
    assert_eq!(
        by("omninode.agent.execution.started.v1", "trace-level-agent"),
        1,
        "{case}"
    );
    assert_eq!(
        by("omninode.agent.execution.completed.v1", "trace-level-agent"),
        1,
        "{case}"
    );
    assert_eq!(
        by("omninode.agent.execution.failed.v1", "quiet-failure"),
        1,
        "{case}"
    );
    assert_eq!(
        got.iter()
            .filter(|v| v["event_type"] == common::AUDIT)
            .count(),
        1,
        "{case}"
    );
}

fn check_fmt(out: &str, case: &str) {
    for line in [
        "inside the dependency span",
        "debug line for fmt only",
        "not shipped",
        "dep_detail",
        "checkout",
    ] {
        assert!(out.contains(line), "{case}: fmt lost {line:?}:\n{out}");
    }
}

#[test]
fn the_unfiltered_layer_skips_what_it_does_not_ship_and_fmt_still_sees_it() {
    let (layer, p) = pipeline("unfiltered");
    let fmt_out = Captured::default();
    let w = fmt_out.clone();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || w.clone()),
        )
        .with(layer);
    tracing::subscriber::with_default(subscriber, || {
        // The layer does not lower the subscriber's maximum level.
        assert_eq!(LevelFilter::current(), LevelFilter::TRACE);
        workload();
    });
    check_fmt(&fmt_out.text(), "unfiltered");
    check_shipped(&shipped(p), "unfiltered");
}

#[test]
fn the_filtered_layer_skips_what_it_does_not_ship_and_fmt_still_sees_it() {
    let (layer, p) = pipeline("filtered");
    let fmt_out = Captured::default();
    let w = fmt_out.clone();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || w.clone()),
        )
        .with(layer.filtered());
    tracing::subscriber::with_default(subscriber, || {
        assert_eq!(LevelFilter::current(), LevelFilter::TRACE);
        // What the layer's filter disables stays enabled for fmt (and the answer this
        // leaves behind does not leak into the next span: see the stale-answer test).
        assert!(tracing::enabled!(target: "dep::pool", Level::TRACE));
        workload();
    });
    check_fmt(&fmt_out.text(), "filtered");
    check_shipped(&shipped(p), "filtered");
}

#[test]
fn alone_behind_its_filter_the_layer_disables_what_it_does_not_ship() {
    let (layer, p) = pipeline("alone");
    tracing::subscriber::with_default(
        tracing_subscriber::registry().with(layer.filtered()),
        || {
            assert!(!tracing::enabled!(target: "dep::pool", Level::DEBUG));
            assert!(!tracing::enabled!(target: "rdkafka::client", Level::ERROR));
            assert!(tracing::enabled!(target: "my_app", Level::INFO));
            assert!(tracing::enabled!(target: "omninode::audit", Level::TRACE));
            assert!(tracing::enabled!(target: "omninode::security", Level::TRACE));
            assert!(tracing::enabled!(target: "omninode::typed", Level::TRACE));
            workload();
        },
    );
    check_shipped(&shipped(p), "alone");
}

#[test]
fn a_stale_filter_answer_never_loses_an_agent_span_or_an_audit_event() {
    let (layer, p) = pipeline("stale");
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_test_writer())
        .with(layer.filtered());
    tracing::subscriber::with_default(subscriber, || {
        // Each `enabled!` leaves the filter's "disabled" answer behind on this thread
        // (nothing is dispatched after it); the span or event right after must not read it.
        assert!(tracing::enabled!(target: "dep::pool", Level::TRACE));
        let agent = tracing::info_span!("plan", agent_name = "after-enabled");
        assert!(tracing::enabled!(target: "dep::pool", Level::TRACE));
        agent.in_scope(|| {
            assert!(tracing::enabled!(target: "dep::pool", Level::TRACE));
            tracing_omninode::audit!(
                action = "doc.read",
                actor = "alice",
                resource = "doc/2",
                outcome = "success"
            );
        });
    });
    let got = shipped(p);
    let types: Vec<&str> = got
        .iter()
        .map(|v| v["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types.iter().filter(|t| **t == common::AUDIT).count(),
        1,
        "{types:?}"
    );
    assert!(
        types.contains(&"omninode.agent.execution.started.v1"),
        "{types:?}"
    );
    assert!(
        types.contains(&"omninode.agent.execution.completed.v1"),
        "{types:?}"
    );
}
