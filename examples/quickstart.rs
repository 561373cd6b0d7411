//! The README's main command: `cargo run --example quickstart`.
//!
//! With no `OMNINODE_KAFKA_BOOTSTRAP_SERVERS` it starts an embedded broker (librdkafka's
//! mock cluster) and says so. It creates the topics, runs a small instrumented agent
//! workflow with audit and security events and one failing step, reads every topic back,
//! prints each envelope as one JSON line, then the delivery report.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tracing::instrument;
use tracing_omninode::events::{ProviderSelected, QualityGatePassed};
use tracing_omninode::topics::{catalog_topics, create_topics, TopicSpec};
use tracing_subscriber::prelude::*;

#[instrument(fields(agent_name = "planner", user_request = %request, quality_score, output_summary))]
fn plan(request: &str) -> Vec<&'static str> {
    tracing::info!(steps = 2, "planning");
    tracing_omninode::emit(ProviderSelected {
        provider_name: "anthropic".into(),
        model_name: "claude".into(),
        selection_reason: "best code quality".into(),
        ..Default::default()
    });
    let span = tracing::Span::current();
    span.record("quality_score", 0.93);
    span.record("output_summary", "2 steps");
    vec!["fetch", "summarize"]
}

#[instrument(err, fields(agent_name = "fetcher"))]
fn fetch(url: &str) -> Result<String, std::io::Error> {
    // The one failing step: the connection string in the error is sanitized on the wire.
    Err(std::io::Error::other(format!(
        "could not reach {url} via postgres://app:hunter2@db.internal/orders"
    )))
}

#[instrument(fields(agent_name = "summarizer"))]
fn summarize() {
    tracing_omninode::emit(QualityGatePassed {
        gate_name: "summary-length".into(),
        score: 0.97,
        threshold: 0.9,
        ..Default::default()
    });
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let configured = std::env::var("OMNINODE_KAFKA_BOOTSTRAP_SERVERS").ok();
    let mock;
    let bootstrap = match configured {
        Some(b) if !b.trim().is_empty() => {
            println!("# using the broker at {b}");
            let mut spec = TopicSpec::new(&b);
            spec.partitions = 1;
            let topics = create_topics(&spec)?;
            println!(
                "# topics: {} created, {} already there",
                topics.created.len(),
                topics.existing.len()
            );
            b
        }
        _ => {
            mock = MockCluster::new(1)?;
            let b = mock.bootstrap_servers();
            println!("# OMNINODE_KAFKA_BOOTSTRAP_SERVERS is not set: started an embedded broker (librdkafka mock cluster) at {b}");
            // The mock cluster has no admin API: create the 38 topics directly.
            for t in catalog_topics("") {
                mock.create_topic(&t, 1, 1)?;
            }
            println!("# topics: 38 created");
            b
        }
    };

    let spool = std::env::temp_dir().join(format!("omninode-quickstart-{}", std::process::id()));
    let (layer, guard) = tracing_omninode::builder()
        .bootstrap_servers(&bootstrap)
        .service_name("quickstart")
        .tenant_id("acme")
        .spool_dir(&spool)
        .build()?;
    tracing_subscriber::registry().with(layer).init();

    {
        let _request =
            tracing::info_span!("request", correlation_id = %uuid::Uuid::now_v7(), tenant_id = "acme")
                .entered();
        tracing::info!(user = "alice", "request received");
        tracing_omninode::security!(
            event_type = "api_key_used",
            user_id = "alice",
            resource = "agents/planner",
            decision = "allow"
        );
        for step in plan("summarize today's orders") {
            match step {
                "fetch" => {
                    let _ = fetch("https://orders.internal/today");
                }
                _ => summarize(),
            }
        }
        tracing_omninode::audit!(
            action = "report.generate",
            actor = "alice",
            resource = "reports/orders-today",
            outcome = "success"
        );
        tracing::warn!(
            api_key = "sk-live-not-really-a-key",
            "this field is redacted by key name"
        );
    }

    let report = guard.shutdown(Duration::from_secs(10))?;

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "quickstart-reader")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for t in catalog_topics("") {
        tpl.add_partition_offset(&t, 0, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let want = report.delivered + report.dead_lettered;
    let mut seen = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen < want && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            if let Some(Ok(text)) = m.payload_view::<str>() {
                println!("{text}");
                seen += 1;
            }
        }
    }
    println!("# delivery report: {report}");
    let _ = std::fs::remove_dir_all(&spool);
    Ok(())
}
