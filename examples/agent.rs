//! `#[instrument]`-annotated agent code, sync and async: a span with an `agent_name` field
//! becomes `execution.started` / `completed` / `failed`; quality gate, provider and
//! confidence events are emitted inside it and inherit its correlation and causation.
//!
//! ```sh
//! OMNINODE_KAFKA_BOOTSTRAP_SERVERS=$(scripts/broker start) cargo run --example agent
//! ```

use std::time::Duration;

use tracing::instrument;
use tracing_omninode::emit;
use tracing_omninode::events::{
    ConfidenceScored, ProviderSelected, QualityGateFailed, QualityGatePassed,
};
use tracing_subscriber::prelude::*;

#[instrument(fields(agent_name = "router", user_request = %request, quality_score, metrics.candidates))]
fn route(request: &str) -> &'static str {
    emit(ConfidenceScored {
        agent_name: "coder".into(),
        confidence_score: 0.87,
        routing_strategy: "capability-match".into(),
        ..Default::default()
    });
    let span = tracing::Span::current();
    span.record("metrics.candidates", 3u64);
    span.record("quality_score", 0.87);
    "coder"
}

#[instrument(fields(agent_name = "coder", session_id = "s-42"))]
async fn code(task: &str) -> String {
    emit(ProviderSelected {
        provider_name: "anthropic".into(),
        model_name: "claude".into(),
        selection_reason: "best at code".into(),
        ..Default::default()
    });
    // The span is entered on every poll; still one `started` and one `completed`.
    tokio::task::yield_now().await;
    emit(QualityGatePassed {
        gate_name: "compiles".into(),
        score: 1.0,
        threshold: 1.0,
        ..Default::default()
    });
    format!("fn main() {{ /* {task} */ }}")
}

#[instrument(err, fields(agent_name = "reviewer"))]
async fn review(_code: &str) -> Result<(), String> {
    emit(QualityGateFailed {
        gate_name: "coverage".into(),
        score: 0.4,
        threshold: 0.8,
        failure_reasons: vec!["no tests".into()],
        recommendations: vec!["add tests".into()],
        ..Default::default()
    });
    Err("coverage below threshold".into()) // -> execution.failed
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (layer, guard) = tracing_omninode::builder()
        .service_name("agent-example")
        .build()?;
    tracing_subscriber::registry().with(layer).init();

    let agent = route("write hello world");
    println!("routed to {agent}");
    let code = code("hello world").await;
    let _ = review(&code).await;

    // Shutdown waits on a channel, never on the network from this runtime thread.
    println!("{}", guard.shutdown(Duration::from_secs(10))?);
    Ok(())
}
