//! Nothing a caller hands over while the pipeline shuts down is lost: an audit event pushed
//! in the instant between the worker's last look at the queue and its exit used to stay in
//! the queue and vanish with it. Every audit call made before, during and after shutdown is
//! found afterwards, on the broker or in the spool.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::AUDIT;
use tracing_subscriber::prelude::*;

const THREADS: usize = 8;

#[test]
fn audits_racing_shutdown_are_all_kept() {
    for round in 0..5 {
        let prefix = common::unique_prefix("race");
        let mock = common::mock(&prefix);
        let bootstrap = mock.bootstrap_servers();
        let spool = common::spool_dir();
        // A one-slot queue: callers are almost always waiting for room, so the worker's
        // last drain makes room for one of them right as it finishes.
        let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
            .queue_capacity(1usize)
            .guaranteed_wait(Duration::from_millis(20))
            .build()
            .unwrap();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let stop = Arc::new(AtomicBool::new(false));
        let emitted = Arc::new(AtomicU64::new(0));
        let callers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (dispatch, stop, emitted) = (dispatch.clone(), stop.clone(), emitted.clone());
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        let mut i = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            tracing_omninode::audit!(
                                action = "document.read",
                                actor = format!("caller-{t}"),
                                resource = format!("doc/{i}"),
                                outcome = "success"
                            );
                            emitted.fetch_add(1, Ordering::Relaxed);
                            i += 1;
                        }
                    })
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let report = guard.shutdown(Duration::from_secs(5)).expect("shutdown");
        // Callers keep going a little past the shutdown (their events go to the spool).
        std::thread::sleep(Duration::from_millis(30));
        stop.store(true, Ordering::Relaxed);
        for c in callers {
            c.join().unwrap();
        }
        drop(dispatch);
        let on_broker = common::records_on(&bootstrap, &format!("{prefix}{AUDIT}")) as u64;
        let spooled = common::drain_spool(spool.path()).len() as u64;
        let emitted = emitted.load(Ordering::Relaxed);
        assert_eq!(
            on_broker + spooled,
            emitted,
            "round {round}: {on_broker} on the broker + {spooled} spooled of {emitted} emitted; {report:?}"
        );
    }
}
