//! Agent executions. A span is one when it has an `agent_name` field, or when the
//! OpenTelemetry GenAI conventions say so (a span named `invoke_agent ...`/`create_agent
//! ...`, or a `gen_ai.operation.name` of `invoke_agent`/`create_agent`); an `execute_tool`
//! span never is (see [`crate::capture::layer::SpanRole`]). Its first enter emits
//! `execution.started`; its close emits `completed`, or `failed` when:
//!
//! - the span closes while its thread is panicking (`std::thread::panicking()`): the
//!   `error_type` is `panic`; the message is the one a panic event recorded inside the agent
//!   (a `panic.payload` field, as [`crate::layer::install_panic_hook`] and `tracing-panic`
//!   emit), else a recorded `error`, else a fixed text. No panic hook is installed unless the
//!   application asks for one;
//! - an event with an `error` field was recorded inside it at ERROR, or at any level when
//!   it has the shape `#[instrument(err)]` emits (one field, `error`) and the agent span is
//!   its own span (so `err(level = "warn")` counts);
//! - an `error` span field was recorded.
//!
//! The `error_type` is the error event's `error_type`/`error.type` field, else the span's
//! (recorded before or after the error: the order does not matter), else `error`. tracing
//! hands the layer only the error's text, never its type: a type name is known only when
//! recorded (e.g. `fields(error_type = std::any::type_name::<MyError>())`).
//!
//! Executions still open at shutdown end as `failed`/`shutdown`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use serde_json::{Map, Value};
use tracing::Subscriber;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use uuid::Uuid;

use crate::capture::queue::Queue;
use crate::capture::record::{Body, Captured, Causation, FieldSlice, SpanCtx};
use crate::capture::span::SpanData;
use crate::capture::visit::{field_text, SENSITIVE_GENAI_FIELDS};
use crate::contract::events::{
    AgentExecutionCompleted, AgentExecutionFailed, AgentExecutionStarted, AnyEvent,
};
use crate::contract::timestamp::Timestamp;

/// The `error_message` of a panic for which no message was recorded.
const PANIC_WITHOUT_MESSAGE: &str =
    "the agent panicked (no panic message was recorded inside the agent span)";

/// The session of executions that have none of their own or inherited: one UUIDv7 per
/// process, so `execution.started` never carries a null `session_id`.
pub(crate) fn process_session_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| Uuid::now_v7().to_string())
}

/// The agent name a span's name gives under the GenAI conventions
/// (`invoke_agent planner` → `planner`), else the span's name itself.
fn name_from_span(span_name: &str) -> &str {
    ["invoke_agent ", "create_agent "]
        .iter()
        .find_map(|p| span_name.strip_prefix(p))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(span_name)
}

/// What an agent execution span accumulates until it ends.
#[derive(Debug)]
pub(crate) struct AgentState {
    pub name: String,
    /// Whether `name` came from an `agent_name` field (which wins over `gen_ai.agent.name`).
    named_by_field: bool,
    /// The id of its `execution.started` event, which the events inside point at.
    pub started_id: Uuid,
    /// The `execution.started` id of the enclosing agent, if any.
    pub parent_started: Option<Uuid>,
    /// Set at the first enter, when `started` is emitted.
    pub started: Option<Instant>,
    user_request: String,
    session_id: Option<String>,
    /// The session of the enclosing spans, used when the span has none of its own.
    inherited_session: Option<String>,
    context: Map<String, Value>,
    metrics: Map<String, Value>,
    partial_results: Map<String, Value>,
    quality_score: Option<f64>,
    output_summary: Option<String>,
    error: Option<AgentError>,
    /// A span field `error_type` / `error.type`, whenever it was recorded.
    error_type: Option<String>,
    /// A panic event recorded inside the agent: message and location.
    panic: Option<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq)]
struct AgentError {
    message: String,
    /// The error event's own `error_type`/`error.type`.
    kind: Option<String>,
    stack: Option<String>,
}

