//! Agent spans named after the OpenTelemetry GenAI conventions: `invoke_agent` spans (by
//! name or by `gen_ai.operation.name`) are agent executions, `execute_tool` spans are context
//! inside them, and tool arguments and results never reach the wire.

mod common;

use std::time::Duration;

use serde_json::Value;
use tracing::field::Empty;
use tracing::instrument;
use tracing_subscriber::prelude::*;

const STARTED: &str = "omninode.agent.execution.started.v1";
const COMPLETED: &str = "omninode.agent.execution.completed.v1";
const FAILED: &str = "omninode.agent.execution.failed.v1";

const SECRET_ARGS: &str = r#"{"query": "flights for patient 4711", "card": "4111 1111 1111 1111"}"#;
const SECRET_RESULT: &str = "PNR X7Q2ZZ for patient 4711";

#[instrument(
    name = "invoke_agent travel",
    fields(
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.name = "travel-planner",
        gen_ai.provider.name = "openai",
        gen_ai.request.model = "gpt-4o",
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
    )
)]
fn travel_agent() {
    {
        let tool = tracing::info_span!(
            "execute_tool search_flights",
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = "search_flights",
            gen_ai.agent.name = "travel-planner",
            gen_ai.tool.call.arguments = SECRET_ARGS,
            gen_ai.tool.call.result = Empty,
        );
        let _t = tool.enter();
        tracing::info!(hits = 3u64, "tool ran");
        tool.record("gen_ai.tool.call.result", SECRET_RESULT);
        tracing::info!(
            gen_ai.tool.call.result = SECRET_RESULT,
            "tool result logged"
        );
    }
    {
        // A whole prompt on a span: over the 64 KiB cap, so never copied.
        let prompt = "p".repeat(1 << 20);
        let _chat = tracing::info_span!(
            "chat gpt-4o",
            gen_ai.operation.name = "chat",
            prompt = prompt.as_str()
        )
        .entered();
        tracing::info!("model called");
    }
    booking_agent();
    let span = tracing::Span::current();
    span.record("gen_ai.usage.input_tokens", 1200u64);
    span.record("gen_ai.usage.output_tokens", 340u64);
}

/// Recognised by the span name alone.
#[instrument(name = "invoke_agent booking", fields(gen_ai.provider.name = "anthropic"))]
fn booking_agent() {
    let _t = tracing::info_span!("execute_tool book", gen_ai.tool.name = "book").entered();
    tracing::info!("booked");
}

/// An async agent with an async tool call, run as a task on a multi-thread runtime.
#[instrument(name = "invoke_agent async-researcher")]
async fn async_agent() {
    use tracing::Instrument;
    async {
        tokio::task::yield_now().await;
        tracing::info!("async tool ran");
    }
    .instrument(tracing::info_span!(
        "execute_tool fetch",
        gen_ai.tool.call.arguments = SECRET_ARGS
    ))
    .await;
}

