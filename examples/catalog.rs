//! Emits at least one event of each of the 19 catalog types against the broker in
//! `OMNINODE_KAFKA_BOOTSTRAP_SERVERS`, shuts the guard down and prints the delivery report as
//! its last line. With the broker down it still ends within its deadline (guaranteed events
//! are spooled).
//!
//! ```sh
//! OMNINODE_KAFKA_BOOTSTRAP_SERVERS=$(scripts/broker start) cargo run --example catalog
//! ```

use std::time::Duration;

use serde_json::json;
use tracing_omninode::emit;
use tracing_omninode::events::*;
use tracing_omninode::topics::{create_topics, TopicSpec};
use tracing_subscriber::prelude::*;

const DEADLINE: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::var("OMNINODE_KAFKA_BOOTSTRAP_SERVERS").map_err(|_| {
        "set OMNINODE_KAFKA_BOOTSTRAP_SERVERS=host:port (e.g. $(scripts/broker start))"
    })?;
    let mut spec = TopicSpec::new(&bootstrap);
    spec.timeout = Duration::from_secs(5);
    match create_topics(&spec) {
        Ok(r) => eprintln!(
            "topics: {} created, {} existing",
            r.created.len(),
            r.existing.len()
        ),
        Err(e) => eprintln!("topics could not be created ({e}); events will be spooled"),
    }
    let (layer, guard) = tracing_omninode::builder()
        .service_name("catalog-example")
        .message_timeout(Duration::from_secs(3))
        .build()?;
    tracing_subscriber::registry().with(layer).init();

    let _request = tracing::info_span!("request", correlation_id = %uuid::Uuid::now_v7()).entered();
    tracing::info!(items = 3, "application log");
    tracing_omninode::audit!(
        action = "catalog.emit",
        actor = "example",
        resource = "catalog",
        outcome = "success"
    );
    tracing_omninode::security!(
        event_type = "permission_check",
        user_id = "example",
        resource = "catalog",
        decision = "allow"
    );
    {
        // execution.started on enter, execution.completed on close.
        let agent = tracing::info_span!(
            "agent",
            agent_name = "cataloguer",
            user_request = "emit all"
        );
        let _e = agent.enter();
        emit(QualityGatePassed {
            gate_name: "g".into(),
            score: 0.9,
            threshold: 0.8,
            ..Default::default()
        });
        emit(QualityGateFailed {
            gate_name: "g".into(),
            score: 0.1,
            threshold: 0.8,
            failure_reasons: vec!["low".into()],
            ..Default::default()
        });
        emit(ProviderSelected {
            provider_name: "anthropic".into(),
            model_name: "claude".into(),
            selection_reason: "quality".into(),
            ..Default::default()
        });
        emit(ConfidenceScored {
            agent_name: "cataloguer".into(),
            confidence_score: 0.8,
            routing_strategy: "fuzzy".into(),
            ..Default::default()
        });
        emit(RoutingRequested {
            user_request: "emit all".into(),
            ..Default::default()
        });
        emit(RoutingCompleted {
            selected_agent: "cataloguer".into(),
            confidence_score: 0.8,
            routing_strategy: "fuzzy".into(),
            duration_ms: 1,
            alternatives: vec![json!("other")],
            ..Default::default()
        });
        emit(RoutingFailed {
            error_message: "no route".into(),
            error_type: "NoMatch".into(),
            ..Default::default()
        });
        emit(TransformationStarted {
            source_agent: "a".into(),
            target_agent: "b".into(),
            transformation_reason: "handoff".into(),
            ..Default::default()
        });
        emit(TransformationCompleted {
            source_agent: "a".into(),
            target_agent: "b".into(),
            duration_ms: 2,
            ..Default::default()
        });
        emit(TransformationFailed {
            source_agent: "a".into(),
            target_agent: "b".into(),
            error_message: "refused".into(),
            error_type: "Refused".into(),
            ..Default::default()
        });
        emit(CodeAnalysisRequested {
            operation_type: "quality".into(),
            source_path: "src/".into(),
            language: "rust".into(),
            ..Default::default()
        });
        emit(CodeAnalysisCompleted {
            operation_type: "quality".into(),
            duration_ms: 5,
            results_summary: "clean".into(),
            ..Default::default()
        });
        emit(CodeAnalysisFailed {
            operation_type: "security".into(),
            error_code: "E42".into(),
            error_message: "parser crashed".into(),
            ..Default::default()
        });
    }
    {
        // execution.failed: an ERROR event with an `error` field inside the agent span.
        let agent = tracing::info_span!("agent", agent_name = "breaker");
        let _e = agent.enter();
        tracing::error!(error = "deliberate failure", "step failed");
    }
    drop(_request);
    let report = guard.shutdown(DEADLINE)?;
    println!("{report}");
    Ok(())
}
