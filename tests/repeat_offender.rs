//! A record that keeps failing with a retryable error while the cluster answers
//! (`UNKNOWN_SERVER_ERROR`) reaches the DLQ after a bounded number of spool round trips,
//! instead of cycling retry → spool → replay forever.

mod common;

use std::time::Duration;

use common::AUDIT;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tracing_subscriber::prelude::*;

#[test]
fn unknown_server_error_reaches_the_dlq_after_bounded_round_trips() {
    let prefix = common::unique_prefix("offender");
    let mock = common::mock(&prefix);
    let bootstrap = mock.bootstrap_servers();
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .max_retries(1u32)
        .build()
        .unwrap();
    // Three rounds of (first attempt + 1 retry), each failing: live, then two replays.
    // The seventh produce request (the dead-letter record's) goes through; had the record
    // been replayed a fourth time instead, it would have been delivered to the audit topic.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN; 6],
    );
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        common::audit("user/42");
    });
    let m = common::wait_for(&guard, Duration::from_secs(40), |m| m.dead_lettered == 1);
    assert_eq!(
        (m.dead_lettered, m.delivered, m.dropped),
        (1, 0, 0),
        "{m:?}"
    );
    // Two round trips through the spool; the dead-letter record left from the last replay.
    assert_eq!((m.spooled, m.replayed, m.retried), (2, 1, 3), "{m:?}");
    let dlq = common::consume_all(
        &bootstrap,
        &format!("{prefix}{AUDIT}.dlq"),
        Duration::from_secs(10),
    );
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].value["error"]["code"], "Unknown", "{}", dlq[0].value);
    assert_eq!(
        common::records_on(&bootstrap, &format!("{prefix}{AUDIT}")),
        0
    );
    guard.shutdown(Duration::from_secs(5)).unwrap();
}
