//! The `tracing_subscriber::Layer`: captures events and spans into compact records and
//! hands them to the worker. Everything here runs on the caller's thread, so it only
//! records fields and pushes; it never formats JSON, sanitizes, validates or does I/O.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
#[cfg(test)]
use tracing::Dispatch;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use compact_str::CompactString;

use crate::capture::agent::{
    fail_enclosing_agent, fail_own_agent, note_panic_in_enclosing_agent, AgentState, OpenAgents,
};
use crate::capture::queue::Queue;
use crate::capture::record::{Body, Captured, Causation, FieldSlice, FieldValue, Fields, SpanCtx};
use crate::capture::span::{
    build_ctx, has_otel_context, nearest_ctx, otel_traceparent, own_ctx, parent_ctx, SpanData,
};
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

    /// The span context this thread's last event in a span saw (see [`LastCtx`]).
    static LAST_CTX: RefCell<Option<LastCtx>> = const { RefCell::new(None) };
}

/// Numbers the layers built in this process, so a thread's [`LastCtx`] is never read by
/// another layer than the one that wrote it.
static LAYER_IDS: AtomicU64 = AtomicU64::new(0);

/// A thread's last answer to "what context do events in the current span see", for a span
/// the layer captured: the layer, the span's id and the span's own context.
///
/// Events of one span after the first reuse it: they skip the registry lookup of the span,
/// the lock on its extensions and the search for the layer's data in them. It is right as
/// long as the context is not retired ([`crate::capture::record::Retired`]): the span's data
/// retires it when the span records new fields or closes (the registry reuses a closed
/// span's id). Nothing shared is written for it: no counter that every thread's events read
/// and every span close writes.
struct LastCtx {
    layer: u64,
    span: u64,
    ctx: Arc<SpanCtx>,
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

/// Span fields that carry context for everything inside the span: a span declaring one
/// is captured whatever its level.
const CONTEXT_FIELDS: &[&str] = &[
    "correlation_id",
    "tenant_id",
    "namespace",
    "session_id",
    "gen_ai.conversation.id",
    "agent_name",
    "gen_ai.operation.name",
];

/// Whether the span name `name` is the GenAI operation `op` (`invoke_agent` or
/// `invoke_agent planner`).
fn genai_span_name(name: &str, op: &str) -> bool {
    name.strip_prefix(op)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
}

/// What a span is to the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpanRole {
    /// Context for what is inside it: its fields go into the events' `context`.
    Plain,
    /// An agent execution: a span with an `agent_name` field, a span named
    /// `invoke_agent ...`/`create_agent ...`, or one whose `gen_ai.operation.name` is
    /// `invoke_agent`/`create_agent` when it is created.
    Agent,
    /// A GenAI `execute_tool` span (by name or `gen_ai.operation.name`): context, never an
    /// agent execution, even when it carries `gen_ai.agent.name`.
    Tool,
}

impl SpanRole {
    fn of(meta: &Metadata<'_>, own: &FieldSlice) -> SpanRole {
        let op = field_text(own, "gen_ai.operation.name");
        let op = op.as_deref();
        let name = meta.name();
        if op == Some("execute_tool") || genai_span_name(name, "execute_tool") {
            SpanRole::Tool
        } else if meta.fields().field("agent_name").is_some()
            || matches!(op, Some("invoke_agent" | "create_agent"))
            || genai_span_name(name, "invoke_agent")
            || genai_span_name(name, "create_agent")
        {
            SpanRole::Agent
        } else {
            SpanRole::Plain
        }
    }
}

/// Whether the layer captures a span of this callsite: one at or above its level, or any
/// span that can be an agent or a tool, or that carries context ([`CONTEXT_FIELDS`]). Other
/// spans (a dependency's TRACE spans under a layer at INFO) are not captured: their fields
/// reach no event, and what is inside them sees the context of the nearest captured
/// ancestor.
fn span_wanted(meta: &Metadata<'_>, max_level: Level) -> bool {
    if *meta.level() <= max_level {
        return true;
    }
    let name = meta.name();
    ["invoke_agent", "create_agent", "execute_tool"]
        .iter()
        .any(|op| genai_span_name(name, op))
        || CONTEXT_FIELDS
            .iter()
            .any(|f| meta.fields().field(f).is_some())
}

