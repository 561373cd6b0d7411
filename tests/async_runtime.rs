//! The guard inside a tokio runtime (feature `tokio`): `flush_async` and `shutdown_async`
//! wait without blocking a runtime thread, in either flavour of runtime, while the broker
//! is stalled (a listener that never answers); the blocking forms on a multi-thread worker
//! let the other tasks move; dropping the guard inside a current-thread runtime ends within
//! its deadline; and `build()` never sleeps on a spool directory another pipeline holds.

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::{Builder as Runtime, Runtime as Rt};
use tracing_omninode::spool::{Spool, SpoolLimits};
use tracing_omninode::Guard;
use tracing_subscriber::prelude::*;

/// Time allowed past a deadline.
const MARGIN: Duration = Duration::from_millis(1500);

/// A pipeline whose broker accepts connections and never answers, with `audits` guaranteed
/// events waiting in it: a flush or shutdown waits up to its deadline.
fn stalled_pipeline(
    audits: usize,
    shutdown_timeout: Duration,
) -> (Guard, TcpListener, tempfile::TempDir) {
    let black_hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = black_hole.local_addr().unwrap().to_string();
    let prefix = common::unique_prefix("async");
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&addr, &prefix, spool.path())
        .shutdown_timeout(shutdown_timeout)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..audits {
            common::audit(&format!("doc/{i}"));
        }
    });
    (guard, black_hole, spool)
}

fn current_thread() -> Rt {
    Runtime::new_current_thread().enable_all().build().unwrap()
}

/// One worker thread: a task that blocked it would stall every other task.
fn multi_thread_one_worker() -> Rt {
    Runtime::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `wait` in a task while another task ticks every 10 ms; returns how long `wait`
/// took and how many ticks happened meanwhile. On a runtime with one worker thread both
/// tasks share it: a `wait` that blocked its thread would stop the ticks.
async fn ticks_during<F>(wait: F) -> (Duration, u64, F::Output)
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_millis(10));
            loop {
                every.tick().await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    // Let the ticker start.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let before = ticks.load(Ordering::Relaxed);
    let started = Instant::now();
    let out = tokio::spawn(wait).await.unwrap();
    let took = started.elapsed();
    let during = ticks.load(Ordering::Relaxed) - before;
    ticker.abort();
    (took, during, out)
}

/// The shutdown really waited (on the stalled broker), and the ticker kept going: at least
/// a third of the 10 ms ticks that fit in the wait (a loaded 2-core machine is slow).
fn assert_kept_ticking(took: Duration, ticks: u64, deadline: Duration) {
    assert!(
        took >= deadline / 2,
        "the wait ended early ({took:?}): nothing was stalled"
    );
    assert!(took <= deadline + MARGIN, "the wait took {took:?}");
    let fit = took.as_millis() as u64 / 10;
    assert!(
        ticks >= fit / 3,
        "only {ticks} ticks in {took:?}: the runtime thread was blocked"
    );
}

fn check_shutdown_async(rt: Rt) {
    let deadline = Duration::from_secs(2);
    let (guard, _black_hole, spool) = stalled_pipeline(20, deadline);
    let (took, ticks, report) = rt.block_on(ticks_during(guard.shutdown_async(deadline)));
    let report = report.expect("shutdown reports");
    assert_kept_ticking(took, ticks, deadline);
    assert_eq!(report.spooled, 20, "{report:?}");
    assert_eq!(common::drain_spool(spool.path()).len(), 20);
}

#[test]
fn shutdown_async_on_a_current_thread_runtime_lets_other_tasks_run() {
    check_shutdown_async(current_thread());
}

#[test]
fn shutdown_async_on_a_multi_thread_runtime_lets_other_tasks_run() {
    check_shutdown_async(multi_thread_one_worker());
}

