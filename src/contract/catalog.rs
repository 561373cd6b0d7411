//! The event catalog of SPEC §1: every event type, its family, partition-key field,
//! required payload fields and shipped JSON Schema.

use once_cell::sync::Lazy;
use sha2::{Digest, Sha256};

/// A group of related event types that share a partition-key policy and a delivery class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Family {
    /// `omninode.logging.application.v1`.
    Application,
    /// `omninode.logging.audit.v1`.
    Audit,
    /// `omninode.logging.security.v1`.
    Security,
    /// `omninode.agent.execution.*`.
    AgentExecution,
    /// `omninode.agent.quality.gate.*`.
    QualityGate,
    /// `omninode.agent.provider.*`.
    Provider,
    /// `omninode.agent.confidence.*`.
    Confidence,
    /// `omninode.agent.routing.*`.
    Routing,
    /// `omninode.agent.transformation.*`.
    Transformation,
    /// `omninode.intelligence.code-analysis.*`.
    CodeAnalysis,
}

impl Family {
    /// Every family, in catalog order.
    pub const ALL: [Family; 10] = [
        Family::Application,
        Family::Audit,
        Family::Security,
        Family::AgentExecution,
        Family::QualityGate,
        Family::Provider,
        Family::Confidence,
        Family::Routing,
        Family::Transformation,
        Family::CodeAnalysis,
    ];

    /// The payload field whose value is the record key by default (SPEC §1).
    pub fn default_key_field(self) -> &'static str {
        match self {
            Family::Application => "service_name",
            Family::Audit | Family::Security => "tenant_id",
            _ => "correlation_id",
        }
    }

    /// Whether events of this family may be dropped under overload (only application logs).
    /// All other families are guaranteed: they wait for queue room, then go to the spool.
    pub fn is_guaranteed(self) -> bool {
        !matches!(self, Family::Application)
    }
}

/// The JSON type a required payload field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A string.
    String,
    /// A non-empty string.
    NonEmptyString,
    /// A string or `null`.
    StringOrNull,
    /// Any JSON number.
    Number,
    /// A number or `null`.
    NumberOrNull,
    /// A non-negative integer.
    Integer,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
    /// An array of strings.
    StringArray,
    /// An RFC 3339 UTC timestamp with microseconds.
    Timestamp,
    /// A lowercase hyphenated UUID.
    Uuid,
    /// One of a fixed set of strings.
    OneOf(&'static [&'static str]),
}

/// One entry of the catalog.
#[derive(Debug)]
pub struct EventKind {
    /// The event type, equal to the topic name (before any prefix).
    pub event_type: &'static str,
    /// The family it belongs to.
    pub family: Family,
    /// The payload field that carries the event's own time, filled from the envelope
    /// timestamp when the producer leaves it out.
    pub time_field: Option<&'static str>,
    /// Required payload fields and their types.
    pub fields: &'static [(&'static str, FieldType)],
    /// The exact bytes of the shipped schema file.
    pub schema: &'static [u8],
}

impl EventKind {
    /// `schemas/<event_type>.json`, the envelope's `schema_ref`.
    pub fn schema_ref(&self) -> String {
        format!("schemas/{}.json", self.event_type)
    }

    /// `sha256:<hex>` of the exact schema file bytes (the `x-schema-hash` header).
    pub fn schema_hash(&self) -> &'static str {
        &SCHEMA_HASHES[index_of(self.event_type).expect("EventKind values only come from CATALOG")]
    }

    /// The schema as text.
    pub fn schema_str(&self) -> &'static str {
        std::str::from_utf8(self.schema).expect("shipped schemas are UTF-8")
    }

    /// Whether the event may be dropped under overload (see [`Family::is_guaranteed`]).
    pub fn is_guaranteed(&self) -> bool {
        self.family.is_guaranteed()
    }
}