/// What [`crate::try_init`] never lets `RUST_LOG` filter away from the layer: audit,
/// security and typed events, what `#[instrument(err)]` emits, and spans that are agents or
/// tools or carry context (a run's `execution.*` events come from its span).
pub(crate) fn protected(meta: &Metadata<'_>) -> bool {
    if meta.is_span() {
        span_wanted(meta, Level::ERROR)
    } else {
        Kind::of(meta.target()) != Kind::Log || is_instrument_err(meta)
    }
}

/// The event `#[instrument(err)]` emits: one field, `error`, no message.
fn is_instrument_err(meta: &Metadata<'_>) -> bool {
    let fields = meta.fields();
    fields.len() == 1 && fields.field("error").is_some()
}

/// What the layer does with an event of this callsite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventUse {
    /// Nothing.
    Ignore,
    /// Shipped (and, for an error, fails the agent it belongs to).
    Ship,
    /// Not shipped (more verbose than the layer's level) but it is what
    /// `#[instrument(err(level = ...))]` emits: it may fail its agent span.
    AgentOutcome,
}

fn event_use(meta: &Metadata<'_>, max_level: Level) -> EventUse {
    let target = meta.target();
    if Kind::of(target) != Kind::Log {
        return EventUse::Ship;
    }
    if ignored_target(target) {
        EventUse::Ignore
    } else if *meta.level() <= max_level {
        EventUse::Ship
    } else if is_instrument_err(meta) {
        EventUse::AgentOutcome
    } else {
        EventUse::Ignore
    }
}

/// Whether the layer does anything with a span or event of this callsite.
fn callsite_wanted(meta: &Metadata<'_>, max_level: Level) -> bool {
    if meta.is_span() {
        span_wanted(meta, max_level)
    } else {
        event_use(meta, max_level) != EventUse::Ignore
    }
}

/// The layer returned by [`crate::Builder::build`]. Compose it with other layers
/// (`fmt`, `tracing-opentelemetry`, filters) on a `tracing_subscriber::Registry`.
///
/// # Filtering
///
/// Installed as it is, the layer never disables a callsite: `register_callsite` answers
/// `Interest::always()`, `enabled` `true` and `max_level_hint` `None`. A plain `Layer`'s
/// answers filter the *whole* subscriber in tracing-subscriber (and a `max_level_hint` of
/// `INFO` would lower the global maximum level), so anything else would take `debug!`
/// events away from a `fmt` layer composed alongside. What the layer does not ship (events
/// more verbose than its level, the pipeline's and librdkafka's own targets, verbose spans
/// that are neither agents, tools nor carry context) it drops at the top of its callbacks.
///
/// [`OmniNodeLayer::filtered`] installs the same decisions as a per-layer filter
/// ([`CaptureFilter`]): tracing then skips those callsites for this layer only, and for the
/// whole subscriber when no other layer wants them (a filtered-out `debug!` then costs what
/// it costs with no subscriber at all). `audit!`, `security!` and [`crate::emit`] events are
/// always enabled.
pub struct OmniNodeLayer {
    queue: Arc<Queue>,
    agents: Arc<OpenAgents>,
    max_level: Level,
    /// Agent spans created and not closed yet: while there are none, entering a span costs
    /// the layer one atomic load.
    live_agents: AtomicUsize,
    /// This layer's number (see [`LastCtx`]).
    id: u64,
    /// Built with `OMNINODE_DISABLED`: captures nothing.
    disabled: bool,
}

impl fmt::Debug for OmniNodeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OmniNodeLayer")
            .field("max_level", &self.max_level)
            .finish_non_exhaustive()
    }
}

/// The per-layer filter of [`OmniNodeLayer::filtered`]: enables exactly the callsites the
/// layer does something with (see [`OmniNodeLayer`]'s "Filtering"). Combine it with other
/// filters through `tracing_subscriber::filter::FilterExt`.
#[derive(Debug, Clone, Copy)]
pub struct CaptureFilter {
    max_level: Level,
}

