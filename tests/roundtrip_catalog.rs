//! Every one of the 19 catalog event types goes through the pipeline to a real broker and
//! comes back with the value, key and headers SPEC §2 requires.

mod common;

use std::time::Duration;

use serde_json::json;
use tracing_omninode::catalog::{self, CATALOG};
use tracing_omninode::emit;
use tracing_omninode::events::*;
use tracing_omninode::validate::validate_envelope;
use tracing_omninode::wire::is_valid_traceparent;
use tracing_subscriber::prelude::*;

fn obj(v: serde_json::Value) -> Object {
    v.as_object().unwrap().clone()
}

#[test]
fn all_nineteen_event_types_round_trip_through_the_broker() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("catalog");
    common::provision(&bootstrap, &prefix);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let _span = tracing::info_span!(
            "request",
            correlation_id = "0190f0f0-0000-7000-8000-000000000001"
        )
        .entered();
        emit(ApplicationLog {
            level: "INFO".into(),
            logger: "app".into(),
            message: "hello".into(),
            ..Default::default()
        });
        emit(AuditEvent {
            action: "user.delete".into(),
            actor: "alice".into(),
            resource: "user/42".into(),
            outcome: Outcome::Success,
            ..Default::default()
        });
        emit(SecurityEvent {
            event_type: "api_key_used".into(),
            user_id: "u-1".into(),
            resource: "billing".into(),
            decision: Decision::Deny,
            ..Default::default()
        });
        emit(AgentExecutionStarted {
            agent_name: "planner".into(),
            user_request: "plan".into(),
            context: obj(json!({"k": 1})),
            ..Default::default()
        });
        emit(AgentExecutionCompleted {
            agent_name: "planner".into(),
            duration_ms: 12,
            quality_score: Some(0.9),
            ..Default::default()
        });
        emit(AgentExecutionFailed {
            agent_name: "planner".into(),
            error_message: "boom".into(),
            error_type: "Io".into(),
            ..Default::default()
        });
        emit(QualityGatePassed {
            gate_name: "tests".into(),
            score: 0.97,
            threshold: 0.9,
            ..Default::default()
        });
        emit(QualityGateFailed {
            gate_name: "lint".into(),
            score: 0.2,
            threshold: 0.9,
            failure_reasons: vec!["x".into()],
            ..Default::default()
        });
        emit(ProviderSelected {
            provider_name: "anthropic".into(),
            model_name: "claude".into(),
            selection_reason: "best".into(),
            ..Default::default()
        });
        emit(ConfidenceScored {
            agent_name: "planner".into(),
            confidence_score: 0.8,
            routing_strategy: "fuzzy".into(),
            ..Default::default()
        });
        emit(RoutingRequested {
            user_request: "do it".into(),
            ..Default::default()
        });
        emit(RoutingCompleted {
            selected_agent: "planner".into(),
            confidence_score: 0.8,
            routing_strategy: "fuzzy".into(),
            duration_ms: 3,
            alternatives: vec![json!("coder")],
            ..Default::default()
        });
        emit(RoutingFailed {
            error_message: "none fit".into(),
            error_type: "NoMatch".into(),
            ..Default::default()
        });
        emit(TransformationStarted {
            source_agent: "a".into(),
            target_agent: "b".into(),
            transformation_reason: "r".into(),
            ..Default::default()
        });
        emit(TransformationCompleted {
            source_agent: "a".into(),
            target_agent: "b".into(),
            duration_ms: 5,
            ..Default::default()
        });
        emit(TransformationFailed {
            source_agent: "a".into(),
            target_agent: "b".into(),
            error_message: "e".into(),
            error_type: "T".into(),
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
            duration_ms: 9,
            results_summary: "ok".into(),
            ..Default::default()
        });
        emit(CodeAnalysisFailed {
            operation_type: "quality".into(),
            error_code: "E1".into(),
            error_message: "bad".into(),
            ..Default::default()
        });
    });
    let report = guard.shutdown(Duration::from_secs(20)).unwrap();
    assert_eq!(report.delivered, 19, "{report:?}");

    let got = common::consume(
        &bootstrap,
        &common::event_topics(&prefix),
        19,
        Duration::from_secs(20),
    );
    assert_eq!(got.len(), 19, "consumed {got:#?}");
    let mut seen = std::collections::BTreeSet::new();
    for rec in &got {
        let v = &rec.value;
        validate_envelope(v).unwrap_or_else(|e| panic!("{}: {e:?}", rec.topic));
        let event_type = v["event_type"].as_str().unwrap();
        assert_eq!(rec.topic, format!("{prefix}{event_type}"));
        seen.insert(event_type.to_owned());
        let kind = catalog::lookup(event_type).unwrap();
        let key_field = kind.family.default_key_field();
        let expected_key = v["payload"][key_field].as_str().unwrap();
        assert_eq!(rec.key.as_deref(), Some(expected_key), "{event_type}");
        let h = &rec.headers;
        assert_eq!(h["x-event-id"], v["event_id"].as_str().unwrap());
        assert_eq!(h["x-event-type"], event_type);
        assert_eq!(h["x-correlation-id"], v["correlation_id"].as_str().unwrap());
        assert_eq!(
            h["x-correlation-id"],
            "0190f0f0-0000-7000-8000-000000000001"
        );
        assert!(
            !h.contains_key("x-causation-id"),
            "no agent span, so no causation"
        );
        assert_eq!(h["x-tenant"], v["tenant_id"].as_str().unwrap());
        assert_eq!(h["x-schema-hash"], kind.schema_hash());
        assert_eq!(h["x-sequence"], v["sequence"].to_string());
        assert!(
            is_valid_traceparent(&h["x-traceparent"]),
            "{}",
            h["x-traceparent"]
        );
        assert_eq!(
            &h["x-traceparent"][3..35],
            "0190f0f0000070008000000000000001"
        );
        assert_eq!(h["content-type"], "application/json");
    }
    assert_eq!(seen.len(), CATALOG.len());
}
