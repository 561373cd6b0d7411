//! The caller's wait is bounded by the configured `guaranteed_wait`, also when the worker
//! is stalled on a slow disk while it holds the spool: a guaranteed event that finds the
//! queue full is handed over without waiting (before, the caller spooled it itself and
//! queued up behind the worker's lock). (Slow disk injected with a `fail` point; feature
//! `failpoints`.)
#![cfg(feature = "failpoints")]

mod common;

use std::time::{Duration, Instant};

use common::AUDIT;
use tracing_subscriber::prelude::*;

const GUARANTEED_WAIT: Duration = Duration::from_millis(20);
/// Scheduling slack on a busy 2-core machine.
const MARGIN: Duration = Duration::from_millis(150);

#[test]
fn callers_wait_no_longer_than_the_guaranteed_wait_while_the_worker_is_stalled() {
    let scenario = fail::FailScenario::setup();
    let prefix = common::unique_prefix("stalled");
    let mock = common::mock(&prefix);
    let bootstrap = mock.bootstrap_servers();
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .message_timeout(Duration::from_millis(500))
        .queue_capacity(2usize)
        .guaranteed_wait(GUARANTEED_WAIT)
        .build()
        .unwrap();
    // Every spool write (the worker's write-ahead, and its spooling while the broker is
    // down) takes a second, with the spool locked.
    mock.broker_down(1).unwrap();
    fail::cfg("omninode::spool_write", "sleep(1000)").unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let (mut slowest, mut emitted) = (Duration::ZERO, 0u64);
    tracing::dispatcher::with_default(&dispatch, || {
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let started = Instant::now();
            common::audit(&format!("doc/{emitted}"));
            slowest = slowest.max(started.elapsed());
            emitted += 1;
        }
    });
    let m = guard.metrics();
    // The worker sat in the slow spool (writing ahead or spooling) with the queue full:
    // most calls found no room and were handed over.
    assert!(
        m.enqueued + 10 < emitted,
        "the queue was full while callers ran: {m:?} of {emitted}"
    );
    assert!(
        slowest <= GUARANTEED_WAIT + MARGIN,
        "a caller waited {slowest:?} ({emitted} calls)"
    );

    fail::remove("omninode::spool_write");
    mock.broker_up(1).unwrap();
    let report = guard.shutdown(Duration::from_secs(20)).unwrap();
    drop(dispatch);
    assert_eq!(report.dropped, 0, "{report:?}");
    let delivered = common::records_on(&bootstrap, &format!("{prefix}{AUDIT}")) as u64;
    let spooled = common::drain_spool(spool.path()).len() as u64;
    assert!(
        delivered + spooled >= emitted,
        "{delivered} delivered + {spooled} spooled < {emitted} emitted; {report:?}"
    );
    scenario.teardown();
}
