//! Typed payloads for every event type of the catalog.
//!
//! Build one with struct-update syntax and hand it to [`crate::emit`]:
//!
//! ```
//! use tracing_omninode::events::QualityGatePassed;
//! let gate = QualityGatePassed {
//!     gate_name: "unit-tests".into(),
//!     score: 0.97,
//!     threshold: 0.9,
//!     ..Default::default()
//! };
//! # let _ = gate;
//! ```
//!
//! `correlation_id` and the event's own time field (`passed_at`, `started_at`, ...) may be
//! left as `None`: they are filled from the envelope (the enclosing span's correlation id
//! and the capture time). `tenant_id` of audit and security events falls back to the
//! enclosing span's `tenant_id` field, then to the configured tenant.
//!
//! Most of this file is a data table: the `event_catalog!` invocation below is the one
//! definition of every event type (struct, [`Event`] impl and catalog entry; see
//! [`crate::contract::catalog`] for how to add one). Its field declarations look alike on
//! purpose.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::contract::catalog::{self, event_catalog, EventKind};
use crate::contract::timestamp::Timestamp;

/// A typed catalog event: one of the types below. The trait is sealed (only the catalog
/// defines events), so an event type outside the catalog is a compile error, not a failure
/// at run time:
///
/// ```compile_fail
/// #[derive(serde::Serialize)]
/// struct Mine;
/// impl tracing_omninode::Event for Mine {
///     const EVENT_TYPE: &'static str = "omninode.mine.v1";
/// }
/// ```
pub trait Event: sealed::Sealed + Serialize + Send + Sync + 'static {
    /// The event type (and topic) it is published as.
    const EVENT_TYPE: &'static str;

    /// The catalog entry of this type.
    fn kind() -> &'static EventKind {
        catalog::lookup(Self::EVENT_TYPE).expect("every Event type is in the catalog")
    }

    /// The correlation id the caller set explicitly, if any.
    fn correlation_id(&self) -> Option<Uuid> {
        None
    }
}

pub(crate) mod sealed {
    /// Implemented by the catalog's `event_catalog!` definitions only.
    pub trait Sealed {}
}

/// A JSON object (free-form payload maps such as `context`, `metrics` or `factors`).
pub type Object = Map<String, Value>;

/// Outcome of an audited action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The action succeeded.
    #[default]
    Success,
    /// The action failed.
    Failure,
}

/// Decision of a security check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Access allowed.
    #[default]
    Allow,
    /// Access denied.
    Deny,
}

const LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];
const OUTCOMES: &[&str] = &["success", "failure"];
const DECISIONS: &[&str] = &["allow", "deny"];