static SCHEMA_HASHES: Lazy<Vec<String>> = Lazy::new(|| {
    CATALOG
        .iter()
        .map(|k| {
            let digest = Sha256::digest(k.schema);
            let mut out = String::with_capacity(71);
            out.push_str("sha256:");
            for b in digest {
                out.push_str(&format!("{b:02x}"));
            }
            out
        })
        .collect()
});

static INDEX: Lazy<std::collections::HashMap<&'static str, usize>> = Lazy::new(|| {
    CATALOG
        .iter()
        .enumerate()
        .map(|(i, k)| (k.event_type, i))
        .collect()
});

fn index_of(event_type: &str) -> Option<usize> {
    INDEX.get(event_type).copied()
}

/// Looks an event type up in the catalog.
pub fn lookup(event_type: &str) -> Option<&'static EventKind> {
    index_of(event_type).map(|i| &CATALOG[i])
}

pub use table::CATALOG;

mod table {
    use super::{EventKind, Family, FieldType::*};

    const LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];
    const OUTCOMES: &[&str] = &["success", "failure"];
    const DECISIONS: &[&str] = &["allow", "deny"];

    macro_rules! kind {
    ($ty:literal, $family:ident, $time:expr, [$($field:literal : $ft:expr),* $(,)?]) => {
        EventKind {
            event_type: $ty,
            family: Family::$family,
            time_field: $time,
            fields: &[$(($field, $ft)),*],
            schema: include_bytes!(concat!("../../schemas/", $ty, ".json")),
        }
    };
}

    /// Every event type of SPEC §1.
    pub static CATALOG: [EventKind; 19] = [
        kind!("omninode.logging.application.v1", Application, None, [
            "service_name": NonEmptyString, "instance_id": NonEmptyString, "level": OneOf(LEVELS),
            "logger": String, "message": String, "code": StringOrNull, "context": Object,
        ]),
        kind!("omninode.logging.audit.v1", Audit, Some("timestamp"), [
            "tenant_id": NonEmptyString, "action": NonEmptyString, "actor": NonEmptyString,
            "resource": NonEmptyString, "timestamp": Timestamp, "outcome": OneOf(OUTCOMES),
        ]),
        kind!("omninode.logging.security.v1", Security, Some("timestamp"), [
            "tenant_id": NonEmptyString, "event_type": NonEmptyString, "user_id": NonEmptyString,
            "resource": NonEmptyString, "decision": OneOf(DECISIONS), "timestamp": Timestamp,
        ]),
        kind!("omninode.agent.execution.started.v1", AgentExecution, Some("started_at"), [
            "agent_name": NonEmptyString, "user_request": String, "correlation_id": Uuid,
            "session_id": StringOrNull, "started_at": Timestamp, "context": Object,
        ]),
        kind!("omninode.agent.execution.completed.v1", AgentExecution, Some("completed_at"), [
            "agent_name": NonEmptyString, "correlation_id": Uuid, "duration_ms": Integer,
            "quality_score": NumberOrNull, "completed_at": Timestamp, "output_summary": StringOrNull,
            "metrics": Object,
        ]),
        kind!("omninode.agent.execution.failed.v1", AgentExecution, Some("failed_at"), [
            "agent_name": NonEmptyString, "correlation_id": Uuid, "error_message": String,
            "error_type": String, "error_stack_trace": StringOrNull, "failed_at": Timestamp,
            "partial_results": Object,
        ]),
        kind!("omninode.agent.quality.gate.passed.v1", QualityGate, Some("passed_at"), [
            "gate_name": NonEmptyString, "correlation_id": Uuid, "score": Number,
            "threshold": Number, "passed_at": Timestamp, "metrics": Object,
        ]),
        kind!("omninode.agent.quality.gate.failed.v1", QualityGate, Some("failed_at"), [
            "gate_name": NonEmptyString, "correlation_id": Uuid, "score": Number,
            "threshold": Number, "failed_at": Timestamp, "failure_reasons": StringArray,
            "recommendations": StringArray,
        ]),
        kind!("omninode.agent.provider.selected.v1", Provider, Some("selected_at"), [
            "provider_name": NonEmptyString, "model_name": NonEmptyString, "correlation_id": Uuid,
            "selection_reason": String, "selection_criteria": Object, "selected_at": Timestamp,
        ]),
        kind!("omninode.agent.confidence.scored.v1", Confidence, Some("scored_at"), [
            "agent_name": NonEmptyString, "confidence_score": Number, "routing_strategy": String,
            "correlation_id": Uuid, "scored_at": Timestamp, "factors": Object,
        ]),
        kind!("omninode.agent.routing.requested.v1", Routing, Some("requested_at"), [
            "user_request": String, "correlation_id": Uuid, "requested_at": Timestamp,
            "context": Object,
        ]),
        kind!("omninode.agent.routing.completed.v1", Routing, Some("completed_at"), [
            "selected_agent": NonEmptyString, "confidence_score": Number, "routing_strategy": String,
            "correlation_id": Uuid, "duration_ms": Integer, "completed_at": Timestamp,
            "alternatives": Array,
        ]),
        kind!("omninode.agent.routing.failed.v1", Routing, Some("failed_at"), [
            "correlation_id": Uuid, "error_message": String, "error_type": String,
            "failed_at": Timestamp,
        ]),
        kind!("omninode.agent.transformation.started.v1", Transformation, Some("started_at"), [
            "source_agent": NonEmptyString, "target_agent": NonEmptyString,
            "transformation_reason": String, "correlation_id": Uuid, "started_at": Timestamp,
        ]),
        kind!("omninode.agent.transformation.completed.v1", Transformation, Some("completed_at"), [
            "source_agent": NonEmptyString, "target_agent": NonEmptyString, "correlation_id": Uuid,
            "duration_ms": Integer, "completed_at": Timestamp,
        ]),
        kind!("omninode.agent.transformation.failed.v1", Transformation, Some("failed_at"), [
            "source_agent": NonEmptyString, "target_agent": NonEmptyString, "correlation_id": Uuid,
            "error_message": String, "error_type": String, "failed_at": Timestamp,
        ]),
        kind!("omninode.intelligence.code-analysis.requested.v1", CodeAnalysis, Some("requested_at"), [
            "operation_type": NonEmptyString, "correlation_id": Uuid, "source_path": String,
            "language": String, "options": Object, "requested_at": Timestamp,
        ]),
        kind!("omninode.intelligence.code-analysis.completed.v1", CodeAnalysis, Some("completed_at"), [
            "operation_type": NonEmptyString, "correlation_id": Uuid, "duration_ms": Integer,
            "results_summary": String, "results": Object, "completed_at": Timestamp,
        ]),
        kind!("omninode.intelligence.code-analysis.failed.v1", CodeAnalysis, Some("failed_at"), [
            "operation_type": NonEmptyString, "correlation_id": Uuid, "error_code": String,
            "error_message": String, "failed_at": Timestamp,
        ]),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_has_nineteen_unique_types() {
        let mut names: Vec<_> = CATALOG.iter().map(|k| k.event_type).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 19);
    }

    #[test]
    fn every_time_field_and_key_field_is_required() {
        for k in &CATALOG {
            let has = |f: &str| k.fields.iter().any(|(n, _)| *n == f);
            if let Some(t) = k.time_field {
                assert!(has(t), "{} lacks its time field {t}", k.event_type);
            }
            assert!(has(k.family.default_key_field()), "{}", k.event_type);
        }
    }

    #[test]
    fn schema_hash_is_sha256_of_file_bytes() {
        let k = lookup("omninode.logging.audit.v1").unwrap();
        let h = k.schema_hash();
        assert!(h.starts_with("sha256:") && h.len() == 71);
        assert!(h[7..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(
            h,
            lookup("omninode.logging.security.v1")
                .unwrap()
                .schema_hash()
        );
    }
}
