//! Agent outcomes on a real broker, inside tokio current-thread and multi-thread runtimes: a
//! panicking agent ends `failed`/`panic`, `#[instrument(err)]` at any level fails its agent
//! with the recorded error type (whatever the order it was recorded in), `session_id` is
//! never null, and a root span's events share one correlation id.

mod common;

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use tracing::instrument::WithSubscriber;
use tracing::{instrument, Instrument};
use tracing_subscriber::prelude::*;

const STARTED: &str = "omninode.agent.execution.started.v1";
const COMPLETED: &str = "omninode.agent.execution.completed.v1";
const FAILED: &str = "omninode.agent.execution.failed.v1";

/// Runs `body` with a fresh pipeline installed as the thread's default subscriber (every
/// future it spawns must carry it with `with_current_subscriber`), shuts the pipeline down
/// and returns every envelope it delivered.
fn shipped(name: &str, body: impl FnOnce()) -> Vec<Value> {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix(name);
    common::provision(&bootstrap, &prefix);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), body);
    let report = guard.shutdown(Duration::from_secs(20)).unwrap();
    assert_eq!(report.dead_lettered, 0, "{report:?}");
    let got = common::consume(
        &bootstrap,
        &common::event_topics(&prefix),
        report.delivered as usize,
        Duration::from_secs(20),
    );
    assert_eq!(got.len() as u64, report.delivered);
    got.into_iter().map(|c| c.value).collect()
}

fn runtimes() -> Vec<(&'static str, tokio::runtime::Runtime)> {
    vec![
        (
            "current-thread",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        ),
        (
            "multi-thread",
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        ),
    ]
}

/// Runs `fut` on `rt` as a spawned task carrying the current subscriber; returns its join
/// result.
fn spawn_on<F>(rt: &tokio::runtime::Runtime, fut: F) -> Result<F::Output, tokio::task::JoinError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let fut = fut.with_current_subscriber();
    rt.block_on(async move { tokio::spawn(fut).await })
}

fn agent_events<'a>(got: &'a [Value], ty: &str, name: &str) -> Vec<&'a Value> {
    got.iter()
        .filter(|v| v["event_type"] == ty && v["payload"]["agent_name"] == name)
        .collect()
}

/// The one end event of agent `name`, after checking it has exactly one start and one end,
/// caused by the start.
fn end_of<'a>(got: &'a [Value], name: &str) -> &'a Value {
    let started = agent_events(got, STARTED, name);
    assert_eq!(started.len(), 1, "{name}: one started");
    let ends: Vec<_> = agent_events(got, COMPLETED, name)
        .into_iter()
        .chain(agent_events(got, FAILED, name))
        .collect();
    assert_eq!(ends.len(), 1, "{name}: one end, got {ends:?}");
    assert_eq!(ends[0]["causation_id"], started[0]["event_id"], "{name}");
    ends[0]
}

#[instrument(fields(agent_name = %name))]
async fn panicking_agent(name: String, message: &'static str) {
    tokio::task::yield_now().await;
    tracing::info!("about to fail");
    panic!("{message}");
}

#[test]
fn a_panicking_async_agent_ends_failed_with_error_type_panic() {
    let got = shipped("panic", || {
        for (rt_name, rt) in runtimes() {
            let res = spawn_on(&rt, panicking_agent(format!("panicky-{rt_name}"), "boom"));
            assert!(res.unwrap_err().is_panic(), "{rt_name}");
        }
        // With the opt-in hook the panic message reaches the failed event.
        tracing_omninode::layer::install_panic_hook();
        let (_, rt) = runtimes().pop().unwrap();
        let res = spawn_on(
            &rt,
            panicking_agent("hooked".into(), "tool exploded at step 3"),
        );
        assert!(res.unwrap_err().is_panic());
    });
    for rt_name in ["current-thread", "multi-thread"] {
        let name = format!("panicky-{rt_name}");
        let end = end_of(&got, &name);
        assert_eq!(end["event_type"], FAILED, "{name}: {end}");
        assert_eq!(end["payload"]["error_type"], "panic", "{name}");
        assert!(
            !end["payload"]["error_message"].as_str().unwrap().is_empty(),
            "{name}"
        );
    }
    let end = end_of(&got, "hooked");
    assert_eq!(end["event_type"], FAILED);
    assert_eq!(end["payload"]["error_type"], "panic");
    assert_eq!(end["payload"]["error_message"], "tool exploded at step 3");
    assert!(end["payload"]["error_stack_trace"]
        .as_str()
        .unwrap()
        .contains("agent_outcomes.rs"));
}

/// A custom error type, as an application would define it.
#[derive(Debug)]
struct QuotaExceeded {
    used: u32,
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "quota exceeded after {} calls", self.used)
    }
}

impl std::error::Error for QuotaExceeded {}

/// `err` at ERROR; the type is a span field recorded at creation, before the error.
#[instrument(err, fields(agent_name = "err-error", error_type = "QuotaExceeded"))]
async fn err_at_error() -> Result<(), QuotaExceeded> {
    tokio::task::yield_now().await;
    Err(QuotaExceeded { used: 3 })
}

