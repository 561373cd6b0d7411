//! Failures speak: each condition (no broker, events stalled, events in the spool, a missing
//! topic) is said once when it starts and once when it clears, through the `tracing` target
//! `tracing_omninode::diagnostics`; the health is degraded while events cannot get through,
//! and names the problems.

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::Level;
use tracing_omninode::diagnostics::{Condition, TARGET};
use tracing_omninode::{HealthStatus, MetricsHandle};
use tracing_subscriber::prelude::*;

/// What the diagnostics said, through the global subscriber (the worker's and librdkafka's
/// threads use it): (service, level, message).
type Said = Arc<Mutex<Vec<(String, Level, String)>>>;

struct Collect(Said);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collect {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        #[derive(Default)]
        struct Fields(String, String);
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                if f.name() == "service" {
                    self.0 = v.to_owned();
                }
            }
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.1 = format!("{v:?}");
                }
            }
        }
        if event.metadata().target() != TARGET {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        self.0
            .lock()
            .unwrap()
            .push((f.0, *event.metadata().level(), f.1));
    }
}

fn said() -> &'static Said {
    static SAID: OnceLock<Said> = OnceLock::new();
    SAID.get_or_init(|| {
        let said = Said::default();
        tracing_subscriber::registry()
            .with(Collect(said.clone()))
            .init();
        said
    })
}

/// The messages said for `service` so far.
fn said_for(service: &str) -> Vec<(Level, String)> {
    said()
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, _, _)| s == service)
        .map(|(_, l, m)| (*l, m.clone()))
        .collect()
}

/// Waits until `cond` holds for what was said for `service`.
fn wait_said(service: &str, what: &str, cond: impl Fn(&[(Level, String)]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond(&said_for(service)) {
        assert!(
            Instant::now() < deadline,
            "{what}: said so far {:#?}",
            said_for(service)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_health(h: &MetricsHandle, what: &str, cond: impl Fn(&tracing_omninode::Health) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = h.health();
        if cond(&health) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {health:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn count(said: &[(Level, String)], level: Level, needle: &str) -> usize {
    said.iter()
        .filter(|(l, m)| *l == level && m.contains(needle))
        .count()
}

#[test]
fn an_outage_is_said_once_degrades_health_and_clears_when_the_broker_is_back() {
    said();
    let prefix = common::unique_prefix("diag-outage");
    let mock = common::mock(&prefix);
    let spool = common::spool_dir();
    let service = "diag-outage";
    let (layer, guard) = common::builder(&mock.bootstrap_servers(), &prefix, spool.path())
        .service_name(service)
        .message_timeout(Duration::from_secs(2))
        .degraded_after(Duration::from_secs(1))
        // Back within well under `degraded_after` once the broker is up (the default backoff
        // of up to 2 s could leave the replay unacknowledged for 1 s: a second, real stall).
        .kafka_property("reconnect.backoff.max.ms", "100")
        .build()
        .unwrap();
    let health = guard.handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    // Delivery works first: healthy, nothing said.
    tracing::dispatcher::with_default(&dispatch, || common::audit("before"));
    common::wait_for(&guard, Duration::from_secs(10), |m| m.delivered == 1);
    assert_eq!(health.health().status, HealthStatus::Running);

    mock.broker_down(1).unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..5 {
            common::audit(&format!("during-{i}"));
        }
    });
    wait_health(&health, "degraded while events wait", |h| {
        h.status == HealthStatus::Degraded
            && !h.healthy
            && h.problems.iter().any(|p| p.condition == Condition::Stalled)
    });
    // librdkafka times the records out (2 s), the worker spools them.
    wait_health(&health, "events in the spool", |h| {
        h.problems
            .iter()
            .any(|p| p.condition == Condition::Spooling)
            && h.metrics.spool_records >= 5
    });
    let m = health.metrics();
    assert!(m.unacked_wait_ms >= 1000 || m.spool_records >= 5, "{m:?}");
    wait_said(service, "the outage is said", |s| {
        count(s, Level::WARN, "no Kafka broker answers") == 1
            && count(s, Level::WARN, "nothing was acknowledged") == 1
            && count(s, Level::WARN, "events wait in the spool") == 1
    });

    mock.broker_up(1).unwrap();
    wait_health(&health, "healthy again once the spool is replayed", |h| {
        h.status == HealthStatus::Running && h.problems.is_empty()
    });
    let report = guard.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(report.delivered, 6, "{report:?}");
    let s = said_for(service);
    for cleared in ["BrokerUnreachable", "Stalled", "Spooling"] {
        let times = s
            .iter()
            .filter(|(l, m)| *l == Level::INFO && m.starts_with("cleared after"))
            .filter(|(_, m)| m.ends_with(cleared))
            .count();
        assert_eq!(times, 1, "{cleared} cleared once: {s:#?}");
    }
    // Said once each, however long it lasted.
    assert_eq!(
        count(&s, Level::WARN, "no Kafka broker answers"),
        1,
        "{s:#?}"
    );
}

#[test]
fn a_missing_topic_is_said_with_the_fix_and_cleared_once_it_exists() {
    said();
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("diag-topic");
    let spool = common::spool_dir();
    let service = "diag-topic";
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .service_name(service)
        .kafka_property("allow.auto.create.topics", "false")
        // librdkafka's wait for an unknown topic to appear (default 30 s).
        .kafka_property("topic.metadata.propagation.max.ms", "2000")
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || tracing::info!("to a topic nobody created"));
    let topic = format!("{prefix}{}", common::APP);
    wait_said(service, "the missing topic is said", |s| {
        s.iter().any(|(l, m)| {
            *l == Level::WARN
                && m.contains(&format!("topic {topic} does not exist"))
                && m.contains("omninode-events topics create")
        })
    });
    assert!(guard
        .handle()
        .health()
        .problems
        .iter()
        .any(|p| p.condition == Condition::TopicMissing && p.subject == topic));

    common::provision(&bootstrap, &prefix);
    let deadline = Instant::now() + Duration::from_secs(30);
    while guard.metrics().delivered == 0 {
        assert!(Instant::now() < deadline, "{:?}", guard.metrics());
        tracing::dispatcher::with_default(&dispatch, || tracing::info!("once the topic exists"));
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_said(service, "the missing topic clears", |s| {
        count(s, Level::INFO, &format!("TopicMissing ({topic})")) == 1
    });
    drop(guard.shutdown(Duration::from_secs(10)));
}

#[test]
fn a_guard_dropped_while_its_layer_lives_says_so() {
    said();
    let prefix = common::unique_prefix("diag-guard");
    let mock = common::mock(&prefix);
    let spool = common::spool_dir();
    let service = "diag-guard";
    let (layer, _) = common::builder(&mock.bootstrap_servers(), &prefix, spool.path())
        .service_name(service)
        .build()
        .unwrap();
    wait_said(service, "the early drop is said", |s| {
        s.iter()
            .any(|(l, m)| *l == Level::WARN && m.contains("let (layer, _guard)"))
    });
    drop(layer);
}
