//! The `tracing_subscriber::Layer`: captures events and spans into compact records and
//! hands them to the worker. Everything here runs on the caller's thread, so it only
//! records fields and pushes; it never formats JSON, sanitizes, validates or does I/O.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use uuid::Uuid;

use crate::capture::queue::{OpenAgent, Shared};
use crate::capture::record::{Body, Captured, Causation, FieldValue, Fields, SpanCtx};
use crate::contract::events::{
    AgentExecutionCompleted, AgentExecutionFailed, AgentExecutionStarted, AnyEvent,
};
use crate::contract::timestamp::Timestamp;
use crate::pipeline::worker::IN_WORKER;

/// Target of events emitted by [`crate::audit!`].
pub const AUDIT_TARGET: &str = "omninode::audit";
/// Target of events emitted by [`crate::security!`].
pub const SECURITY_TARGET: &str = "omninode::security";
/// Target of events emitted by [`crate::emit`].
pub const TYPED_TARGET: &str = "omninode::typed";

thread_local! {
    /// A typed event handed from [`crate::emit`] to the layer through the tracing event
    /// that carries it, so the current span's correlation applies to it.
    pub(crate) static PENDING: RefCell<Option<Box<dyn AnyEvent>>> = const { RefCell::new(None) };
}

/// The layer returned by [`crate::Builder::build`]. Compose it with other layers
/// (`fmt`, `tracing-opentelemetry`, filters) on a `tracing_subscriber::Registry`.
pub struct OmniNodeLayer {
    shared: Arc<Shared>,
    tx: Sender<Captured>,
    max_level: Level,
}

impl fmt::Debug for OmniNodeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OmniNodeLayer")
            .field("max_level", &self.max_level)
            .finish_non_exhaustive()
    }
}

impl OmniNodeLayer {
    pub(crate) fn new(shared: Arc<Shared>, tx: Sender<Captured>) -> Self {
        let max_level = shared.config.max_level;
        OmniNodeLayer {
            shared,
            tx,
            max_level,
        }
    }
}

/// Per-span state, kept in the span's extensions.
struct SpanData {
    ctx: Arc<SpanCtx>,
    own: Fields,
    agent: Option<AgentState>,
}

/// What an agent execution span accumulates until it ends.
struct AgentState {
    name: String,
    started_id: Uuid,
    parent_started: Option<Uuid>,
    started: Option<Instant>,
    user_request: String,
    session_id: Option<String>,
    context: Map<String, Value>,
    metrics: Map<String, Value>,
    partial_results: Map<String, Value>,
    quality_score: Option<f64>,
    output_summary: Option<String>,
    error: Option<AgentError>,
}

#[derive(Clone)]
struct AgentError {
    message: String,
    kind: String,
    stack: Option<String>,
}

impl AgentState {
    fn apply(&mut self, fields: &Fields) {
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
}

/// Records fields into a compact list; `message` is kept apart.
struct Collector<'a> {
    fields: &'a mut Fields,
    message: Option<String>,
}

impl Visit for Collector<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.fields
                .push((field.name(), FieldValue::Str(value.to_owned())));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.push((field.name(), FieldValue::I64(value)));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.push((field.name(), FieldValue::U64(value)));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.push((field.name(), FieldValue::F64(value)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.push((field.name(), FieldValue::Bool(value)));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.fields
            .push((field.name(), FieldValue::Str(value.to_string())));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.fields.push((field.name(), FieldValue::Str(text)));
        }
    }
}

fn set_field(fields: &mut Fields, name: &'static str, value: FieldValue) {
    match fields.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => fields.push((name, value)),
    }
}

/// A non-UUID correlation id maps to a stable name-based UUID (v5), so the same string
/// always gives the same id and correlation still works across services.
fn correlation_from(value: &FieldValue) -> Option<Uuid> {
    let text = value.to_text();
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(
        Uuid::parse_str(text)
            .unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, text.as_bytes())),
    )
}

