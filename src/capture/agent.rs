//! Agent executions: a span with an `agent_name` field is one. Its first enter emits
//! `execution.started`; its close emits `completed`, or `failed` when an ERROR event with
//! an `error` field (what `#[instrument(err)]` emits) or an `error` span field was
//! recorded inside it. Executions still open at shutdown end as `failed`/`shutdown`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value};
use tracing::Subscriber;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use uuid::Uuid;

use crate::capture::queue::Queue;
use crate::capture::record::{Body, Captured, Causation, Fields, SpanCtx};
use crate::capture::span::SpanData;
use crate::capture::visit::field_text;
use crate::contract::events::{
    AgentExecutionCompleted, AgentExecutionFailed, AgentExecutionStarted, AnyEvent,
};
use crate::contract::timestamp::Timestamp;

/// What an agent execution span accumulates until it ends.
#[derive(Debug)]
pub(crate) struct AgentState {
    pub name: String,
    /// The id of its `execution.started` event, which the events inside point at.
    pub started_id: Uuid,
    /// The `execution.started` id of the enclosing agent, if any.
    pub parent_started: Option<Uuid>,
    /// Set at the first enter, when `started` is emitted.
    pub started: Option<Instant>,
    user_request: String,
    session_id: Option<String>,
    context: Map<String, Value>,
    metrics: Map<String, Value>,
    partial_results: Map<String, Value>,
    quality_score: Option<f64>,
    output_summary: Option<String>,
    error: Option<AgentError>,
}

#[derive(Debug, Clone, PartialEq)]
struct AgentError {
    message: String,
    kind: String,
    stack: Option<String>,
}

impl AgentState {
    /// A new execution inside the agent whose `started` id is `parent_started`, with the
    /// span's fields recorded at creation.
    pub fn new(parent_started: Option<Uuid>, own: &Fields) -> Self {
        let mut a = AgentState {
            name: String::new(),
            started_id: Uuid::now_v7(),
            parent_started,
            started: None,
            user_request: String::new(),
            session_id: None,
            context: Map::new(),
            metrics: Map::new(),
            partial_results: Map::new(),
            quality_score: None,
            output_summary: None,
            error: None,
        };
        a.apply(own);
        a
    }

    /// Applies fields recorded on the span.
    pub fn apply(&mut self, fields: &Fields) {
        for (name, value) in fields {
            match *name {
                "agent_name" => self.name = value.to_text(),
                "user_request" => self.user_request = value.to_text(),
                "session_id" => self.session_id = Some(value.to_text()),
                "quality_score" => self.quality_score = value.as_f64(),
                "output_summary" => self.output_summary = Some(value.to_text()),
                "error" => {
                    let kind = self.error.as_ref().map(|e| e.kind.clone());
                    self.error = Some(AgentError {
                        message: value.to_text(),
                        kind: kind.unwrap_or_else(|| "error".into()),
                        stack: None,
                    });
                }
                "error_type" => {
                    if let Some(e) = self.error.as_mut() {
                        e.kind = value.to_text();
                    }
                }
                other => {
                    let (map, key) = if let Some(k) = other.strip_prefix("metrics.") {
                        (&mut self.metrics, k)
                    } else if let Some(k) = other.strip_prefix("context.") {
                        (&mut self.context, k)
                    } else if let Some(k) = other.strip_prefix("partial_results.") {
                        (&mut self.partial_results, k)
                    } else {
                        continue;
                    };
                    map.insert(key.to_owned(), value.to_json());
                }
            }
        }
    }

    /// Fails the execution from an ERROR event's fields; false when they hold no `error`.
    pub fn fail_from_event(&mut self, fields: &Fields, message: Option<&str>) -> bool {
        let Some(error) = field_text(fields, "error") else {
            return false;
        };
        self.error = Some(AgentError {
            message: if error.is_empty() {
                message.unwrap_or_default().to_owned()
            } else {
                error
            },
            kind: field_text(fields, "error_type").unwrap_or_else(|| "error".into()),
            stack: field_text(fields, "error_stack_trace")
                .or_else(|| field_text(fields, "backtrace")),
        });
        true
    }

    /// The `execution.started` event, to emit at the first enter.
    pub fn started_event(&self) -> AgentExecutionStarted {
        AgentExecutionStarted {
            agent_name: self.name.clone(),
            user_request: self.user_request.clone(),
            correlation_id: None,
            session_id: self.session_id.clone(),
            started_at: None,
            context: self.context.clone(),
        }
    }

    /// The event that ends the execution: `completed`, or `failed` when an error was
    /// recorded.
    pub fn end_event(self) -> Box<dyn AnyEvent> {
        let duration_ms = self
            .started
            .map(|s| s.elapsed().as_millis() as u64)
            .unwrap_or(0);
        match self.error {
            None => Box::new(AgentExecutionCompleted {
                agent_name: self.name,
                correlation_id: None,
                duration_ms,
                quality_score: self.quality_score,
                completed_at: None,
                output_summary: self.output_summary,
                metrics: self.metrics,
            }),
            Some(err) => Box::new(AgentExecutionFailed {
                agent_name: self.name,
                correlation_id: None,
                error_message: err.message,
                error_type: err.kind,
                error_stack_trace: err.stack,
                failed_at: None,
                partial_results: self.partial_results,
            }),
        }
    }
}

