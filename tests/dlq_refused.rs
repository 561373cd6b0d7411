//! A dead-letter record the DLQ refuses for a non-retryable reason (an expired credential,
//! an ACL change, a DLQ topic that was never created) is kept in the spool and written once
//! the DLQ accepts it; before, the audit event was dropped. It counts as a pipeline error.

mod common;

use std::time::Duration;

use common::AUDIT;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tracing_subscriber::prelude::*;

#[test]
fn a_refused_dead_letter_record_is_spooled_and_written_later() {
    let prefix = common::unique_prefix("dlq-refused");
    let mock = common::mock(&prefix);
    let bootstrap = mock.bootstrap_servers();
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    // The audit topic refuses the event (policy: to the DLQ), then the DLQ refuses its
    // dead-letter record the same way (an ACL on the DLQ topic).
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 2],
    );
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        common::audit("user/42");
    });
    let m = common::wait_for(&guard, Duration::from_secs(20), |m| m.dead_lettered == 1);
    assert_eq!((m.dead_lettered, m.dropped), (1, 0), "{m:?}");
    assert!(
        m.spooled >= 1 && m.replayed >= 1,
        "it went through the spool: {m:?}"
    );
    assert!(m.pipeline_errors >= 1, "{m:?}");
    let dlq = common::consume_all(
        &bootstrap,
        &format!("{prefix}{AUDIT}.dlq"),
        Duration::from_secs(10),
    );
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].value["error"]["class"], "NON_RETRYABLE_POLICY");
    assert_eq!(
        dlq[0].value["original_event"]["payload"]["resource"],
        "user/42"
    );
    guard.shutdown(Duration::from_secs(5)).unwrap();
    assert!(common::spool_is_empty(spool.path()));
}