fn build_ctx(
    own: &Fields,
    parent: Option<&SpanCtx>,
    agent: Option<&AgentState>,
    id: &Id,
) -> SpanCtx {
    let mut fields = own.clone();
    if let Some(p) = parent {
        for (name, value) in &p.fields {
            if !fields.iter().any(|(n, _)| n == name) {
                fields.push((name, value.clone()));
            }
        }
    }
    let own_str = |name: &str| {
        own.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_text())
            .filter(|s| !s.is_empty())
    };
    let correlation_id = own
        .iter()
        .find(|(n, _)| *n == "correlation_id")
        .and_then(|(_, v)| correlation_from(v))
        .or(parent.and_then(|p| p.correlation_id));
    SpanCtx {
        fields,
        correlation_id,
        agent_started_id: agent
            .map(|a| a.started_id)
            .or(parent.and_then(|p| p.agent_started_id)),
        tenant_id: own_str("tenant_id").or_else(|| parent.and_then(|p| p.tenant_id.clone())),
        namespace: own_str("namespace").or_else(|| parent.and_then(|p| p.namespace.clone())),
        span_id: id.into_u64(),
        otel_traceparent: None,
    }
}

/// Without the `opentelemetry` feature there is no OpenTelemetry context to read.
#[cfg(not(feature = "opentelemetry"))]
fn otel_traceparent<S>(_span: &tracing_subscriber::registry::SpanRef<'_, S>) -> Option<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    None
}

/// The W3C traceparent of the span's OpenTelemetry context, when it has a valid one.
#[cfg(feature = "opentelemetry")]
fn otel_traceparent<S>(span: &tracing_subscriber::registry::SpanRef<'_, S>) -> Option<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let ext = span.extensions();
    let data = ext.get::<tracing_opentelemetry::OtelData>()?;
    let trace_id = data.trace_id()?;
    let span_id = data.span_id()?;
    if trace_id == opentelemetry::TraceId::INVALID {
        return None;
    }
    Some(format!("00-{trace_id}-{span_id}-01"))
}

impl OmniNodeLayer {
    fn push(&self, ev: Captured) {
        self.shared.push(&self.tx, ev);
    }

    fn capture(&self, span: Option<Arc<SpanCtx>>, causation: Causation, body: Body) -> Captured {
        Captured {
            sequence: self.shared.next_sequence(),
            timestamp: Timestamp::now(),
            event_id: None,
            causation,
            span,
            body,
        }
    }

    fn emit_started(&self, ctx: Arc<SpanCtx>, agent: &AgentState) {
        let event = AgentExecutionStarted {
            agent_name: agent.name.clone(),
            user_request: agent.user_request.clone(),
            correlation_id: None,
            session_id: agent.session_id.clone(),
            started_at: None,
            context: agent.context.clone(),
        };
        let mut ev = self.capture(
            Some(ctx.clone()),
            Causation::Explicit(agent.parent_started),
            Body::Typed(Box::new(event)),
        );
        ev.event_id = Some(agent.started_id);
        self.shared
            .open_agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                agent.started_id,
                OpenAgent {
                    agent_name: agent.name.clone(),
                    started_event_id: agent.started_id,
                    span: ctx,
                },
            );
        self.push(ev);
    }

    fn emit_end(&self, ctx: Arc<SpanCtx>, agent: AgentState) {
        let was_open = self
            .shared
            .open_agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&agent.started_id)
            .is_some();
        if !was_open {
            // Already ended by shutdown.
            return;
        }
        let duration_ms = agent
            .started
            .map(|s| s.elapsed().as_millis() as u64)
            .unwrap_or(0);
        let body: Box<dyn AnyEvent> = match agent.error {
            None => Box::new(AgentExecutionCompleted {
                agent_name: agent.name,
                correlation_id: None,
                duration_ms,
                quality_score: agent.quality_score,
                completed_at: None,
                output_summary: agent.output_summary,
                metrics: agent.metrics,
            }),
            Some(err) => Box::new(AgentExecutionFailed {
                agent_name: agent.name,
                correlation_id: None,
                error_message: err.message,
                error_type: err.kind,
                error_stack_trace: err.stack,
                failed_at: None,
                partial_results: agent.partial_results,
            }),
        };
        let ev = self.capture(
            Some(ctx),
            Causation::Explicit(Some(agent.started_id)),
            Body::Typed(body),
        );
        self.push(ev);
    }
}

