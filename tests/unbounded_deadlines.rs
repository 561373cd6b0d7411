//! `flush` and `shutdown` accept any deadline, `Duration::MAX` ("as long as it takes")
//! included, and so does the configured default shutdown deadline used when the guard is
//! dropped. (They panicked on the instant overflow before.)

mod common;

use std::time::Duration;

use tracing_subscriber::prelude::*;

#[test]
fn flush_and_shutdown_accept_duration_max() {
    let prefix = common::unique_prefix("forever");
    let mock = common::mock(&prefix);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&mock.bootstrap_servers(), &prefix, spool.path())
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        common::audit("doc/0");
        let flushed = guard.flush(Duration::MAX).expect("flush completes");
        assert_eq!(flushed.delivered, 1, "{flushed:?}");
        common::audit("doc/1");
    });
    let report = guard.shutdown(Duration::MAX).expect("shutdown completes");
    assert_eq!((report.delivered, report.spooled), (2, 0), "{report:?}");
}

#[test]
fn a_guard_dropped_with_a_maximal_default_deadline_shuts_down() {
    let prefix = common::unique_prefix("forever-drop");
    let mock = common::mock(&prefix);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&mock.bootstrap_servers(), &prefix, spool.path())
        .shutdown_timeout(Duration::MAX)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        common::audit("doc/0")
    });
    let metrics = common::wait_for(&guard, Duration::from_secs(10), |m| m.delivered == 1);
    assert_eq!(metrics.delivered, 1, "{metrics:?}");
    drop(guard);
    assert!(common::spool_is_empty(spool.path()));
}
