//! `flush` delivers everything queued when it was called, even when the queue holds more
//! than librdkafka's buffer (`queue.buffering.max.messages`) can take at once: the worker
//! keeps taking events as acknowledgements make room. Before, a flush returned `Ok` as soon
//! as librdkafka's buffer was empty, with the rest still in the queue (found by the
//! throughput bench once librdkafka's buffer got a bound smaller than the queue).

mod common;

use std::time::Duration;

use common::APP;
use tracing_subscriber::prelude::*;

#[test]
fn flush_delivers_a_queue_longer_than_librdkafkas_buffer() {
    const EVENTS: u64 = 3_000;
    let prefix = common::unique_prefix("flush-backlog");
    let mock = common::mock_cluster(&prefix, &[APP]);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&mock.bootstrap_servers(), &prefix, spool.path())
        .queue_capacity(2 * EVENTS as usize)
        .kafka_property("queue.buffering.max.messages", "100")
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..EVENTS {
            tracing::info!(i, "backlog event {i}");
        }
    });
    let report = guard.flush(Duration::from_secs(60)).expect("flush");
    assert_eq!(report.dropped, 0, "{report:?}");
    assert_eq!(
        report.delivered, EVENTS,
        "flush returned with events still queued: {report:?}"
    );
    let report = guard.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(report.spooled, 0, "{report:?}");
}