impl<S> Filter<S> for CaptureFilter {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        callsite_wanted(meta, self.max_level)
    }

    /// `never` for what the layer does not capture; `sometimes`, never `always`, for the
    /// rest. tracing-subscriber hands a per-layer filter's answer from `enabled` to
    /// `on_new_span`/`on_event` through a thread-local; for an `always` callsite the
    /// macros skip `enabled`, and the layer would read the answer left by an unrelated
    /// earlier `enabled` call (a `tracing::enabled!` or `log_enabled!` that disabled it) and
    /// silently miss an agent span or an audit event (tokio-rs/tracing#2519). With
    /// `sometimes` the answer is computed for every span and event.
    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if callsite_wanted(meta, self.max_level) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }
}

impl OmniNodeLayer {
    pub(crate) fn new(queue: Arc<Queue>, agents: Arc<OpenAgents>, max_level: Level) -> Self {
        OmniNodeLayer {
            queue,
            agents,
            max_level,
            live_agents: AtomicUsize::new(0),
            id: LAYER_IDS.fetch_add(1, Ordering::Relaxed),
            disabled: false,
        }
    }

    /// The layer of a disabled pipeline: it captures nothing.
    pub(crate) fn disabled(mut self) -> Self {
        self.disabled = true;
        self
    }

    /// The per-layer filter that enables exactly what this layer captures.
    pub fn capture_filter(&self) -> CaptureFilter {
        CaptureFilter {
            max_level: self.max_level,
        }
    }

    /// The layer behind its own [`CaptureFilter`], so that tracing skips what the layer
    /// would not ship without taking anything away from other layers:
    ///
    /// ```no_run
    /// use tracing_subscriber::prelude::*;
    /// let (layer, guard) = tracing_omninode::builder().build().unwrap();
    /// tracing_subscriber::registry()
    ///     .with(tracing_subscriber::fmt::layer())
    ///     .with(layer.filtered())
    ///     .init();
    /// ```
    pub fn filtered<S>(self) -> Filtered<Self, CaptureFilter, S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let filter = self.capture_filter();
        tracing_subscriber::Layer::with_filter(self, filter)
    }

    fn capture(&self, span: Option<Arc<SpanCtx>>, body: Body) -> Captured {
        Captured {
            sequence: self.queue.next_sequence(),
            timestamp: Timestamp::now(),
            span,
            body,
        }
    }

    /// The `execution.started` event of `agent`, which starts now, inside `ctx`.
    fn started(&self, ctx: Arc<SpanCtx>, agent: &mut AgentState) -> Captured {
        agent.started = Some(Instant::now());
        self.agents.open(agent, ctx.clone());
        let body = Body::Typed {
            event: Box::new(agent.started_event()),
            event_id: Some(agent.started_id),
            causation: Causation::Explicit(agent.parent_started),
        };
        self.capture(Some(ctx), body)
    }

    /// The event that ends `agent`, unless shutdown already ended it.
    fn ended(&self, ctx: Arc<SpanCtx>, agent: AgentState, panicking: bool) -> Option<Captured> {
        if !self.agents.close(agent.started_id) {
            return None;
        }
        let causation = Causation::Explicit(Some(agent.started_id));
        let body = Body::Typed {
            event: agent.end_event(panicking),
            event_id: None,
            causation,
        };
        Some(self.capture(Some(ctx), body))
    }

    /// The span context of an event in the current span (`current` is its id), through the
    /// thread's [`LastCtx`]; `lookup` finds the span when that does not hold it (under a
    /// per-layer filter that disabled `current`, it finds another span).
    fn current_ctx<'a, S>(
        &self,
        current: u64,
        lookup: impl FnOnce() -> Option<SpanRef<'a, S>>,
    ) -> Option<Arc<SpanCtx>>
    where
        S: Subscriber + for<'b> LookupSpan<'b> + 'a,
    {
        // `try_with`: an event from another thread-local's destructor finds this one gone.
        let hit = LAST_CTX
            .try_with(|last| {
                last.borrow()
                    .as_ref()
                    .filter(|l| l.layer == self.id && l.span == current)
                    .filter(|l| !l.ctx.retired.is_retired())
                    .map(|l| l.ctx.clone())
            })
            .ok()
            .flatten();
        if hit.is_some() {
            return hit;
        }
        let span = lookup()?;
        // Kept only for the current span itself (under a per-layer filter that disabled it,
        // the answer depends on the whole stack of entered spans), when the layer captured
        // it (the context of an ancestor is retired by that ancestor, not by this span), and
        // when it has no OpenTelemetry context (its parent can be set at any time, with no
        // callback to the layer).
        if span.id().into_u64() != current || has_otel_context(&span) {
            return event_ctx(&span);
        }
        // No OpenTelemetry context: what events see is the span's own context, else its
        // nearest captured ancestor's (`nearest_ctx`, without looking the span up twice).
        let Some(ctx) = own_ctx(&span) else {
            return parent_ctx(&span);
        };
        let _ = LAST_CTX.try_with(|last| {
            *last.borrow_mut() = Some(LastCtx {
                layer: self.id,
                span: current,
                ctx: ctx.clone(),
            })
        });
        Some(ctx)
    }
}

