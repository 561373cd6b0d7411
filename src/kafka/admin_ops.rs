//! Topic provisioning for the command line: as [`crate::topics::create_topics`], with the
//! [`ClientOptions`] of the other tools, so `-X` properties (SASL, SSL) reach the admin
//! client too.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::kafka::client::{ClientOptions, OpsError};
use crate::kafka::topics::{catalog_topics, TopicsReport};

/// Polls an admin future until it is ready (librdkafka's background thread completes it;
/// no async runtime is needed for one request).
fn wait<F: Future>(fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Creates every catalog topic and its `.dlq` twin under `prefix`; an existing topic is
/// fine. Fails fast with [`OpsError::Unreachable`] when no broker answers.
pub fn create_catalog_topics(
    opts: &ClientOptions,
    prefix: &str,
    partitions: i32,
    replication: i32,
) -> Result<TopicsReport, OpsError> {
    crate::kafka::consumer::list_topics(opts)?;
    let client: AdminClient<DefaultClientContext> = opts
        .client_config()
        .create()
        .map_err(|e| OpsError::kafka("creating the admin client", e))?;
    let names = catalog_topics(prefix);
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(replication)))
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(opts.timeout.max(Duration::from_secs(30))))
        .request_timeout(Some(opts.timeout.max(Duration::from_secs(30))));
    let results = wait(client.create_topics(new.iter(), &opts))
        .map_err(|e| OpsError::kafka("creating topics", e))?;
    let mut report = TopicsReport::default();
    for r in results {
        match r {
            Ok(t) => report.created.push(t),
            Err((t, RDKafkaErrorCode::TopicAlreadyExists)) => report.existing.push(t),
            Err((t, code)) => {
                return Err(OpsError::Kafka {
                    what: "creating topics",
                    message: format!("{t}: {code}"),
                })
            }
        }
    }
    Ok(report)
}
