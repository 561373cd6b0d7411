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

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::contract::catalog::{self, EventKind};
use crate::contract::timestamp::Timestamp;

/// A typed catalog event.
pub trait Event: Serialize + Send + Sync + 'static {
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

macro_rules! event {
    (
        $(#[$meta:meta])*
        $name:ident = $ty:literal, correlated: $corr:tt {
            $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $fty, )*
        }
        impl Event for $name {
            const EVENT_TYPE: &'static str = $ty;
            event!(@corr $corr);
        }
    };
    (@corr yes) => {
        fn correlation_id(&self) -> Option<Uuid> {
            self.correlation_id
        }
    };
    (@corr no) => {};
}

event! {
    /// `omninode.logging.application.v1`: one application log line (built by the layer).
    ApplicationLog = "omninode.logging.application.v1", correlated: no {
        /// Service that logged it.
        service_name: String,
        /// Instance that logged it.
        instance_id: String,
        /// `TRACE`, `DEBUG`, `INFO`, `WARN` or `ERROR`.
        level: String,
        /// The tracing target.
        logger: String,
        /// The message text.
        message: String,
        /// A machine-readable code, from a `code` field.
        code: Option<String>,
        /// Event fields, then enclosing span fields (inner wins).
        context: Object,
    }
}

event! {
    /// `omninode.logging.audit.v1`: who did what to which resource, and how it ended.
    AuditEvent = "omninode.logging.audit.v1", correlated: no {
        /// Tenant; falls back to the span's `tenant_id`, then to config.
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant_id: Option<String>,
        /// What was done (`user.delete`, ...).
        action: String,
        /// Who did it.
        actor: String,
        /// What it was done to.
        resource: String,
        /// When; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        timestamp: Option<Timestamp>,
        /// How it ended.
        outcome: Outcome,
        /// Any further fields.
        #[serde(flatten)]
        extra: Object,
    }
}

event! {
    /// `omninode.logging.security.v1`: a security decision.
    SecurityEvent = "omninode.logging.security.v1", correlated: no {
        /// Tenant; falls back to the span's `tenant_id`, then to config.
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant_id: Option<String>,
        /// Kind of security event (`api_key_used`, `permission_check`, ...).
        event_type: String,
        /// The user concerned.
        user_id: String,
        /// The resource concerned.
        resource: String,
        /// The decision taken.
        decision: Decision,
        /// When; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        timestamp: Option<Timestamp>,
        /// Any further fields.
        #[serde(flatten)]
        extra: Object,
    }
}

event! {
    /// `omninode.agent.execution.started.v1` (normally emitted by the layer from an agent span).
    AgentExecutionStarted = "omninode.agent.execution.started.v1", correlated: yes {
        /// Agent name.
        agent_name: String,
        /// The request the agent works on.
        user_request: String,
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// Session id, if any.
        session_id: Option<String>,
        /// Start time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        started_at: Option<Timestamp>,
        /// Free-form context.
        context: Object,
    }
}

event! {
    /// `omninode.agent.execution.completed.v1`.
    AgentExecutionCompleted = "omninode.agent.execution.completed.v1", correlated: yes {
        /// Agent name.
        agent_name: String,
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// Wall-clock duration.
        duration_ms: u64,
        /// Quality score, if one was computed.
        quality_score: Option<f64>,
        /// Completion time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        completed_at: Option<Timestamp>,
        /// A short summary of the output.
        output_summary: Option<String>,
        /// Metrics recorded during the execution.
        metrics: Object,
    }
}

event! {
    /// `omninode.agent.execution.failed.v1`.
    AgentExecutionFailed = "omninode.agent.execution.failed.v1", correlated: yes {
        /// Agent name.
        agent_name: String,
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// The error message.
        error_message: String,
        /// The error's type or category.
        error_type: String,
        /// Stack trace (capped at 8 KiB on the wire).
        error_stack_trace: Option<String>,
        /// Failure time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        failed_at: Option<Timestamp>,
        /// Whatever was produced before the failure.
        partial_results: Object,
    }
}

event! {
    /// `omninode.agent.quality.gate.passed.v1`.
    QualityGatePassed = "omninode.agent.quality.gate.passed.v1", correlated: yes {
        /// Gate name.
        gate_name: String,
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// Score reached.
        score: f64,
        /// Threshold to pass.
        threshold: f64,
        /// Time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        passed_at: Option<Timestamp>,
        /// Metrics behind the score.
        metrics: Object,
    }
}

event! {
    /// `omninode.agent.quality.gate.failed.v1`.
    QualityGateFailed = "omninode.agent.quality.gate.failed.v1", correlated: yes {
        /// Gate name.
        gate_name: String,
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// Score reached.
        score: f64,
        /// Threshold to pass.
        threshold: f64,
        /// Time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        failed_at: Option<Timestamp>,
        /// Why it failed.
        failure_reasons: Vec<String>,
        /// What to do about it.
        recommendations: Vec<String>,
    }
}

