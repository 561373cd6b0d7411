//! Metrics export (feature `metrics`): `Metrics` and `Health` serialize for a health
//! endpoint; a `MetricsHandle` is cheap to clone and share while the guard stays unique;
//! every counter reaches a Prometheus recorder as `omninode_events_*`, published from the
//! pipeline's own thread, and keeps moving as events are delivered.

mod common;

use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::Value;
use tracing_omninode::{HealthStatus, MetricsHandle};
use tracing_subscriber::prelude::*;

/// The one Prometheus recorder of this test binary (a recorder is process-wide).
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap())
}

/// The value of the series `name{labels}` in a Prometheus text exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn wait_for(handle: &MetricsHandle, cond: impl Fn(&tracing_omninode::Metrics) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond(&handle.metrics()) {
        assert!(Instant::now() < deadline, "{:?}", handle.metrics());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_cloned_handle_reports_health_and_serializable_counters() {
    let prefix = common::unique_prefix("health");
    let mock = common::mock(&prefix);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&mock.bootstrap_servers(), &prefix, spool.path())
        .build()
        .unwrap();
    let handle = guard.handle();
    let elsewhere = handle.clone();
    assert_eq!(handle.status(), HealthStatus::Running);

    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..3 {
            common::audit(&format!("doc/{i}"));
        }
    });
    // A clone read from another thread, as a web server's handler would.
    let health = std::thread::spawn(move || {
        wait_for(&elsewhere, |m| m.delivered >= 3);
        serde_json::to_value(elsewhere.health()).unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(health["service"], "test-svc");
    assert_eq!(health["status"], "running");
    assert_eq!(health["healthy"], true);
    assert_eq!(health["metrics"]["enqueued"], 3, "{health}");
    assert_eq!(health["metrics"]["delivered"], 3, "{health}");
    assert_eq!(health["metrics"]["worker_stopped"], false);
    assert!(health["metrics"]["redacted"].is_object(), "{health}");

    let metrics: Value = serde_json::to_value(guard.metrics()).unwrap();
    assert_eq!(metrics["delivered"], 3);

    let report = guard.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(report.delivered, 3);
    // The handle outlives the guard without keeping the pipeline alive.
    assert_eq!(handle.status(), HealthStatus::ShutDown);
    let after = serde_json::to_value(handle.health()).unwrap();
    assert_eq!(after["status"], "shut_down");
    assert_eq!(after["healthy"], false);
    assert_eq!(after["metrics"]["delivered"], 3);
    assert_eq!(handle.report(), report);
}

#[test]
fn every_counter_reaches_the_prometheus_recorder_and_moves() {
    let prom = prometheus();
    let prefix = common::unique_prefix("prom");
    let service = format!("svc-{}", &prefix[1..9]);
    let mock = common::mock(&prefix);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&mock.bootstrap_servers(), &prefix, spool.path())
        .service_name(service.as_str())
        .build()
        .unwrap();
    let handle = guard.handle();
    let delivered = format!("omninode_events_delivered_total{{service=\"{service}\"}}");
    let scrape_until = |want: f64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = prom.render();
            if sample(&text, &delivered) == Some(want) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no {delivered} {want} in:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Published from the start, at 0.
    let text = scrape_until(0.0);
    for name in [
        "omninode_events_enqueued_total",
        "omninode_events_retried_total",
        "omninode_events_dead_lettered_total",
        "omninode_events_spooled_total",
        "omninode_events_replayed_total",
        "omninode_events_skipped_total",
        "omninode_events_validation_failed_total",
        "omninode_events_spool_corrupt_total",
        "omninode_events_spool_rejected_total",
        "omninode_events_pipeline_errors_total",
        "omninode_events_producer_rebuilds_total",
        "omninode_events_worker_panics_total",
        "omninode_events_worker_stopped",
    ] {
        let series = format!("{name}{{service=\"{service}\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{series} in:\n{text}");
    }
    for reason in ["spool_full", "queue_full"] {
        let series =
            format!("omninode_events_dropped_total{{service=\"{service}\",reason=\"{reason}\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{series} in:\n{text}");
    }
    assert!(
        text.contains("# TYPE omninode_events_delivered_total counter"),
        "{text}"
    );

    let emit = |from: usize, n: usize| {
        for i in from..from + n {
            common::audit(&format!("doc/{i}"));
        }
        tracing::warn!(password = "hunter2", "a secret by key name");
    };
    let subscriber = tracing_subscriber::registry().with(layer);
    let (first, second) = tracing::subscriber::with_default(subscriber, || {
        emit(0, 3);
        wait_for(&handle, |m| m.delivered >= 4);
        let first = scrape_until(4.0);
        emit(3, 2);
        wait_for(&handle, |m| m.delivered >= 7);
        (first, scrape_until(7.0))
    });
    let enqueued = format!("omninode_events_enqueued_total{{service=\"{service}\"}}");
    assert!(
        sample(&second, &enqueued) > sample(&first, &enqueued),
        "{first}\n{second}"
    );
    assert!(
        second.contains(&format!(
            "omninode_events_redacted_total{{service=\"{service}\",kind="
        )),
        "{second}"
    );

    // The shutdown publishes the final totals.
    let report = guard.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(
        sample(&prom.render(), &delivered),
        Some(report.delivered as f64)
    );
}