/// Events from the worker thread (the pipeline itself, librdkafka's callbacks) are never
/// captured, so nothing the pipeline does can feed back into it.
fn on_worker_thread() -> bool {
    IN_WORKER.with(|w| w.get())
}

/// The context of a span's parent, if it has one this layer knows.
fn parent_ctx<S>(span: &tracing_subscriber::registry::SpanRef<'_, S>) -> Option<Arc<SpanCtx>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    span.parent()
        .and_then(|p| p.extensions().get::<SpanData>().map(|d| d.ctx.clone()))
}

fn ignored_target(target: &str) -> bool {
    target.starts_with("rdkafka")
        || target.starts_with("librdkafka")
        || target.starts_with("tracing_omninode")
}

impl<S> tracing_subscriber::Layer<S> for OmniNodeLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if on_worker_thread() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut own = Fields::new();
        attrs.record(&mut Collector {
            fields: &mut own,
            message: None,
        });
        let parent = parent_ctx(&span);
        let is_agent = attrs.metadata().fields().field("agent_name").is_some();
        let agent = is_agent.then(|| {
            let mut a = AgentState {
                name: String::new(),
                started_id: Uuid::now_v7(),
                parent_started: parent.as_ref().and_then(|p| p.agent_started_id),
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
            a.apply(&own);
            a
        });
        let mut sc = build_ctx(&own, parent.as_deref(), agent.as_ref(), id);
        if agent.is_some() && sc.correlation_id.is_none() {
            sc.correlation_id = Some(Uuid::now_v7());
        }
        span.extensions_mut().insert(SpanData {
            ctx: Arc::new(sc),
            own,
            agent,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if on_worker_thread() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::new();
        values.record(&mut Collector {
            fields: &mut fields,
            message: None,
        });
        let mut ext = span.extensions_mut();
        let Some(data) = ext.get_mut::<SpanData>() else {
            return;
        };
        for (name, value) in &fields {
            set_field(&mut data.own, name, value.clone());
        }
        if let Some(agent) = data.agent.as_mut() {
            agent.apply(&fields);
        }
        let parent = parent_ctx(&span);
        let mut sc = build_ctx(&data.own, parent.as_deref(), data.agent.as_ref(), id);
        if sc.correlation_id.is_none() {
            sc.correlation_id = data.ctx.correlation_id;
        }
        sc.otel_traceparent = data.ctx.otel_traceparent.clone();
        data.ctx = Arc::new(sc);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if on_worker_thread() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let first_enter_of_agent = span
            .extensions()
            .get::<SpanData>()
            .and_then(|d| d.agent.as_ref())
            .is_some_and(|a| a.started.is_none());
        if !first_enter_of_agent {
            return;
        }
        // Read before taking the extensions mutably: the OpenTelemetry data lives there too.
        let traceparent = otel_traceparent(&span);
        let mut ext = span.extensions_mut();
        let Some(data) = ext.get_mut::<SpanData>() else {
            return;
        };
        if traceparent.is_some() {
            let mut sc = (*data.ctx).clone();
            sc.otel_traceparent = traceparent;
            data.ctx = Arc::new(sc);
        }
        let ctx = data.ctx.clone();
        // Checked again under the mutable borrow: another thread may have entered first.
        if let Some(agent) = data.agent.as_mut().filter(|a| a.started.is_none()) {
            agent.started = Some(Instant::now());
            self.emit_started(ctx, agent);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if on_worker_thread() {
            return;
        }
        let meta = event.metadata();
        let target = meta.target();
        let special = match target {
            AUDIT_TARGET => 1,
            SECURITY_TARGET => 2,
            TYPED_TARGET => 3,
            _ => 0,
        };
        if special == 0 && (*meta.level() > self.max_level || ignored_target(target)) {
            return;
        }
        let span = ctx.event_span(event);
        let mut span_ctx = span
            .as_ref()
            .and_then(|s| s.extensions().get::<SpanData>().map(|d| d.ctx.clone()));
        if let Some(tp) = span.as_ref().and_then(otel_traceparent) {
            let mut sc = span_ctx.as_deref().cloned().unwrap_or_default();
            sc.otel_traceparent = Some(tp);
            span_ctx = Some(Arc::new(sc));
        }
        let body = if special == 3 {
            match PENDING.with(|p| p.borrow_mut().take()) {
                Some(e) => Body::Typed(e),
                None => return,
            }
        } else {
            let mut fields = Fields::with_capacity(meta.fields().len());
            let mut collector = Collector {
                fields: &mut fields,
                message: None,
            };
            event.record(&mut collector);
            let message = collector.message.take();
            // Records bridged from the `log` crate (librdkafka's own logs among them) carry
            // their real target in a `log.target` field.
            if special == 0 && target == "log" {
                let bridged = fields.iter().find(|(n, _)| *n == "log.target");
                if bridged.is_some_and(|(_, t)| ignored_target(&t.to_text())) {
                    return;
                }
            }
            match special {
                1 => Body::Audit(fields),
                2 => Body::Security(fields),
                _ => {
                    if *meta.level() == Level::ERROR {
                        self.mark_agent_failed(span.as_ref(), &fields, message.as_deref());
                    }
                    Body::Log {
                        level: *meta.level(),
                        target,
                        message: message.unwrap_or_default(),
                        fields,
                    }
                }
            }
        };
        let ev = self.capture(span_ctx, Causation::FromSpan, body);
        self.push(ev);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if on_worker_thread() {
            return;
        }
        let Some(span) = ctx.span(&id) else { return };
        let mut ext = span.extensions_mut();
        let Some(data) = ext.get_mut::<SpanData>() else {
            return;
        };
        let Some(agent) = data.agent.take() else {
            return;
        };
        if agent.started.is_none() {
            return;
        }
        let sc = data.ctx.clone();
        drop(ext);
        self.emit_end(sc, agent);
    }
}

impl OmniNodeLayer {
    /// An ERROR event with an `error` field (what `#[instrument(err)]` emits) fails the
    /// nearest enclosing agent execution.
    fn mark_agent_failed<S>(
        &self,
        span: Option<&tracing_subscriber::registry::SpanRef<'_, S>>,
        fields: &Fields,
        message: Option<&str>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(error) = fields
            .iter()
            .find(|(n, _)| *n == "error")
            .map(|(_, v)| v.to_text())
        else {
            return;
        };
        let text = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_text())
        };
        let Some(span) = span else { return };
        for s in span.scope() {
            let mut ext = s.extensions_mut();
            if let Some(agent) = ext.get_mut::<SpanData>().and_then(|d| d.agent.as_mut()) {
                agent.error = Some(AgentError {
                    message: if error.is_empty() {
                        message.unwrap_or_default().to_owned()
                    } else {
                        error
                    },
                    kind: text("error_type").unwrap_or_else(|| "error".into()),
                    stack: text("error_stack_trace").or_else(|| text("backtrace")),
                });
                return;
            }
        }
    }
}

/// Ends every agent execution still open with `execution.failed` (`error_type:
/// "shutdown"`), as SPEC §4 requires at shutdown.
pub(crate) fn fail_open_agents(shared: &Shared, tx: &Sender<Captured>) {
    let open: Vec<OpenAgent> = shared
        .open_agents
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .map(|(_, a)| a)
        .collect();
    for agent in open {
        let ev = Captured {
            sequence: shared.next_sequence(),
            timestamp: Timestamp::now(),
            event_id: None,
            causation: Causation::Explicit(Some(agent.started_event_id)),
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
        shared.push_or_spool(tx, ev);
    }
}
