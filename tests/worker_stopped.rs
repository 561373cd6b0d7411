//! A worker that keeps panicking stops, and says so: `metrics()` reports it, `flush` and
//! `shutdown` fail with `WorkerStopped`, and the layer stops pretending: audit events go to
//! the spool (replayed by the next start) and application logs are counted as dropped,
//! instead of being counted as enqueued into a queue nobody drains. (Fault injected with a
//! `fail` point; feature `failpoints`.)
#![cfg(feature = "failpoints")]

mod common;

use std::time::Duration;

use tracing_omninode::PipelineError;
use tracing_subscriber::prelude::*;

#[test]
fn a_worker_that_keeps_panicking_stops_and_says_so() {
    let scenario = fail::FailScenario::setup();
    fail::cfg("omninode::worker_loop", "panic(loop bug)").unwrap();
    let prefix = common::unique_prefix("stopped");
    let mock = common::mock(&prefix);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&mock.bootstrap_servers(), &prefix, spool.path())
        .build()
        .unwrap();
    let m = common::wait_for(&guard, Duration::from_secs(10), |m| m.worker_stopped);
    assert!(m.worker_stopped, "{m:?}");
    assert!(m.worker_panics >= 5, "{m:?}");
    fail::remove("omninode::worker_loop");

    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        common::audit("doc/1");
        tracing::info!("nobody will ship this");
    });
    let m = guard.metrics();
    assert_eq!((m.enqueued, m.spooled, m.dropped), (0, 1, 1), "{m:?}");
    assert!(matches!(
        guard.flush(Duration::from_secs(1)),
        Err(PipelineError::WorkerStopped(_))
    ));
    match guard.shutdown(Duration::from_secs(1)) {
        Err(PipelineError::WorkerStopped(report)) => assert_eq!(report.spooled, 1),
        other => panic!("{other:?}"),
    }
    let spooled = common::drain_spool(spool.path());
    assert_eq!(spooled.len(), 1);
    assert!(spooled[0].topic.ends_with("omninode.logging.audit.v1"));
    scenario.teardown();
}