/// Fails the nearest agent execution enclosing `span` from an ERROR event's fields.
pub(crate) fn fail_enclosing_agent<S>(span: &SpanRef<'_, S>, fields: &Fields, message: Option<&str>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    for s in span.scope() {
        let mut ext = s.extensions_mut();
        if let Some(agent) = ext.get_mut::<SpanData>().and_then(|d| d.agent.as_mut()) {
            agent.fail_from_event(fields, message);
            return;
        }
    }
}

/// An agent span that emitted `started` and has not ended yet.
#[derive(Debug, Clone)]
struct OpenAgent {
    agent_name: String,
    span: Arc<SpanCtx>,
}

/// The agent executions that started and have not ended, so that shutdown can end them.
#[derive(Default)]
pub(crate) struct OpenAgents(Mutex<HashMap<Uuid, OpenAgent>>);

// Hand-written: open agent spans hold raw (unsanitized) span fields, which must not reach
// a `Debug` print of the guard.
impl std::fmt::Debug for OpenAgents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAgents")
            .field("open", &self.lock().len())
            .finish()
    }
}

impl OpenAgents {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, OpenAgent>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `agent` started, inside `span`.
    pub fn open(&self, agent: &AgentState, span: Arc<SpanCtx>) {
        self.lock().insert(
            agent.started_id,
            OpenAgent {
                agent_name: agent.name.clone(),
                span,
            },
        );
    }

    /// Records that the agent started as `started_id` ended; false when shutdown had
    /// already ended it.
    pub fn close(&self, started_id: Uuid) -> bool {
        self.lock().remove(&started_id).is_some()
    }

    /// Ends every execution still open with `execution.failed` (`error_type: "shutdown"`),
    /// as SPEC §4 requires at shutdown. Never waits for queue room.
    pub fn fail_all(&self, queue: &Queue) {
        let open: Vec<(Uuid, OpenAgent)> = self.lock().drain().collect();
        for (started_id, agent) in open {
            let ev = Captured {
                sequence: queue.next_sequence(),
                timestamp: Timestamp::now(),
                event_id: None,
                causation: Causation::Explicit(Some(started_id)),
                span: Some(agent.span),
                body: Body::Typed(Box::new(AgentExecutionFailed {
                    agent_name: agent.agent_name,
                    correlation_id: None,
                    error_message: "the process shut down before the agent finished".into(),
                    error_type: "shutdown".into(),
                    error_stack_trace: None,
                    failed_at: None,
                    partial_results: Map::new(),
                })),
            };
            queue.push_or_overflow(ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::record::FieldValue;

    fn text(name: &'static str, v: &str) -> (&'static str, FieldValue) {
        (name, FieldValue::Str(v.to_owned()))
    }

    fn payload(ev: Box<dyn AnyEvent>) -> (&'static str, Value) {
        (ev.kind().event_type, ev.to_payload().unwrap())
    }

    #[test]
    fn fields_at_creation_and_later_fill_the_started_and_completed_events() {
        let parent = Uuid::now_v7();
        let mut a = AgentState::new(
            Some(parent),
            &vec![
                text("agent_name", "planner"),
                text("user_request", "plan a trip"),
                text("context.region", "eu"),
            ],
        );
        assert_eq!(a.parent_started, Some(parent));
        let started = a.started_event();
        assert_eq!(
            (started.agent_name.as_str(), started.user_request.as_str()),
            ("planner", "plan a trip")
        );
        assert_eq!(started.context["region"], "eu");
        a.apply(&vec![
            ("quality_score", FieldValue::F64(0.9)),
            text("output_summary", "3 options"),
            ("metrics.tokens", FieldValue::U64(120)),
            ("unrelated", FieldValue::Bool(true)),
        ]);
        let (ty, p) = payload(a.end_event());
        assert_eq!(ty, "omninode.agent.execution.completed.v1");
        assert_eq!(p["quality_score"], 0.9);
        assert_eq!(p["output_summary"], "3 options");
        assert_eq!(p["metrics"], serde_json::json!({ "tokens": 120 }));
    }

    #[test]
    fn an_error_field_then_its_type_end_as_failed() {
        let mut a = AgentState::new(None, &vec![text("agent_name", "coder")]);
        a.apply(&vec![text("error", "compile failed")]);
        a.apply(&vec![
            text("error_type", "CompileError"),
            text("partial_results.files", "2"),
        ]);
        let (ty, p) = payload(a.end_event());
        assert_eq!(ty, "omninode.agent.execution.failed.v1");
        assert_eq!(p["error_message"], "compile failed");
        assert_eq!(p["error_type"], "CompileError");
        assert_eq!(p["partial_results"]["files"], "2");
    }

    #[test]
    fn an_error_event_fails_the_execution_and_an_empty_error_takes_the_message() {
        let mut a = AgentState::new(None, &vec![text("agent_name", "coder")]);
        assert!(!a.fail_from_event(&vec![text("reason", "x")], Some("m")));
        assert!(a.fail_from_event(
            &vec![text("error", ""), text("backtrace", "at main.rs:1")],
            Some("it broke")
        ));
        let (_, p) = payload(a.end_event());
        assert_eq!(p["error_message"], "it broke");
        assert_eq!(p["error_type"], "error");
        assert_eq!(p["error_stack_trace"], "at main.rs:1");
    }

    #[test]
    fn open_agents_close_once() {
        let agents = OpenAgents::default();
        let a = AgentState::new(None, &vec![text("agent_name", "x")]);
        agents.open(&a, Arc::new(SpanCtx::default()));
        assert!(format!("{agents:?}").contains("open: 1"));
        assert!(agents.close(a.started_id));
        assert!(!agents.close(a.started_id));
    }
}