fn check_flush_async(rt: Rt) {
    let deadline = Duration::from_secs(2);
    let (guard, _black_hole, _spool) = stalled_pipeline(10, deadline);
    let (took, ticks, (result, guard)) = rt.block_on(ticks_during(async move {
        (guard.flush_async(deadline).await, guard)
    }));
    assert_kept_ticking(took, ticks, deadline);
    // Nothing could be delivered by the deadline.
    assert!(
        matches!(&result, Err(tracing_omninode::PipelineError::Timeout(r)) if r.delivered == 0)
            || matches!(&result, Ok(r) if r.delivered == 0),
        "{result:?}"
    );
    rt.block_on(guard.shutdown_async(Duration::from_secs(2)))
        .unwrap();
}

#[test]
fn flush_async_on_a_current_thread_runtime_lets_other_tasks_run() {
    check_flush_async(current_thread());
}

#[test]
fn flush_async_on_a_multi_thread_runtime_lets_other_tasks_run() {
    check_flush_async(multi_thread_one_worker());
}

/// The blocking `shutdown`, called from a task on the only worker of a multi-thread
/// runtime, waits inside `block_in_place`: the ticker moves to another thread and goes on.
#[test]
fn blocking_shutdown_on_a_multi_thread_worker_lets_other_tasks_run() {
    let deadline = Duration::from_secs(2);
    let (guard, _black_hole, _spool) = stalled_pipeline(10, deadline);
    let rt = multi_thread_one_worker();
    let (took, ticks, report) = rt.block_on(ticks_during(async move { guard.shutdown(deadline) }));
    assert_kept_ticking(took, ticks, deadline);
    assert_eq!(report.unwrap().spooled, 10);
}

/// Dropping the guard on a current-thread runtime's only thread blocks it (a `Drop` cannot
/// wait asynchronously) but never deadlocks: the worker needs no runtime, and the drop ends
/// within the configured shutdown timeout.
#[test]
fn dropping_the_guard_inside_a_current_thread_runtime_does_not_deadlock() {
    let deadline = Duration::from_secs(1);
    let (guard, _black_hole, spool) = stalled_pipeline(10, deadline);
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let took = current_thread().block_on(async move {
            // Inside a task, as a handler would drop it.
            tokio::spawn(async move {
                let started = Instant::now();
                drop(guard);
                started.elapsed()
            })
            .await
            .unwrap()
        });
        let _ = done.send(took);
    });
    let took = finished
        .recv_timeout(deadline + Duration::from_secs(10))
        .expect("dropping the guard inside the runtime hung");
    assert!(took <= deadline + MARGIN, "drop took {took:?}");
    assert_eq!(common::drain_spool(spool.path()).len(), 10);
}

/// `build()` does not wait for a spool directory another pipeline holds: called on a
/// runtime thread, it returns at once with the next free slot. Once that pipeline is shut
/// down (and its layer gone) the directory is free again for the next `build()`.
#[test]
fn build_never_sleeps_on_a_held_spool_directory() {
    let root = common::spool_dir();
    let dir = root.path().join("svc");
    let prefix = common::unique_prefix("lock");
    let addr = common::closed_port();
    let holder = Spool::open(&dir, SpoolLimits::default()).unwrap();

    // Before, build() waited up to 2 s (`spool::LOCK_WAIT`) for the holder to let go.
    let builder = common::builder(&addr, &prefix, &dir);
    let (took, _, built) =
        current_thread().block_on(ticks_during(async move { builder.build().unwrap() }));
    assert!(
        took < Duration::from_millis(1500),
        "build() waited {took:?} for a held lock"
    );
    let (layer, guard) = built;
    assert_eq!(guard.spool_dir(), root.path().join("svc.1"));
    drop(layer);
    guard.shutdown(Duration::from_secs(2)).unwrap();
    drop(holder);

    // The directory and its sibling are free at once after a shutdown: no waiting.
    let started = Instant::now();
    let (_layer, guard) = common::builder(&addr, &prefix, &dir).build().unwrap();
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(guard.spool_dir(), dir);
    let (_layer2, guard2) = common::builder(&addr, &prefix, &dir).build().unwrap();
    assert_eq!(guard2.spool_dir(), root.path().join("svc.1"));
}
