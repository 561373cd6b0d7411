//! With the `opentelemetry` feature and `tracing-opentelemetry` installed, `x-traceparent`
//! carries the OpenTelemetry trace of the current span.
#![cfg(feature = "opentelemetry")]

mod common;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::prelude::*;

#[test]
fn traceparent_header_equals_the_opentelemetry_trace() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("otel");
    common::provision(&bootstrap, &prefix);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let tracer = provider.tracer("test");
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(layer);
    let mut expected = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("agent", agent_name = "traced");
        let _e = span.enter();
        tracing::info!("inside an OpenTelemetry span");
        let cx = span.context();
        use opentelemetry::trace::TraceContextExt;
        let sc = cx.span().span_context().clone();
        expected.push(format!("00-{}-{}-01", sc.trace_id(), sc.span_id()));
    });
    guard.shutdown(Duration::from_secs(20)).unwrap();
    let got = common::consume(
        &bootstrap,
        &common::event_topics(&prefix),
        3,
        Duration::from_secs(20),
    );
    let log = got
        .iter()
        .find(|r| r.value["payload"]["message"] == "inside an OpenTelemetry span")
        .expect("the log line");
    assert_eq!(log.headers["x-traceparent"], expected[0]);
    let started = got
        .iter()
        .find(|r| r.value["event_type"] == "omninode.agent.execution.started.v1")
        .expect("started");
    assert_eq!(
        started.headers["x-traceparent"][..35],
        expected[0][..35],
        "same trace id"
    );
}