#[test]
fn genai_agent_and_tool_spans_become_executions_and_context() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("genai");
    common::provision(&bootstrap, &prefix);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        travel_agent();
        // A span that only says its operation is `invoke_agent`.
        let _a = tracing::info_span!(
            "run",
            gen_ai.operation.name = "invoke_agent",
            gen_ai.agent.name = "by-operation"
        )
        .entered();
        tracing::info!("inside by-operation");
        drop(_a);
        use tracing::instrument::WithSubscriber;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let task = async_agent().with_current_subscriber();
        rt.block_on(async move { tokio::spawn(task).await })
            .unwrap();
    });
    let report = guard.shutdown(Duration::from_secs(20)).unwrap();
    assert_eq!(report.dead_lettered, 0, "{report:?}");
    let got: Vec<Value> = common::consume(
        &bootstrap,
        &common::event_topics(&prefix),
        report.delivered as usize,
        Duration::from_secs(20),
    )
    .into_iter()
    .map(|c| c.value)
    .collect();
    assert_eq!(got.len() as u64, report.delivered);

    let of = |ty: &str, name: &str| -> Vec<&Value> {
        got.iter()
            .filter(|v| v["event_type"] == ty && v["payload"]["agent_name"] == name)
            .collect()
    };
    // Exactly three executions: the tools are not agents.
    let started: Vec<&str> = got
        .iter()
        .filter(|v| v["event_type"] == STARTED)
        .map(|v| v["payload"]["agent_name"].as_str().unwrap())
        .collect();
    assert_eq!(started.len(), 4, "{started:?}");
    assert!(got.iter().all(|v| v["event_type"] != FAILED));

    let travel = of(STARTED, "travel-planner");
    assert_eq!(travel.len(), 1);
    let travel = travel[0];
    assert_eq!(
        travel["payload"]["context"]["gen_ai.provider.name"],
        "openai"
    );
    assert_eq!(
        travel["payload"]["context"]["gen_ai.request.model"],
        "gpt-4o"
    );
    assert!(travel["causation_id"].is_null());
    let travel_done = of(COMPLETED, "travel-planner");
    assert_eq!(travel_done.len(), 1);
    assert_eq!(travel_done[0]["causation_id"], travel["event_id"]);
    let metrics = &travel_done[0]["payload"]["metrics"];
    assert_eq!(metrics["gen_ai.usage.input_tokens"], 1200);
    assert_eq!(metrics["gen_ai.usage.output_tokens"], 340);

    // The nested agent (named by its span name) points at the outer one.
    let booking = of(STARTED, "booking");
    assert_eq!(booking.len(), 1);
    assert_eq!(booking[0]["causation_id"], travel["event_id"]);
    assert_eq!(booking[0]["correlation_id"], travel["correlation_id"]);
    assert_eq!(
        of(COMPLETED, "booking")[0]["causation_id"],
        booking[0]["event_id"]
    );
    assert_eq!(of(COMPLETED, "by-operation").len(), 1);
    let researcher = of(STARTED, "async-researcher");
    assert_eq!(researcher.len(), 1);
    assert_eq!(of(COMPLETED, "async-researcher").len(), 1);

    // Events inside a tool span belong to the agent around it, with the tool as context.
    let log = |m: &str| {
        got.iter()
            .find(|v| v["payload"]["message"] == m)
            .unwrap_or_else(|| panic!("{m}"))
    };
    let ran = log("tool ran");
    assert_eq!(ran["causation_id"], travel["event_id"]);
    assert_eq!(ran["correlation_id"], travel["correlation_id"]);
    assert_eq!(
        ran["payload"]["context"]["gen_ai.tool.name"],
        "search_flights"
    );
    assert_eq!(log("booked")["causation_id"], booking[0]["event_id"]);
    let async_ran = log("async tool ran");
    assert_eq!(async_ran["causation_id"], researcher[0]["event_id"]);
    assert_eq!(
        async_ran["payload"]["context"]["gen_ai.tool.call.arguments"],
        "[omitted: sensitive gen_ai content]"
    );
    let called = log("model called");
    assert_eq!(
        called["payload"]["context"]["prompt"],
        "[omitted: 1048576 bytes]"
    );
    assert_eq!(
        called["payload"]["context"]["gen_ai.operation.name"],
        "chat"
    );

    // Tool arguments and results: the field names may show, their values never.
    let marker = "[omitted: sensitive gen_ai content]";
    assert_eq!(
        ran["payload"]["context"]["gen_ai.tool.call.arguments"],
        marker
    );
    let logged = log("tool result logged");
    assert_eq!(
        logged["payload"]["context"]["gen_ai.tool.call.result"],
        marker
    );
    for v in &got {
        let text = v.to_string();
        for secret in ["patient 4711", "4111 1111", "X7Q2ZZ"] {
            assert!(!text.contains(secret), "{secret} shipped in {text}");
        }
    }
}