/// Records `event`'s fields into `fields`; returns its message.
fn record_event(event: &Event<'_>, fields: &mut Fields) -> Option<CompactString> {
    fields.reserve(event.metadata().fields().len());
    let mut collector = Collector::new(fields);
    event.record(&mut collector);
    collector.message
}

/// The span context events in `span` see: the nearest captured one, with the span's
/// OpenTelemetry traceparent when it has one.
fn event_ctx<S>(span: &SpanRef<'_, S>) -> Option<Arc<SpanCtx>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let ctx = nearest_ctx(span);
    match otel_traceparent(span) {
        Some(tp) => {
            let mut sc = ctx.as_deref().cloned().unwrap_or_default();
            sc.otel_traceparent = Some(tp);
            Some(Arc::new(sc))
        }
        None => ctx,
    }
}

/// Installs a panic hook that emits an ERROR event (target `omninode::panic`, fields
/// `panic.payload` and `panic.location`, the names `tracing-panic` uses) before calling the
/// hook that was installed before it. The event ships as an application log, and an agent
/// span that then closes during the unwind ends `failed` with that message. Never installed
/// unless the application calls this; without it a panicking agent still ends
/// `failed`/`panic`, with a fixed message.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "<a panic payload that is not a string>".to_owned());
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        tracing::event!(
            target: "omninode::panic",
            Level::ERROR,
            panic.payload = payload.as_str(),
            panic.location = location.as_str(),
            "a panic occurred"
        );
        previous(info);
    }));
}