event! {
    /// `omninode.agent.provider.selected.v1`.
    ProviderSelected = "omninode.agent.provider.selected.v1", correlated: yes {
        /// Provider (`openai`, `anthropic`, ...).
        provider_name: String,
        /// Model.
        model_name: String,
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// Why it was chosen.
        selection_reason: String,
        /// The criteria weighed.
        selection_criteria: Object,
        /// Time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        selected_at: Option<Timestamp>,
    }
}

event! {
    /// `omninode.agent.confidence.scored.v1`.
    ConfidenceScored = "omninode.agent.confidence.scored.v1", correlated: yes {
        /// Agent scored.
        agent_name: String,
        /// The score.
        confidence_score: f64,
        /// Routing strategy in use.
        routing_strategy: String,
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// Time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        scored_at: Option<Timestamp>,
        /// Factors behind the score.
        factors: Object,
    }
}

event! {
    /// `omninode.agent.routing.requested.v1`.
    RoutingRequested = "omninode.agent.routing.requested.v1", correlated: yes {
        /// The request to route.
        user_request: String,
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// Time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        requested_at: Option<Timestamp>,
        /// Free-form context.
        context: Object,
    }
}

event! {
    /// `omninode.agent.routing.completed.v1`.
    RoutingCompleted = "omninode.agent.routing.completed.v1", correlated: yes {
        /// The agent selected.
        selected_agent: String,
        /// Confidence in the choice.
        confidence_score: f64,
        /// Strategy used.
        routing_strategy: String,
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// Routing time.
        duration_ms: u64,
        /// Time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        completed_at: Option<Timestamp>,
        /// The runners-up.
        alternatives: Vec<serde_json::Value>,
    }
}

event! {
    /// `omninode.agent.routing.failed.v1`.
    RoutingFailed = "omninode.agent.routing.failed.v1", correlated: yes {
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// The error message.
        error_message: String,
        /// The error's type.
        error_type: String,
        /// Time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        failed_at: Option<Timestamp>,
    }
}

event! {
    /// `omninode.agent.transformation.started.v1`.
    TransformationStarted = "omninode.agent.transformation.started.v1", correlated: yes {
        /// Agent handing over.
        source_agent: String,
        /// Agent taking over.
        target_agent: String,
        /// Why.
        transformation_reason: String,
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// Time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        started_at: Option<Timestamp>,
    }
}

event! {
    /// `omninode.agent.transformation.completed.v1`.
    TransformationCompleted = "omninode.agent.transformation.completed.v1", correlated: yes {
        /// Agent handing over.
        source_agent: String,
        /// Agent taking over.
        target_agent: String,
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// Duration.
        duration_ms: u64,
        /// Time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        completed_at: Option<Timestamp>,
    }
}

event! {
    /// `omninode.agent.transformation.failed.v1`.
    TransformationFailed = "omninode.agent.transformation.failed.v1", correlated: yes {
        /// Agent handing over.
        source_agent: String,
        /// Agent taking over.
        target_agent: String,
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// The error message.
        error_message: String,
        /// The error's type.
        error_type: String,
        /// Time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        failed_at: Option<Timestamp>,
    }
}

event! {
    /// `omninode.intelligence.code-analysis.requested.v1`.
    CodeAnalysisRequested = "omninode.intelligence.code-analysis.requested.v1", correlated: yes {
        /// Operation (`quality`, `security-scan`, ...).
        operation_type: String,
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// Path analysed.
        source_path: String,
        /// Source language.
        language: String,
        /// Analysis options.
        options: Object,
        /// Time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        requested_at: Option<Timestamp>,
    }
}

event! {
    /// `omninode.intelligence.code-analysis.completed.v1`.
    CodeAnalysisCompleted = "omninode.intelligence.code-analysis.completed.v1", correlated: yes {
        /// Operation.
        operation_type: String,
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// Duration.
        duration_ms: u64,
        /// One-line summary.
        results_summary: String,
        /// Full results.
        results: Object,
        /// Time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        completed_at: Option<Timestamp>,
    }
}

event! {
    /// `omninode.intelligence.code-analysis.failed.v1`.
    CodeAnalysisFailed = "omninode.intelligence.code-analysis.failed.v1", correlated: yes {
        /// Operation.
        operation_type: String,
        /// Correlation id; defaults to the span's.
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<Uuid>,
        /// Machine-readable error code.
        error_code: String,
        /// The error message.
        error_message: String,
        /// Time; defaults to capture time.
        #[serde(skip_serializing_if = "Option::is_none")]
        failed_at: Option<Timestamp>,
    }
}

/// An [`Event`] with its type erased, so the pipeline can carry any of them.
pub trait AnyEvent: Send + Sync + std::fmt::Debug + 'static {
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
