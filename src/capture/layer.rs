//! The `tracing_subscriber::Layer`: captures events and spans into compact records and
//! hands them to the worker. Everything here runs on the caller's thread, so it only
//! records fields and pushes; it never formats JSON, sanitizes, validates or does I/O.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use uuid::Uuid;

use crate::capture::agent::{fail_enclosing_agent, AgentState, OpenAgents};
use crate::capture::queue::Queue;
use crate::capture::record::{Body, Captured, Causation, Fields, SpanCtx};
use crate::capture::span::{build_ctx, otel_traceparent, parent_ctx, SpanData};
use crate::capture::visit::{field_text, set_field, Collector};
use crate::contract::events::AnyEvent;
use crate::contract::timestamp::Timestamp;

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

/// What a tracing event becomes, decided by its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An ordinary event: an application log, subject to the layer's level.
    Log,
    /// [`crate::audit!`].
    Audit,
    /// [`crate::security!`].
    Security,
    /// [`crate::emit`]: the typed event waits in [`PENDING`].
    Typed,
}

impl Kind {
    fn of(target: &str) -> Kind {
        match target {
            AUDIT_TARGET => Kind::Audit,
            SECURITY_TARGET => Kind::Security,
            TYPED_TARGET => Kind::Typed,
            _ => Kind::Log,
        }
    }
}

/// Targets of the pipeline itself and of librdkafka: never captured, so nothing the
/// pipeline does can feed back into it.
fn ignored_target(target: &str) -> bool {
    target.starts_with("rdkafka")
        || target.starts_with("librdkafka")
        || target.starts_with("tracing_omninode")
}

/// The layer returned by [`crate::Builder::build`]. Compose it with other layers
/// (`fmt`, `tracing-opentelemetry`, filters) on a `tracing_subscriber::Registry`.
pub struct OmniNodeLayer {
    queue: Arc<Queue>,
    agents: Arc<OpenAgents>,
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
    pub(crate) fn new(queue: Arc<Queue>, agents: Arc<OpenAgents>, max_level: Level) -> Self {
        OmniNodeLayer {
            queue,
            agents,
            max_level,
        }
    }

    fn capture(&self, span: Option<Arc<SpanCtx>>, causation: Causation, body: Body) -> Captured {
        Captured {
            sequence: self.queue.next_sequence(),
            timestamp: Timestamp::now(),
            event_id: None,
            causation,
            span,
            body,
        }
    }

    /// The `execution.started` event of `agent`, which starts now, inside `ctx`.
    fn started(&self, ctx: Arc<SpanCtx>, agent: &mut AgentState) -> Captured {
        agent.started = Some(Instant::now());
        self.agents.open(agent, ctx.clone());
        let mut ev = self.capture(
            Some(ctx),
            Causation::Explicit(agent.parent_started),
            Body::Typed(Box::new(agent.started_event())),
        );
        ev.event_id = Some(agent.started_id);
        ev
    }

    /// The event that ends `agent`, unless shutdown already ended it.
    fn ended(&self, ctx: Arc<SpanCtx>, agent: AgentState) -> Option<Captured> {
        if !self.agents.close(agent.started_id) {
            return None;
        }
        let causation = Causation::Explicit(Some(agent.started_id));
        Some(self.capture(Some(ctx), causation, Body::Typed(agent.end_event())))
    }
}

impl<S> tracing_subscriber::Layer<S> for OmniNodeLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if super::is_ignored_thread() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut own = Fields::new();
        attrs.record(&mut Collector::new(&mut own));
        let parent = parent_ctx(&span);
        let is_agent = attrs.metadata().fields().field("agent_name").is_some();
        let agent = is_agent
            .then(|| AgentState::new(parent.as_ref().and_then(|p| p.agent_started_id), &own));
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
        if super::is_ignored_thread() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::new();
        values.record(&mut Collector::new(&mut fields));
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
        if super::is_ignored_thread() {
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
        let started = {
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
            data.agent
                .as_mut()
                .filter(|a| a.started.is_none())
                .map(|agent| self.started(ctx, agent))
        };
        // Pushed after the span's extensions are released: the push may wait for room.
        if let Some(ev) = started {
            self.queue.push(ev);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if super::is_ignored_thread() {
            return;
        }
        let meta = event.metadata();
        let target = meta.target();
        let kind = Kind::of(target);
        if kind == Kind::Log && (*meta.level() > self.max_level || ignored_target(target)) {
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
        let body = if kind == Kind::Typed {
            match PENDING.with(|p| p.borrow_mut().take()) {
                Some(e) => Body::Typed(e),
                None => return,
            }
        } else {
            let mut fields = Fields::with_capacity(meta.fields().len());
            let mut collector = Collector::new(&mut fields);
            event.record(&mut collector);
            let message = collector.message.take();
            match kind {
                Kind::Audit => Body::Audit(fields),
                Kind::Security => Body::Security(fields),
                Kind::Log | Kind::Typed => {
                    // Records bridged from the `log` crate (librdkafka's own logs among
                    // them) carry their real target in a `log.target` field.
                    if target == "log"
                        && field_text(&fields, "log.target").is_some_and(|t| ignored_target(&t))
                    {
                        return;
                    }
                    if *meta.level() == Level::ERROR {
                        if let Some(span) = span.as_ref() {
                            fail_enclosing_agent(span, &fields, message.as_deref());
                        }
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
        self.queue.push(ev);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if super::is_ignored_thread() {
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
        if let Some(ev) = self.ended(sc, agent) {
            self.queue.push(ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_decides_the_kind() {
        assert_eq!(Kind::of(AUDIT_TARGET), Kind::Audit);
        assert_eq!(Kind::of(SECURITY_TARGET), Kind::Security);
        assert_eq!(Kind::of(TYPED_TARGET), Kind::Typed);
        assert_eq!(Kind::of("omninode::auditor"), Kind::Log);
        assert_eq!(Kind::of("my_app::db"), Kind::Log);
    }

    #[test]
    fn the_pipeline_and_librdkafka_are_never_captured() {
        for t in ["rdkafka::client", "librdkafka", "tracing_omninode::worker"] {
            assert!(ignored_target(t), "{t}");
        }
        assert!(!ignored_target("my_app"));
        assert!(!ignored_target(AUDIT_TARGET));
    }
}
