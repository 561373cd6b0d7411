//! A service that consumes agent execution events and dead-letters the ones it cannot
//! handle, with `tracing_omninode::consumer::DeadLetters`:
//!
//! ```sh
//! cargo run --example consumer                                        # embedded broker
//! OMNINODE_KAFKA_BOOTSTRAP_SERVERS=$(scripts/broker start) cargo run --example consumer
//! ```
//!
//! It first publishes a few `execution.started` events through the pipeline (one names an
//! agent the service does not know, one hits a flaky dependency), then consumes them with
//! its own rdkafka consumer and hands each record, as borrowed bytes, to the helper:
//! the flaky one is retried with backoff and succeeds, the unknown agent goes to
//! `omninode.agent.execution.started.v1.dlq` at once. The offset is committed only after
//! the helper said `Done` or `DeadLettered`.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::ClientConfig;
use serde_json::Value;
use tracing_omninode::consumer::{Consumed, DeadLetters, HandlerError, Verdict};
use tracing_omninode::events::AgentExecutionStarted;
use tracing_subscriber::prelude::*;

const TOPIC: &str = "omninode.agent.execution.started.v1";
const GROUP: &str = "agent-auditor";

/// The service's handler: knows two agents; the cache it uses fails the first time.
fn handle(record: &Consumed<'_>, cache_up: &mut bool) -> Result<(), HandlerError> {
    let envelope: Value = serde_json::from_slice(record.value.unwrap_or_default())
        .map_err(|e| HandlerError::invalid("NotJson", e.to_string()))?;
    let agent = envelope["payload"]["agent_name"]
        .as_str()
        .unwrap_or_default();
    match agent {
        "planner" => Ok(()),
        "coder" if !*cache_up => {
            *cache_up = true;
            println!("  coder: the cache is down; the helper retries after a backoff");
            Err(HandlerError::dependency(
                "CacheDown",
                "redis://cache:6379 refused the connection",
            ))
        }
        "coder" => Ok(()),
        other => Err(HandlerError::invalid(
            "UnknownAgent",
            format!("no handler for agent `{other}`"),
        )),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mock;
    let bootstrap = match std::env::var("OMNINODE_KAFKA_BOOTSTRAP_SERVERS") {
        Ok(b) if !b.trim().is_empty() => {
            let mut spec = tracing_omninode::topics::TopicSpec::new(&b);
            spec.partitions = 1;
            tracing_omninode::topics::create_topics(&spec)?;
            b
        }
        _ => {
            println!("# no OMNINODE_KAFKA_BOOTSTRAP_SERVERS: using an embedded broker (librdkafka's mock cluster)");
            mock = MockCluster::new(1)?;
            for t in [TOPIC.to_owned(), format!("{TOPIC}.dlq")] {
                mock.create_topic(&t, 1, 1)?;
            }
            mock.bootstrap_servers()
        }
    };
    let builder = tracing_omninode::builder()
        .bootstrap_servers(bootstrap.clone())
        .service_name("agent-auditor");

    // Some agent executions, published through the pipeline.
    let (layer, guard) = builder.clone().build()?;
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for agent in ["planner", "coder", "mystery-agent"] {
            tracing_omninode::emit(AgentExecutionStarted {
                agent_name: agent.into(),
                user_request: "tidy the repo".into(),
                ..Default::default()
            });
        }
    });
    guard.shutdown(Duration::from_secs(10))?;

    // The service: its own consumer, the helper around its handler.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[TOPIC])?;
    let mut dlq = DeadLetters::new(&builder, GROUP)?;
    let mut cache_up = false;
    let mut seen = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen < 3 {
        if std::time::Instant::now() > deadline {
            return Err("the three records did not arrive within 30 s".into());
        }
        // None: nothing yet, or a group event (the first assignment) was served.
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message?;
        let headers: Vec<(&str, &[u8])> = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key, h.value.unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let record = Consumed {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            value: message.payload(),
            headers: &headers,
        };
        let verdict = dlq.process(&record, |r| handle(r, &mut cache_up))?;
        println!("{}@{}: {verdict:?}", record.topic, record.offset);
        if matches!(verdict, Verdict::Done | Verdict::DeadLettered) {
            consumer.commit_message(&message, CommitMode::Sync)?;
        }
        seen += 1;
    }
    println!("# see what was dead-lettered: omninode-events tail {TOPIC}.dlq (or dlq stats)");
    Ok(())
}