/// Where a `gen_ai.*` span field of an agent goes: usage and response figures to the end
/// event's `metrics` (and `partial_results` when it fails), the rest to `started`'s
/// `context`. Sensitive contents go nowhere.
enum GenAi {
    Context,
    Metric,
    Skip,
}

fn genai_slot(name: &str) -> GenAi {
    if SENSITIVE_GENAI_FIELDS.contains(&name)
        || name == "gen_ai.agent.name"
        || name == "gen_ai.conversation.id"
    {
        GenAi::Skip
    } else if name.starts_with("gen_ai.usage.") || name.starts_with("gen_ai.response.") {
        GenAi::Metric
    } else {
        GenAi::Context
    }
}

impl AgentState {
    /// A new execution of the span named `span_name` inside the agent whose `started` id is
    /// `parent_started`, with the span's fields recorded at creation and the session of the
    /// enclosing spans.
    pub fn new(
        parent_started: Option<Uuid>,
        span_name: &str,
        own: &FieldSlice,
        inherited_session: Option<String>,
    ) -> Self {
        let mut a = AgentState {
            name: name_from_span(span_name).to_owned(),
            named_by_field: false,
            started_id: Uuid::now_v7(),
            parent_started,
            started: None,
            user_request: String::new(),
            session_id: None,
            inherited_session,
            context: Map::new(),
            metrics: Map::new(),
            partial_results: Map::new(),
            quality_score: None,
            output_summary: None,
            error: None,
            error_type: None,
            panic: None,
        };
        a.apply(own);
        a
    }

    /// Applies fields recorded on the span.
    pub fn apply(&mut self, fields: &FieldSlice) {
        for (name, value) in fields {
            match *name {
                "agent_name" => {
                    self.name = value.to_text();
                    self.named_by_field = true;
                }
                "gen_ai.agent.name" if !self.named_by_field => self.name = value.to_text(),
                "user_request" => self.user_request = value.to_text(),
                "session_id" => self.session_id = Some(value.to_text()),
                "gen_ai.conversation.id" => {
                    self.session_id.get_or_insert_with(|| value.to_text());
                }
                "quality_score" => self.quality_score = value.as_f64(),
                "output_summary" => self.output_summary = Some(value.to_text()),
                "error" => {
                    self.error = Some(AgentError {
                        message: value.to_text(),
                        kind: None,
                        stack: None,
                    });
                }
                "error_type" | "error.type" => self.error_type = Some(value.to_text()),
                other => {
                    let (map, key) = if let Some(k) = other.strip_prefix("metrics.") {
                        (&mut self.metrics, k)
                    } else if let Some(k) = other.strip_prefix("context.") {
                        (&mut self.context, k)
                    } else if let Some(k) = other.strip_prefix("partial_results.") {
                        (&mut self.partial_results, k)
                    } else if other.starts_with("gen_ai.") {
                        match genai_slot(other) {
                            GenAi::Context => (&mut self.context, other),
                            GenAi::Metric => {
                                self.partial_results
                                    .insert(other.to_owned(), value.to_json());
                                (&mut self.metrics, other)
                            }
                            GenAi::Skip => continue,
                        }
                    } else {
                        continue;
                    };
                    map.insert(key.to_owned(), value.to_json());
                }
            }
        }
    }

    /// Fails the execution from an error event's fields; false when they hold no `error`.
    pub fn fail_from_event(&mut self, fields: &FieldSlice, message: Option<&str>) -> bool {
        let Some(error) = field_text(fields, "error") else {
            return false;
        };
        self.error = Some(AgentError {
            message: if error.is_empty() {
                message.unwrap_or_default().to_owned()
            } else {
                error
            },
            kind: field_text(fields, "error_type").or_else(|| field_text(fields, "error.type")),
            stack: field_text(fields, "error_stack_trace")
                .or_else(|| field_text(fields, "backtrace")),
        });
        true
    }