// THE catalog: one definition per event type (syntax: `catalog::event_catalog!`). The first
// paragraph of each doc comment is the description in the generated schema. After a change,
// regenerate `schemas/` (see the `catalog` module docs).
event_catalog! {
    /// An application log record made from a tracing event.
    ///
    /// Built by the layer from every `tracing` event at or above its level.
    ApplicationLog = "omninode.logging.application.v1", family: Application {
        /// Producing service; the partition key.
        service_name: String as NonEmptyString,
        /// Producing instance of the service.
        instance_id: String as NonEmptyString,
        /// `TRACE`, `DEBUG`, `INFO`, `WARN` or `ERROR`.
        level: String as OneOf(LEVELS),
        /// The tracing target.
        logger: String as String,
        /// The message text.
        message: String as String,
        /// Machine-readable code, from a `code` field (e.g. `OMNINODE_EVENTS_DROPPED`).
        code: Option<String> as StringOrNull,
        /// Event fields, then enclosing span fields (inner wins).
        context: Object as Object,
    }

    /// An audit trail record for compliance: who did what to which resource, and how it ended.
    AuditEvent = "omninode.logging.audit.v1", family: Audit, time: timestamp {
        /// Tenant the action belongs to; the partition key. Falls back to the span's
        /// `tenant_id`, then to the configured tenant.
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant_id: Option<String> as NonEmptyString,
        /// What was done (`user.delete`, ...).
        action: String as NonEmptyString,
        /// Who did it.
        actor: String as NonEmptyString,
        /// What it was done to.
        resource: String as NonEmptyString,
        /// When it was done; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        timestamp: Option<Timestamp> as Timestamp,
        /// How it ended.
        outcome: Outcome as OneOf(OUTCOMES),
    } not_in_catalog {
        /// Any further fields.
        #[serde(flatten)]
        extra: Object,
    }

    /// A security audit record, such as an API key use or a permission check.
    SecurityEvent = "omninode.logging.security.v1", family: Security, time: timestamp {
        /// Tenant the decision belongs to; the partition key. Falls back to the span's
        /// `tenant_id`, then to the configured tenant.
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant_id: Option<String> as NonEmptyString,
        /// Kind of security event (`api_key_used`, `permission_check`, ...); not the
        /// envelope's `event_type`.
        event_type: String as NonEmptyString,
        /// The user concerned.
        user_id: String as NonEmptyString,
        /// The resource concerned.
        resource: String as NonEmptyString,
        /// The decision taken.
        decision: Decision as OneOf(DECISIONS),
        /// When it was decided; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        timestamp: Option<Timestamp> as Timestamp,
    } not_in_catalog {
        /// Any further fields.
        #[serde(flatten)]
        extra: Object,
    }

    /// An agent execution began.
    ///
    /// Normally emitted by the layer when an agent span is first entered.
    AgentExecutionStarted = "omninode.agent.execution.started.v1", family: AgentExecution,
        time: started_at {
        /// Agent name.
        agent_name: String as NonEmptyString,
        /// The request the agent works on.
        user_request: String as String,
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// Session the execution belongs to, or null if none.
        session_id: Option<String> as StringOrNull,
        /// Start time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        started_at: Option<Timestamp> as Timestamp,
        /// Free-form context.
        context: Object as Object,
    }

    /// An agent execution finished successfully.
    AgentExecutionCompleted = "omninode.agent.execution.completed.v1", family: AgentExecution,
        time: completed_at {
        /// Agent name.
        agent_name: String as NonEmptyString,
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// Elapsed (wall-clock) time in milliseconds.
        duration_ms: u64 as Integer,
        /// Quality score, or null if none was computed.
        quality_score: Option<f64> as NumberOrNull,
        /// Completion time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        completed_at: Option<Timestamp> as Timestamp,
        /// A short summary of the output, or null.
        output_summary: Option<String> as StringOrNull,
        /// Metrics recorded during the execution.
        metrics: Object as Object,
    }

    /// An agent execution failed.
    AgentExecutionFailed = "omninode.agent.execution.failed.v1", family: AgentExecution,
        time: failed_at {
        /// Agent name.
        agent_name: String as NonEmptyString,
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// The error message.
        error_message: String as String,
        /// The error's type or category; `shutdown` for spans still open at shutdown.
        error_type: String as String,
        /// Stack trace (capped at 8 KiB on the wire), or null.
        error_stack_trace: Option<String> as StringOrNull,
        /// Failure time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        failed_at: Option<Timestamp> as Timestamp,
        /// Whatever was produced before the failure.
        partial_results: Object as Object,
    }

    /// A quality gate passed.
    QualityGatePassed = "omninode.agent.quality.gate.passed.v1", family: QualityGate,
        time: passed_at {
        /// Gate name.
        gate_name: String as NonEmptyString,
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// Score reached (no fixed scale).
        score: f64 as Number,
        /// Threshold to pass (same scale as the score).
        threshold: f64 as Number,
        /// Time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        passed_at: Option<Timestamp> as Timestamp,
        /// Metrics behind the score.
        metrics: Object as Object,
    }

    /// A quality gate failed.
    QualityGateFailed = "omninode.agent.quality.gate.failed.v1", family: QualityGate,
        time: failed_at {
        /// Gate name.
        gate_name: String as NonEmptyString,
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// Score reached (no fixed scale).
        score: f64 as Number,
        /// Threshold to pass (same scale as the score).
        threshold: f64 as Number,
        /// Time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        failed_at: Option<Timestamp> as Timestamp,
        /// Why it failed.
        failure_reasons: Vec<String> as StringArray,
        /// What to do about it.
        recommendations: Vec<String> as StringArray,
    }

    /// An AI provider and model were selected.
    ProviderSelected = "omninode.agent.provider.selected.v1", family: Provider,
        time: selected_at {
        /// Provider (`openai`, `anthropic`, ...).
        provider_name: String as NonEmptyString,
        /// Model.
        model_name: String as NonEmptyString,
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// Why it was chosen.
        selection_reason: String as String,
        /// The criteria weighed.
        selection_criteria: Object as Object,
        /// Time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        selected_at: Option<Timestamp> as Timestamp,
    }

    /// A routing confidence score was computed for an agent.
    ConfidenceScored = "omninode.agent.confidence.scored.v1", family: Confidence,
        time: scored_at {
        /// Agent scored.
        agent_name: String as NonEmptyString,
        /// The score (no fixed scale).
        confidence_score: f64 as Number,
        /// Routing strategy in use.
        routing_strategy: String as String,
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// Time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        scored_at: Option<Timestamp> as Timestamp,
        /// Factors behind the score.
        factors: Object as Object,
    }

    /// Routing of a user request to an agent was requested.
    RoutingRequested = "omninode.agent.routing.requested.v1", family: Routing,
        time: requested_at {
        /// The request to route.
        user_request: String as String,
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// Time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        requested_at: Option<Timestamp> as Timestamp,
        /// Free-form context.
        context: Object as Object,
    }

    /// A user request was routed to an agent.
    RoutingCompleted = "omninode.agent.routing.completed.v1", family: Routing,
        time: completed_at {
        /// The agent selected.
        selected_agent: String as NonEmptyString,
        /// Confidence in the choice (no fixed scale).
        confidence_score: f64 as Number,
        /// Strategy used.
        routing_strategy: String as String,
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// Routing time in milliseconds.
        duration_ms: u64 as Integer,
        /// Time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        completed_at: Option<Timestamp> as Timestamp,
        /// The runners-up; items of any shape.
        alternatives: Vec<serde_json::Value> as Array,
    }

    /// Routing of a user request failed.
    RoutingFailed = "omninode.agent.routing.failed.v1", family: Routing, time: failed_at {
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// The error message.
        error_message: String as String,
        /// The error's type.
        error_type: String as String,
        /// Time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        failed_at: Option<Timestamp> as Timestamp,
    }

    /// An agent transformation (hand-over from one agent to another) began.
    TransformationStarted = "omninode.agent.transformation.started.v1", family: Transformation,
        time: started_at {
        /// Agent handing over.
        source_agent: String as NonEmptyString,
        /// Agent taking over.
        target_agent: String as NonEmptyString,
        /// Why.
        transformation_reason: String as String,
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// Time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        started_at: Option<Timestamp> as Timestamp,
    }

    /// An agent transformation finished successfully.
    TransformationCompleted = "omninode.agent.transformation.completed.v1",
        family: Transformation, time: completed_at {
        /// Agent handing over.
        source_agent: String as NonEmptyString,
        /// Agent taking over.
        target_agent: String as NonEmptyString,
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// Elapsed time in milliseconds.
        duration_ms: u64 as Integer,
        /// Time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        completed_at: Option<Timestamp> as Timestamp,
    }

    /// An agent transformation failed.
    TransformationFailed = "omninode.agent.transformation.failed.v1", family: Transformation,
        time: failed_at {
        /// Agent handing over.
        source_agent: String as NonEmptyString,
        /// Agent taking over.
        target_agent: String as NonEmptyString,
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// The error message.
        error_message: String as String,
        /// The error's type.
        error_type: String as String,
        /// Time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        failed_at: Option<Timestamp> as Timestamp,
    }

    /// A code analysis was requested.
    CodeAnalysisRequested = "omninode.intelligence.code-analysis.requested.v1",
        family: CodeAnalysis, time: requested_at {
        /// Operation (`quality`, `security-scan`, ...).
        operation_type: String as NonEmptyString,
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// Path analysed.
        source_path: String as String,
        /// Source language.
        language: String as String,
        /// Analysis options.
        options: Object as Object,
        /// Time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        requested_at: Option<Timestamp> as Timestamp,
    }

    /// A code analysis finished successfully.
    CodeAnalysisCompleted = "omninode.intelligence.code-analysis.completed.v1",
        family: CodeAnalysis, time: completed_at {
        /// Operation.
        operation_type: String as NonEmptyString,
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// Elapsed time in milliseconds.
        duration_ms: u64 as Integer,
        /// One-line summary.
        results_summary: String as String,
        /// Full results.
        results: Object as Object,
        /// Time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        completed_at: Option<Timestamp> as Timestamp,
    }

    /// A code analysis failed.
    CodeAnalysisFailed = "omninode.intelligence.code-analysis.failed.v1",
        family: CodeAnalysis, time: failed_at {
        /// Operation.
        operation_type: String as NonEmptyString,
        /// Same value as the envelope's `correlation_id`; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid> as Uuid,
        /// Machine-readable error code.
        error_code: String as String,
        /// The error message.
        error_message: String as String,
        /// Time; defaults to the capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        failed_at: Option<Timestamp> as Timestamp,
    }
}

/// An [`Event`] with its type erased, so the pipeline can carry any of them (sealed like
/// [`Event`]: every implementation is a catalog event).
pub trait AnyEvent: sealed::Sealed + Send + Sync + std::fmt::Debug + 'static {
    /// The catalog entry.
    fn kind(&self) -> &'static EventKind;
    /// The explicit correlation id, if the caller set one.
    fn correlation_id(&self) -> Option<Uuid>;
    /// The payload as JSON.
    fn to_payload(&self) -> Result<Value, serde_json::Error>;
}

impl<E: Event + std::fmt::Debug> AnyEvent for E {
    fn kind(&self) -> &'static EventKind {
        E::kind()
    }
    fn correlation_id(&self) -> Option<Uuid> {
        Event::correlation_id(self)
    }
    fn to_payload(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}
