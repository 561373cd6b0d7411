//! Waiting is idle: a flush that waits on a dead broker, or on a topic that does not exist,
//! costs the process (every thread: caller, worker, librdkafka) at most 5 % of one core.
//!
//! Before the worker blocked on its channels (and librdkafka's callbacks got a thread of
//! their own), such a flush spun a core for its whole deadline in rdkafka's poll loop.
//! One test in this binary, so no other test's work is measured with it.

mod common;

use std::time::{Duration, Instant};

use cpu_time::ProcessTime;
use tracing_subscriber::prelude::*;

/// The share of one core the process used while `guard` flushed for `wait`, and how long
/// the flush took.
fn cpu_share_of_flush(guard: &tracing_omninode::Guard, wait: Duration) -> (f64, Duration) {
    let cpu = ProcessTime::now();
    let wall = Instant::now();
    let result = guard.flush(wait);
    let (cpu, wall) = (cpu.elapsed(), wall.elapsed());
    eprintln!("flush: {result:?}");
    (cpu.as_secs_f64() / wall.as_secs_f64(), wall)
}

/// Emits guaranteed events and logs, then measures a 5 s flush.
fn measure(builder: tracing_omninode::Builder) -> (f64, Duration) {
    let (layer, guard) = builder.build().unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..50 {
            common::audit(&format!("r{i}"));
            tracing::info!(i, "an application log");
        }
    });
    // Let the worker take the events and librdkafka start failing.
    std::thread::sleep(Duration::from_millis(500));
    let measured = cpu_share_of_flush(&guard, Duration::from_secs(5));
    drop(guard.shutdown(Duration::from_secs(5)));
    measured
}

#[test]
fn a_flush_waiting_on_a_dead_broker_or_a_missing_topic_is_idle() {
    let spool = common::spool_dir();
    let dead = tracing_omninode::builder()
        .ignore_env()
        .bootstrap_servers(common::closed_port())
        .service_name("idle-dead")
        .spool_dir(spool.path());
    let (share, wall) = measure(dead);
    eprintln!(
        "dead broker: {:.2} % of a core over {wall:?}",
        share * 100.0
    );
    assert!(wall >= Duration::from_secs(5), "the flush waited: {wall:?}");
    assert!(
        share <= 0.05,
        "dead broker: {:.1} % of a core",
        share * 100.0
    );

    // A broker that answers, without the topics (nothing provisioned under this prefix).
    let spool = common::spool_dir();
    let missing = tracing_omninode::builder()
        .ignore_env()
        .bootstrap_servers(common::broker())
        .topic_prefix(common::unique_prefix("idle-missing"))
        .kafka_property("allow.auto.create.topics", "false")
        .service_name("idle-missing")
        .spool_dir(spool.path());
    let (share, wall) = measure(missing);
    eprintln!(
        "missing topic: {:.2} % of a core over {wall:?}",
        share * 100.0
    );
    assert!(
        share <= 0.05,
        "missing topic: {:.1} % of a core",
        share * 100.0
    );
}