    /// Records a panic event's message (`panic.payload`, else `panic`) and location, for the
    /// case the span then closes while panicking; false when the fields hold none.
    pub fn note_panic(&mut self, fields: &FieldSlice) -> bool {
        let Some(message) =
            field_text(fields, "panic.payload").or_else(|| field_text(fields, "panic"))
        else {
            return false;
        };
        self.panic = Some((message, field_text(fields, "panic.location")));
        true
    }

    /// The `execution.started` event, to emit at the first enter. Its `session_id` is the
    /// span's, else the enclosing spans', else the process's: never null.
    pub fn started_event(&self) -> AgentExecutionStarted {
        let session = self
            .session_id
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| self.inherited_session.clone())
            .unwrap_or_else(|| process_session_id().to_owned());
        AgentExecutionStarted {
            agent_name: self.name.clone(),
            user_request: self.user_request.clone(),
            correlation_id: None,
            session_id: Some(session),
            started_at: None,
            context: self.context.clone(),
        }
    }

    /// The event that ends the execution: `failed` with `error_type: "panic"` when the span
    /// closes during a panic (`panicking`), `failed` when an error was recorded, else
    /// `completed`.
    pub fn end_event(self, panicking: bool) -> Box<dyn AnyEvent> {
        let duration_ms = self
            .started
            .map(|s| s.elapsed().as_millis() as u64)
            .unwrap_or(0);
        let error = if panicking {
            let (message, stack) = match (self.panic, self.error) {
                (Some((m, loc)), _) => (m, loc),
                (None, Some(e)) => (e.message, e.stack),
                (None, None) => (PANIC_WITHOUT_MESSAGE.to_owned(), None),
            };
            Some(AgentError {
                message,
                kind: Some("panic".into()),
                stack,
            })
        } else {
            self.error
        };
        match error {
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
                error_type: err
                    .kind
                    .or(self.error_type)
                    .filter(|k| !k.is_empty())
                    .unwrap_or_else(|| "error".into()),
                error_stack_trace: err.stack,
                failed_at: None,
                partial_results: self.partial_results,
            }),
        }
    }
}

/// Fails the nearest agent execution enclosing `span` from an ERROR event's fields.
pub(crate) fn fail_enclosing_agent<S>(
    span: &SpanRef<'_, S>,
    fields: &FieldSlice,
    message: Option<&str>,
) where
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

/// Fails the agent execution that `span` itself is (not an enclosing one) from the event
/// `#[instrument(err)]` emits, whatever its level.
pub(crate) fn fail_own_agent<S>(span: &SpanRef<'_, S>, fields: &FieldSlice, message: Option<&str>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut ext = span.extensions_mut();
    if let Some(agent) = ext.get_mut::<SpanData>().and_then(|d| d.agent.as_mut()) {
        agent.fail_from_event(fields, message);
    }
}

