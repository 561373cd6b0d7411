//! A small HTTP service (tokio + axum) that ships its traces to OmniNode and exposes the
//! pipeline's health and Prometheus metrics:
//!
//! ```sh
//! cargo run --example service --features tokio,metrics             # embedded broker, port 3000
//! OMNINODE_KAFKA_BOOTSTRAP_SERVERS=$(scripts/broker start) \
//!     cargo run --example service --features tokio,metrics -- 0    # any free port
//! curl localhost:3000/run/summarize   # two instrumented agents and an audit event
//! curl localhost:3000/health          # MetricsHandle::health() as JSON (503 when unhealthy)
//! curl localhost:3000/metrics         # omninode_events_* in the Prometheus text format
//! ```
//!
//! The port is the first argument, else `PORT`, else 3000; `0` takes a free one. The bound
//! address is printed on stdout (`listening on http://127.0.0.1:PORT`). With no
//! `OMNINODE_KAFKA_BOOTSTRAP_SERVERS` it starts librdkafka's mock cluster. On ctrl-c or
//! SIGTERM it stops accepting requests, then shuts the pipeline down with
//! `Guard::shutdown_async` (which waits on tokio's blocking pool, not on a runtime thread)
//! and prints the delivery report.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rdkafka::mocking::MockCluster;
use tracing::instrument;
use tracing_omninode::events::QualityGatePassed;
use tracing_omninode::topics::{catalog_topics, create_topics, TopicSpec};
use tracing_omninode::MetricsHandle;
use tracing_subscriber::prelude::*;

#[derive(Clone)]
struct App {
    pipeline: MetricsHandle,
    prometheus: PrometheusHandle,
}

/// The first agent: plans the task (its span becomes `agent.execution.started` and
/// `completed` on the agent topics).
#[instrument(fields(agent_name = "planner", user_request = %task, quality_score))]
async fn plan(task: &str) -> Vec<String> {
    tracing::info!(task, "planning");
    tokio::time::sleep(Duration::from_millis(5)).await;
    tracing::Span::current().record("quality_score", 0.9);
    vec![format!("fetch {task}"), format!("summarize {task}")]
}

/// The second agent, one span per step.
#[instrument(fields(agent_name = "executor", output_summary))]
async fn execute(step: String) -> String {
    tokio::time::sleep(Duration::from_millis(5)).await;
    tracing_omninode::emit(QualityGatePassed {
        gate_name: "step-done".into(),
        score: 1.0,
        threshold: 0.5,
        ..Default::default()
    });
    tracing::Span::current().record("output_summary", step.as_str());
    format!("{step}: done")
}

/// `GET /run/{task}`: an audit event, then the two agents.
async fn run(Path(task): Path<String>) -> String {
    tracing_omninode::audit!(
        action = "task.run",
        actor = "http",
        resource = format!("tasks/{task}"),
        outcome = "success"
    );
    let mut out = Vec::new();
    for step in plan(&task).await {
        out.push(execute(step).await);
    }
    out.join("\n") + "\n"
}

/// `GET /health`: the pipeline's status and counters as JSON; 503 unless it runs.
async fn health(State(app): State<App>) -> impl IntoResponse {
    let health = app.pipeline.health();
    let code = match health.healthy {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = serde_json::to_string(&health).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], body)
}

/// `GET /metrics`: everything the Prometheus recorder holds, `omninode_events_*` included.
async fn metrics(State(app): State<App>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.prometheus.render(),
    )
}

/// Resolves on ctrl-c or SIGTERM.
async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

fn port() -> Result<u16, Box<dyn std::error::Error>> {
    let given = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok());
    Ok(match given {
        Some(p) => p
            .parse()
            .map_err(|_| format!("port `{p}` is not a number from 0 to 65535"))?,
        None => 3000,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = port()?;
    // First, so that the pipeline's counters are registered with it.
    let prometheus = PrometheusBuilder::new().install_recorder()?;

    let mock;
    let bootstrap = match std::env::var("OMNINODE_KAFKA_BOOTSTRAP_SERVERS") {
        Ok(b) if !b.trim().is_empty() => {
            println!("# using the broker at {b}");
            let mut spec = TopicSpec::new(&b);
            spec.partitions = 1;
            // Creating topics talks to the broker and waits: off the runtime threads.
            let topics = tokio::task::spawn_blocking(move || create_topics(&spec)).await??;
            println!(
                "# topics: {} created, {} already there",
                topics.created.len(),
                topics.existing.len()
            );
            b
        }
        _ => {
            mock = MockCluster::new(1)?;
            for t in catalog_topics("") {
                mock.create_topic(&t, 1, 1)?;
            }
            let b = mock.bootstrap_servers();
            println!("# OMNINODE_KAFKA_BOOTSTRAP_SERVERS is not set: started an embedded broker (librdkafka mock cluster) at {b}");
            b
        }
    };

    let spool = std::env::temp_dir().join(format!("omninode-service-{}", std::process::id()));
    // build() never sleeps (a spool directory held by another pipeline means the next free
    // slot), so it is fine on a runtime thread.
    let (layer, guard) = tracing_omninode::builder()
        .bootstrap_servers(&bootstrap)
        .service_name("service-example")
        .tenant_id("acme")
        .spool_dir(&spool)
        .build()?;
    tracing_subscriber::registry().with(layer).init();

    let app = App {
        pipeline: guard.handle(),
        prometheus,
    };
    let router = Router::new()
        .route("/run/{task}", get(run))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("listening on http://{}", listener.local_addr()?);

    axum::serve(listener, router)
        .with_graceful_shutdown(stop_signal())
        .await?;

    println!("# stopping: shutting the pipeline down");
    let report = guard.shutdown_async(Duration::from_secs(10)).await?;
    println!("# delivery report: {report}");
    let _ = std::fs::remove_dir_all(&spool);
    Ok(())
}