impl<S> tracing_subscriber::Layer<S> for OmniNodeLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    /// Always `Interest::always()`: see "Filtering" on [`OmniNodeLayer`].
    fn register_callsite(&self, _meta: &'static Metadata<'static>) -> Interest {
        Interest::always()
    }

    /// Always `true`: see "Filtering" on [`OmniNodeLayer`].
    fn enabled(&self, _meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        true
    }

    /// No hint: see "Filtering" on [`OmniNodeLayer`].
    fn max_level_hint(&self) -> Option<LevelFilter> {
        None
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let meta = attrs.metadata();
        if self.disabled || !span_wanted(meta, self.max_level) || super::is_ignored_thread() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut own = Fields::new();
        attrs.record(&mut Collector::for_span(&mut own));
        let parent = parent_ctx(&span);
        let agent = (SpanRole::of(meta, &own) == SpanRole::Agent).then(|| {
            let p = parent.as_deref();
            AgentState::new(
                p.and_then(|p| p.agent_started_id),
                meta.name(),
                &own,
                p.and_then(|p| p.session_id.clone()),
            )
        });
        if agent.is_some() {
            self.live_agents.fetch_add(1, Ordering::Relaxed);
        }
        let sc = build_ctx(Arc::new(own), parent, agent.as_ref(), id);
        span.extensions_mut().insert(SpanData {
            ctx: Arc::new(sc),
            agent,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if super::is_ignored_thread() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        if span.extensions().get::<SpanData>().is_none() {
            return;
        }
        let mut fields = Fields::new();
        values.record(&mut Collector::for_span(&mut fields));
        let parent = parent_ctx(&span);
        let mut ext = span.extensions_mut();
        let Some(data) = ext.get_mut::<SpanData>() else {
            return;
        };
        let mut own = (*data.ctx.own).clone();
        for (name, value) in &fields {
            set_field(&mut own, name, value.clone());
        }
        if let Some(agent) = data.agent.as_mut() {
            agent.apply(&fields);
        }
        let keeps_correlation = !own.iter().any(|(n, _)| *n == "correlation_id");
        let mut sc = build_ctx(Arc::new(own), parent, data.agent.as_ref(), id);
        if keeps_correlation {
            // The root's generated correlation stays the one its children already share.
            sc.correlation_id = data.ctx.correlation_id;
        }
        sc.otel_traceparent = data.ctx.otel_traceparent.clone();
        data.replace_ctx(sc);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if self.live_agents.load(Ordering::Relaxed) == 0 || super::is_ignored_thread() {
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
                data.replace_ctx(sc);
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
        let meta = event.metadata();
        let usage = event_use(meta, self.max_level);
        if self.disabled || usage == EventUse::Ignore || super::is_ignored_thread() {
            return;
        }
        let target = meta.target();
        let kind = Kind::of(target);
        if usage == EventUse::AgentOutcome {
            if let Some(span) = ctx.event_span(event) {
                let mut fields = Fields::with_capacity(1);
                event.record(&mut Collector::new(&mut fields));
                fail_own_agent(&span, &fields, None);
            }
            return;
        }
        // The span itself, not only its context, for an error (it may fail its agent) and
        // for an event whose span is not the current one.
        let needs_span = !event.is_contextual()
            || (kind == Kind::Log && (*meta.level() == Level::ERROR || is_instrument_err(meta)));
        let (span, span_ctx) = if needs_span {
            let span = ctx.event_span(event);
            let span_ctx = span.as_ref().and_then(event_ctx);
            (span, span_ctx)
        } else {
            let current = ctx.current_span();
            let span_ctx = current
                .id()
                .and_then(|id| self.current_ctx(id.into_u64(), || ctx.lookup_current()));
            (None, span_ctx)
        };
        // Built once, here, with the fields recorded straight into it: every move of it is
        // a copy. Its sequence is taken last, so an event given up on leaves no gap.
        let mut ev = Captured {
            sequence: 0,
            timestamp: Timestamp::now(),
            span: span_ctx,
            body: match kind {
                Kind::Typed => match PENDING.with(|p| p.borrow_mut().take()) {
                    Some(e) => Body::typed(e),
                    None => return,
                },
                Kind::Audit => Body::Audit(Fields::new()),
                Kind::Security => Body::Security(Fields::new()),
                Kind::Log => Body::Log {
                    level: *meta.level(),
                    target,
                    message: CompactString::const_new(""),
                    fields: Fields::new(),
                },
            },
        };
        match &mut ev.body {
            // A message given to `audit!`/`security!` ships as a `message` payload field
            // (SPEC §1 allows more fields than the required ones).
            Body::Audit(fields) | Body::Security(fields) => {
                if let Some(m) = record_event(event, fields) {
                    fields.push(("message", FieldValue::Str(m)));
                }
            }
            Body::Log {
                message, fields, ..
            } => {
                let recorded = record_event(event, fields);
                // Records bridged from the `log` crate (librdkafka's own logs among them)
                // carry their real target in a `log.target` field.
                if target == "log"
                    && field_text(fields, "log.target").is_some_and(|t| ignored_target(&t))
                {
                    return;
                }
                if let Some(span) = span.as_ref() {
                    if *meta.level() == Level::ERROR {
                        fail_enclosing_agent(span, fields, recorded.as_deref());
                        note_panic_in_enclosing_agent(span, fields);
                    } else if is_instrument_err(meta) {
                        fail_own_agent(span, fields, recorded.as_deref());
                    }
                }
                *message = recorded.unwrap_or_default();
            }
            Body::Typed { .. } => {}
        }
        ev.sequence = self.queue.next_sequence();
        self.queue.push(ev);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if self.live_agents.load(Ordering::Relaxed) == 0 || super::is_ignored_thread() {
            return;
        }
        // A span that closes while its thread unwinds a panic: the agent it is failed.
        let panicking = std::thread::panicking();
        let Some(span) = ctx.span(&id) else { return };
        let mut ext = span.extensions_mut();
        let Some(data) = ext.get_mut::<SpanData>() else {
            return;
        };
        let Some(agent) = data.agent.take() else {
            return;
        };
        self.live_agents.fetch_sub(1, Ordering::Relaxed);
        if agent.started.is_none() {
            return;
        }
        let sc = data.ctx.clone();
        drop(ext);
        if let Some(ev) = self.ended(sc, agent, panicking) {
            self.queue.push(ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::queue::NoOverflow;
    use crate::metrics::Counters;
    use std::time::Duration;

    /// Refuses everything: the queues of these tests never fill.
    /// A subscriber with this layer in front of a queue the test reads.
    fn capturing() -> (Dispatch, crossbeam_channel::Receiver<Captured>) {
        let (tx, rx) = crossbeam_channel::bounded(1024);
        let counters = Arc::new(Counters::default());
        let queue = Queue::new(tx, Duration::from_millis(1), counters, Arc::new(NoOverflow));
        let layer = OmniNodeLayer::new(Arc::new(queue), Arc::default(), Level::INFO);
        use tracing_subscriber::layer::SubscriberExt;
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
        (dispatch, rx)
    }

    /// The tenant the next captured event saw.
    fn tenant(rx: &crossbeam_channel::Receiver<Captured>) -> Option<String> {
        let ev = rx.try_recv().expect("an event was captured");
        ev.span.and_then(|s| s.tenant_id.clone())
    }

    /// The registry reuses a closed span's id after a few thousand spans took its slot
    /// (8 191 here): an event in the span that now has the id sees that span's context,
    /// not the one its thread saw under the same id before.
    #[test]
    fn a_reused_span_id_does_not_bring_back_an_old_context() {
        let (one, rx) = capturing();
        tracing::dispatcher::with_default(&one, || {
            let first = tracing::info_span!("request", tenant_id = "old");
            first.in_scope(|| tracing::info!(target: "app", "in the first span"));
            assert_eq!(tenant(&rx).as_deref(), Some("old"));
            let id = first.id().expect("an id");
            drop(first);
            for _ in 0..100_000 {
                let span = tracing::info_span!("request", tenant_id = "new");
                if span.id().as_ref() == Some(&id) {
                    span.in_scope(|| tracing::info!(target: "app", "same id, new span"));
                    assert_eq!(tenant(&rx).as_deref(), Some("new"));
                    return;
                }
            }
            panic!("the registry never reused the id");
        });
    }

    /// Events reuse their thread's last span context ([`LastCtx`]) only while it is right
    /// (the events name a target: this crate's own are never captured):
    /// after a `record` on the span, after the span closed and another took its place, in
    /// another span, and for another layer on the same thread.
    #[test]
    fn an_event_sees_its_spans_context_as_it_is_now() {
        let (one, rx1) = capturing();
        let (two, rx2) = capturing();
        tracing::dispatcher::with_default(&one, || {
            let span =
                tracing::info_span!("request", tenant_id = "acme", other = tracing::field::Empty);
            let _e = span.enter();
            tracing::info!(target: "app", "first");
            tracing::info!(target: "app", "second");
            assert_eq!(tenant(&rx1).as_deref(), Some("acme"));
            assert_eq!(tenant(&rx1).as_deref(), Some("acme"));
            span.record("tenant_id", "globex");
            tracing::info!(target: "app", "after record");
            assert_eq!(tenant(&rx1).as_deref(), Some("globex"));
            // Another layer, same thread, inside its own span.
            tracing::dispatcher::with_default(&two, || {
                let span = tracing::info_span!("request", tenant_id = "initech");
                let _e = span.enter();
                tracing::info!(target: "app", "in two");
            });
            assert_eq!(tenant(&rx2).as_deref(), Some("initech"));
            tracing::info!(target: "app", "back in one");
            assert_eq!(tenant(&rx1).as_deref(), Some("globex"));
            let inner = tracing::info_span!("inner", tenant_id = "umbrella");
            inner.in_scope(|| tracing::info!(target: "app", "inner"));
            assert_eq!(tenant(&rx1).as_deref(), Some("umbrella"));
            tracing::info!(target: "app", "outer again");
            assert_eq!(tenant(&rx1).as_deref(), Some("globex"));
        });
        tracing::dispatcher::with_default(&one, || {
            // Spans closed one after another: the registry reuses their slots.
            for t in ["a", "b", "c"] {
                let span = tracing::info_span!("request", tenant_id = t);
                span.in_scope(|| tracing::info!(target: "app", "in span"));
                assert_eq!(tenant(&rx1).as_deref(), Some(t));
            }
            tracing::info!(target: "app", "outside");
            assert_eq!(tenant(&rx1), None);
        });
    }

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

    /// Metadata of a span or event callsite with these fields.
    fn meta(
        name: &'static str,
        target: &'static str,
        level: Level,
        fields: &'static [&'static str],
        span: bool,
    ) -> &'static Metadata<'static> {
        struct Cs;
        impl tracing::callsite::Callsite for Cs {
            fn set_interest(&self, _: Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unreachable!()
            }
        }
        static CS: Cs = Cs;
        let kind = if span {
            tracing::metadata::Kind::SPAN
        } else {
            tracing::metadata::Kind::EVENT
        };
        Box::leak(Box::new(Metadata::new(
            name,
            target,
            level,
            None,
            None,
            None,
            tracing::field::FieldSet::new(fields, tracing::callsite::Identifier(&CS)),
            kind,
        )))
    }

    #[test]
    fn events_more_verbose_than_the_level_are_ignored_but_audit_and_instrument_err_are_not() {
        let ev =
            |target, level, fields| event_use(meta("e", target, level, fields, false), Level::INFO);
        assert_eq!(ev("app", Level::INFO, &["message"]), EventUse::Ship);
        assert_eq!(ev("app", Level::DEBUG, &["message"]), EventUse::Ignore);
        assert_eq!(ev("app", Level::DEBUG, &["error"]), EventUse::AgentOutcome);
        assert_eq!(
            ev("app", Level::DEBUG, &["error", "message"]),
            EventUse::Ignore
        );
        assert_eq!(
            ev("rdkafka::client", Level::ERROR, &["message"]),
            EventUse::Ignore
        );
        for t in [AUDIT_TARGET, SECURITY_TARGET, TYPED_TARGET] {
            assert_eq!(ev(t, Level::TRACE, &["message"]), EventUse::Ship, "{t}");
        }
    }

    #[test]
    fn verbose_spans_are_captured_only_when_they_matter() {
        let sp =
            |name, level, fields| span_wanted(meta(name, "dep", level, fields, true), Level::INFO);
        assert!(sp("request", Level::INFO, &["route"]));
        assert!(!sp("checkout", Level::TRACE, &["pool"]));
        assert!(!sp("invoke_agents_list", Level::TRACE, &[]));
        for name in [
            "invoke_agent",
            "invoke_agent x",
            "create_agent x",
            "execute_tool t",
        ] {
            assert!(sp(name, Level::TRACE, &[]), "{name}");
        }
        for f in CONTEXT_FIELDS {
            assert!(sp("s", Level::TRACE, std::slice::from_ref(f)), "{f}");
        }
        let filter = CaptureFilter {
            max_level: Level::INFO,
        };
        let cs = |m| {
            <CaptureFilter as Filter<tracing_subscriber::Registry>>::callsite_enabled(&filter, m)
        };
        assert!(cs(meta("checkout", "dep", Level::TRACE, &["pool"], true)).is_never());
        assert!(cs(meta("e", "dep", Level::DEBUG, &["message"], false)).is_never());
        assert!(cs(meta("e", AUDIT_TARGET, Level::ERROR, &["action"], false)).is_sometimes());
    }

    #[test]
    fn tools_are_never_agents() {
        let text = |n: &'static str, v: &str| (n, FieldValue::Str(v.into()));
        let role = |name, fields, own: Vec<(&'static str, FieldValue)>| {
            SpanRole::of(meta(name, "app", Level::INFO, fields, true), &own)
        };
        assert_eq!(role("x", &["agent_name"], vec![]), SpanRole::Agent);
        assert_eq!(role("invoke_agent a", &[], vec![]), SpanRole::Agent);
        assert_eq!(
            role(
                "x",
                &["gen_ai.operation.name"],
                vec![text("gen_ai.operation.name", "create_agent")]
            ),
            SpanRole::Agent
        );
        assert_eq!(
            role(
                "x",
                &["gen_ai.operation.name"],
                vec![text("gen_ai.operation.name", "chat")]
            ),
            SpanRole::Plain
        );
        assert_eq!(
            role("execute_tool search", &["agent_name"], vec![]),
            SpanRole::Tool
        );
        assert_eq!(
            role(
                "invoke_agent a",
                &["gen_ai.operation.name"],
                vec![text("gen_ai.operation.name", "execute_tool")]
            ),
            SpanRole::Tool
        );
        assert_eq!(role("x", &["gen_ai.agent.name"], vec![]), SpanRole::Plain);
    }
}