/// Records a panic event on the nearest agent execution enclosing `span`.
pub(crate) fn note_panic_in_enclosing_agent<S>(span: &SpanRef<'_, S>, fields: &FieldSlice)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    for s in span.scope() {
        let mut ext = s.extensions_mut();
        if let Some(agent) = ext.get_mut::<SpanData>().and_then(|d| d.agent.as_mut()) {
            agent.note_panic(fields);
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
                span: Some(agent.span),
                body: Body::Typed {
                    event_id: None,
                    causation: Causation::Explicit(Some(started_id)),
                    event: Box::new(AgentExecutionFailed {
                        agent_name: agent.agent_name,
                        correlation_id: None,
                        error_message: "the process shut down before the agent finished".into(),
                        error_type: "shutdown".into(),
                        error_stack_trace: None,
                        failed_at: None,
                        partial_results: Map::new(),
                    }),
                },
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
        (name, FieldValue::Str(v.into()))
    }

    fn payload(ev: Box<dyn AnyEvent>) -> (&'static str, Value) {
        (ev.kind().event_type, ev.to_payload().unwrap())
    }

    fn agent(fields: &FieldSlice) -> AgentState {
        AgentState::new(None, "agent", fields, None)
    }

    #[test]
    fn fields_at_creation_and_later_fill_the_started_and_completed_events() {
        let parent = Uuid::now_v7();
        let mut a = AgentState::new(
            Some(parent),
            "plan",
            &[
                text("agent_name", "planner"),
                text("user_request", "plan a trip"),
                text("context.region", "eu"),
            ],
            None,
        );
        assert_eq!(a.parent_started, Some(parent));
        let started = a.started_event();
        assert_eq!(
            (started.agent_name.as_str(), started.user_request.as_str()),
            ("planner", "plan a trip")
        );
        assert_eq!(started.context["region"], "eu");
        a.apply(&[
            ("quality_score", FieldValue::F64(0.9)),
            text("output_summary", "3 options"),
            ("metrics.tokens", FieldValue::U64(120)),
            ("unrelated", FieldValue::Bool(true)),
        ]);
        let (ty, p) = payload(a.end_event(false));
        assert_eq!(ty, "omninode.agent.execution.completed.v1");
        assert_eq!(p["quality_score"], 0.9);
        assert_eq!(p["output_summary"], "3 options");
        assert_eq!(p["metrics"], serde_json::json!({ "tokens": 120 }));
    }

    #[test]
    fn an_error_field_and_its_type_end_as_failed_in_either_order() {
        for type_first in [false, true] {
            let mut a = agent(&[text("agent_name", "coder")]);
            let error = vec![text("error", "compile failed")];
            let kind = vec![
                text("error_type", "CompileError"),
                text("partial_results.files", "2"),
            ];
            if type_first {
                a.apply(&kind);
                a.apply(&error);
            } else {
                a.apply(&error);
                a.apply(&kind);
            }
            let (ty, p) = payload(a.end_event(false));
            assert_eq!(ty, "omninode.agent.execution.failed.v1");
            assert_eq!(p["error_message"], "compile failed");
            assert_eq!(p["error_type"], "CompileError", "type first: {type_first}");
            assert_eq!(p["partial_results"]["files"], "2");
        }
    }

    #[test]
    fn a_span_error_type_recorded_before_the_error_event_is_kept() {
        let mut a = agent(&[
            text("agent_name", "coder"),
            text("error.type", "QuotaExceeded"),
        ]);
        assert!(a.fail_from_event(&[text("error", "quota")], None));
        let (_, p) = payload(a.end_event(false));
        assert_eq!(p["error_type"], "QuotaExceeded");
        // The event's own type wins over the span's.
        let mut a = agent(&[text("error_type", "Span")]);
        a.fail_from_event(&[text("error_type", "Event"), text("error", "x")], None);
        assert_eq!(payload(a.end_event(false)).1["error_type"], "Event");
    }

    #[test]
    fn an_error_event_fails_the_execution_and_an_empty_error_takes_the_message() {
        let mut a = agent(&[text("agent_name", "coder")]);
        assert!(!a.fail_from_event(&[text("reason", "x")], Some("m")));
        assert!(a.fail_from_event(
            &[text("error", ""), text("backtrace", "at main.rs:1")],
            Some("it broke")
        ));
        let (_, p) = payload(a.end_event(false));
        assert_eq!(p["error_message"], "it broke");
        assert_eq!(p["error_type"], "error");
        assert_eq!(p["error_stack_trace"], "at main.rs:1");
    }

    #[test]
    fn closing_while_panicking_fails_with_the_recorded_panic_message() {
        let a = agent(&[text("agent_name", "p")]);
        let (ty, p) = payload(a.end_event(true));
        assert_eq!(ty, "omninode.agent.execution.failed.v1");
        assert_eq!(p["error_type"], "panic");
        assert_eq!(p["error_message"], PANIC_WITHOUT_MESSAGE);

        let mut a = agent(&[text("agent_name", "p"), text("error_type", "Io")]);
        assert!(a.note_panic(&[
            text("panic.payload", "index out of bounds"),
            text("panic.location", "src/lib.rs:3:5")
        ]));
        let (_, p) = payload(a.end_event(true));
        assert_eq!(p["error_type"], "panic");
        assert_eq!(p["error_message"], "index out of bounds");
        assert_eq!(p["error_stack_trace"], "src/lib.rs:3:5");

        // A panic caught inside the agent does not fail it.
        let mut a = agent(&[text("agent_name", "p")]);
        a.note_panic(&[text("panic.payload", "caught")]);
        assert_eq!(
            payload(a.end_event(false)).0,
            "omninode.agent.execution.completed.v1"
        );
    }

    #[test]
    fn the_session_is_the_spans_else_inherited_else_the_processes() {
        let own = agent(&[text("session_id", "s-1")]);
        assert_eq!(own.started_event().session_id.as_deref(), Some("s-1"));
        let conv = agent(&[text("gen_ai.conversation.id", "c-1")]);
        assert_eq!(conv.started_event().session_id.as_deref(), Some("c-1"));
        let inherited = AgentState::new(None, "a", &[], Some("up".into()));
        assert_eq!(inherited.started_event().session_id.as_deref(), Some("up"));
        let none = agent(&[]);
        let s = none.started_event().session_id.unwrap();
        assert_eq!(s, process_session_id());
        assert_eq!(Uuid::parse_str(&s).unwrap().get_version_num(), 7);
        assert_eq!(agent(&[]).started_event().session_id.unwrap(), s);
    }

    #[test]
    fn genai_fields_name_the_agent_and_fill_context_and_metrics() {
        let mut a = AgentState::new(
            None,
            "invoke_agent travel",
            &[
                text("gen_ai.operation.name", "invoke_agent"),
                text("gen_ai.provider.name", "openai"),
                text("gen_ai.request.model", "gpt-4o"),
                text("gen_ai.input.messages", "[omitted]"),
            ],
            None,
        );
        assert_eq!(a.name, "travel", "from the span name");
        a.apply(&[text("gen_ai.agent.name", "travel-planner")]);
        let started = a.started_event();
        assert_eq!(started.agent_name, "travel-planner");
        assert_eq!(started.context["gen_ai.provider.name"], "openai");
        assert_eq!(started.context["gen_ai.request.model"], "gpt-4o");
        assert!(started.context.get("gen_ai.input.messages").is_none());
        a.apply(&[
            ("gen_ai.usage.input_tokens", FieldValue::U64(120)),
            ("gen_ai.usage.output_tokens", FieldValue::U64(30)),
        ]);
        let (_, p) = payload(a.end_event(false));
        assert_eq!(p["metrics"]["gen_ai.usage.input_tokens"], 120);
        assert_eq!(p["metrics"]["gen_ai.usage.output_tokens"], 30);
        // `agent_name` wins over `gen_ai.agent.name`, whatever the order.
        let mut a = agent(&[text("agent_name", "mine")]);
        a.apply(&[text("gen_ai.agent.name", "theirs")]);
        assert_eq!(a.name, "mine");
        assert_eq!(name_from_span("invoke_agent"), "invoke_agent");
        assert_eq!(name_from_span("create_agent  x "), "x");
    }

    #[test]
    fn open_agents_close_once() {
        let agents = OpenAgents::default();
        let a = agent(&[text("agent_name", "x")]);
        agents.open(&a, Arc::new(SpanCtx::default()));
        assert!(format!("{agents:?}").contains("open: 1"));
        assert!(agents.close(a.started_id));
        assert!(!agents.close(a.started_id));
    }
}
