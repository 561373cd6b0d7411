//! `omninode-events tail` reads what the pipeline produced, on the event topics and their
//! DLQ twins, and its filters (`--type`, `--tenant`, `--correlation-id`, `--max`,
//! `--from`) keep exactly the records they name; `--follow` prints what arrives later.

mod cli_support;
mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

/// Emits, through a real pipeline: two audit events (tenants acme and globex), one
/// security event, one agent execution (started + completed) under `corr`, one invalid
/// audit event (dead-lettered), one application log.
fn produce(bootstrap: &str, prefix: &str, corr: &str) {
    let report = cli_support::pipeline(
        bootstrap,
        prefix,
        |b| b,
        || {
            tracing_omninode::audit!(
                action = "user.delete",
                actor = "alice",
                resource = "user/1",
                outcome = "success"
            );
            tracing_omninode::audit!(
                tenant_id = "globex",
                action = "user.create",
                actor = "bob",
                resource = "user/2",
                outcome = "success"
            );
            tracing_omninode::security!(
                event_type = "permission_check",
                user_id = "u-7",
                resource = "billing",
                decision = "deny"
            );
            tracing::info_span!("agent", agent_name = "coder", correlation_id = corr)
                .in_scope(|| {});
            tracing_omninode::audit!(
                action = "user.delete",
                actor = "eve",
                resource = "user/3",
                outcome = "maybe"
            );
            tracing::info!(order = 42, "order accepted");
        },
    );
    assert_eq!(
        (report.delivered, report.dead_lettered),
        (6, 1),
        "{report:?}"
    );
}

#[test]
fn tail_reads_the_pipeline_output_and_filters() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("tail");
    common::provision(&bootstrap, &prefix);
    let corr = uuid::Uuid::now_v7().to_string();
    produce(&bootstrap, &prefix, &corr);
    let tail =
        |args: &[&str]| cli_support::run_ok(&bootstrap, &prefix, &[&["tail"], args].concat(), 0);

    // Everything, as JSON records with topic, key and headers.
    let all = tail(&["--all", "--format", "json"]);
    let records: Vec<Value> = all
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 7, "{}", all.stdout);
    let dlq: Vec<&Value> = records
        .iter()
        .filter(|r| r["topic"].as_str().unwrap().ends_with(".dlq"))
        .collect();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["value"]["error"]["code"], "SchemaValidation");
    let audit = records
        .iter()
        .find(|r| r["value"]["payload"]["actor"] == "bob")
        .unwrap();
    assert_eq!(audit["key"], "globex");
    assert_eq!(audit["headers"]["x-tenant"], "globex");

    // Pretty: one line per event, no colour off a terminal, the DLQ line names its class.
    let pretty = tail(&["--all"]);
    assert_eq!(pretty.lines().len(), 7);
    assert!(!pretty.stdout.contains('\x1b'), "{}", pretty.stdout);
    let dlq_line = pretty
        .lines()
        .into_iter()
        .find(|l| l.contains(" DLQ "))
        .unwrap();
    assert!(
        dlq_line.contains("DLQ NON_RETRYABLE_VALIDATION/SchemaValidation"),
        "{dlq_line}"
    );
    assert!(
        dlq_line.contains("actor=eve") && dlq_line.contains("outcome=maybe"),
        "{dlq_line}"
    );
    let deny = pretty
        .lines()
        .into_iter()
        .find(|l| l.contains("logging.security"))
        .unwrap();
    assert!(
        deny.contains("decision=deny") && deny.contains("user_id=u-7"),
        "{deny}"
    );

    // Filters.
    let globex = tail(&["omninode.logging.audit.v1", "--tenant", "globex"]);
    assert_eq!(globex.lines().len(), 1, "{}", globex.stdout);
    assert!(globex.stdout.contains("actor=bob"));
    let agents = tail(&["--all", "--type", "omninode.agent.*"]);
    assert_eq!(agents.lines().len(), 2, "{}", agents.stdout);
    assert!(agents
        .lines()
        .iter()
        .all(|l| l.contains("agent_name=coder")));
    let by_corr = tail(&["--all", "--correlation-id", &corr]);
    assert_eq!(by_corr.lines().len(), 2, "{}", by_corr.stdout);
    let two_globs = tail(&[
        "--all",
        "--type",
        "*.security.*",
        "--type",
        "*.application.*",
    ]);
    assert_eq!(two_globs.lines().len(), 2, "{}", two_globs.stdout);
    assert_eq!(tail(&["--all", "--max", "3"]).lines().len(), 3);
    let from_end = tail(&["omninode.logging.security.v1", "--from", "end"]);
    assert_eq!(from_end.lines().len(), 0, "{}", from_end.stdout);
    assert_eq!(tail(&["--all", "--from", "-1h"]).lines().len(), 7);
    let raw = tail(&["omninode.logging.audit.v1.dlq", "--format", "raw"]);
    let v: Value = serde_json::from_str(raw.stdout.trim()).unwrap();
    assert_eq!(
        v["original_topic"],
        format!("{prefix}omninode.logging.audit.v1")
    );
}

#[test]
fn follow_prints_records_that_arrive_later() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("follow");
    common::provision(&bootstrap, &prefix);
    let mut child = cli_support::command(
        &bootstrap,
        &prefix,
        &["tail", "omninode.logging.audit.v1", "--follow"],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    // Give the tail time to take its start offsets before producing.
    std::thread::sleep(Duration::from_secs(3));
    let corr = uuid::Uuid::now_v7().to_string();
    produce(&bootstrap, &prefix, &corr);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    assert!(first.contains("actor=alice"), "{first}");
    assert!(second.contains("actor=bob"), "{second}");
    // SIGTERM: a clean stop.
    assert_eq!(cli_support::terminate(&mut child), Some(0));
}