/// `err` at WARN; the type (from `type_name`) is recorded on the span before returning.
#[instrument(err(level = "warn"), fields(agent_name = "err-warn", error.type))]
async fn err_at_warn() -> Result<(), QuotaExceeded> {
    tokio::task::yield_now().await;
    tracing::Span::current().record("error.type", std::any::type_name::<QuotaExceeded>());
    Err(QuotaExceeded { used: 4 })
}

/// `err(Debug)` at DEBUG, more verbose than the layer's INFO: still the agent's outcome.
#[instrument(
    err(Debug, level = "debug"),
    fields(agent_name = "err-debug", error_type = "QuotaExceeded")
)]
fn err_at_debug() -> Result<(), QuotaExceeded> {
    Err(QuotaExceeded { used: 5 })
}

/// A helper that logs its error at WARN and recovers inside an agent: the agent completes.
#[instrument(err(level = "warn"))]
fn flaky_helper() -> Result<(), QuotaExceeded> {
    Err(QuotaExceeded { used: 1 })
}

#[instrument(fields(agent_name = "recovers"))]
fn recovering_agent() {
    let _ = flaky_helper();
}

#[test]
fn instrument_err_at_any_level_fails_the_agent_with_its_error_type() {
    let got = shipped("err", || {
        for (rt_name, rt) in runtimes() {
            let res = spawn_on(
                &rt,
                err_at_error().instrument(tracing::info_span!("rt", rt = rt_name)),
            );
            assert!(res.unwrap().is_err());
            assert!(spawn_on(&rt, err_at_warn()).unwrap().is_err());
        }
        assert!(err_at_debug().is_err());
        recovering_agent();
    });
    for (name, kind, message) in [
        ("err-error", "QuotaExceeded", "quota exceeded after 3 calls"),
        (
            "err-warn",
            "agent_outcomes::QuotaExceeded",
            "quota exceeded after 4 calls",
        ),
        ("err-debug", "QuotaExceeded", "QuotaExceeded { used: 5 }"),
    ] {
        let ends: Vec<_> = agent_events(&got, FAILED, name);
        let want = if name == "err-debug" { 1 } else { 2 };
        assert_eq!(ends.len(), want, "{name}: failed once per runtime");
        assert!(agent_events(&got, COMPLETED, name).is_empty(), "{name}");
        for end in ends {
            assert_eq!(end["payload"]["error_type"], kind, "{name}");
            assert_eq!(end["payload"]["error_message"], message, "{name}");
        }
    }
    assert_eq!(end_of(&got, "recovers")["event_type"], COMPLETED);
}

#[instrument(fields(agent_name = %name))]
fn plain_agent(name: &str) {
    tracing::info!("working");
}

#[instrument(fields(agent_name = "with-own", session_id = "own-session"))]
fn agent_with_session() {
    plain_agent("nested-in-own");
}

#[test]
fn session_id_is_never_null() {
    let got = shipped("session", || {
        plain_agent("lonely");
        plain_agent("lonely-too");
        agent_with_session();
        let _conv = tracing::info_span!("chat", gen_ai.conversation.id = "conv-7").entered();
        plain_agent("in-conversation");
    });
    let session = |name: &str| {
        let s = agent_events(&got, STARTED, name);
        assert_eq!(s.len(), 1, "{name}");
        s[0]["payload"]["session_id"].clone()
    };
    assert_eq!(session("with-own"), "own-session");
    assert_eq!(session("nested-in-own"), "own-session", "from the ancestor");
    assert_eq!(session("in-conversation"), "conv-7");
    let lonely = session("lonely");
    let id = uuid::Uuid::parse_str(lonely.as_str().expect("never null")).unwrap();
    assert_eq!(id.get_version_num(), 7, "one UUIDv7 per process");
    assert_eq!(session("lonely-too"), lonely);
}

#[test]
fn a_root_spans_events_share_one_correlation_id() {
    let got = shipped("corr", || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let root = tracing::info_span!("request", route = "/plan");
        root.in_scope(|| {
            tracing::info!("first");
            tracing::info_span!("db").in_scope(|| tracing::info!("second"));
            plain_agent("in-root");
        });
        let task = async { tracing::info!("third, on a worker thread") }.instrument(root.clone());
        spawn_on(&rt, task).unwrap();
        drop(root);
        tracing::info!("outside one");
        tracing::info!("outside two");
    });
    let corr = |m: &str| {
        got.iter()
            .find(|v| v["payload"]["message"] == m)
            .unwrap_or_else(|| panic!("{m}"))["correlation_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let root = corr("first");
    assert_eq!(uuid::Uuid::parse_str(&root).unwrap().get_version_num(), 7);
    assert_eq!(corr("second"), root);
    assert_eq!(corr("third, on a worker thread"), root);
    assert_eq!(corr("working"), root, "an agent inside the root joins it");
    assert_eq!(
        agent_events(&got, STARTED, "in-root")[0]["correlation_id"],
        root
    );
    assert_ne!(corr("outside one"), root);
    assert_ne!(corr("outside one"), corr("outside two"));
}
