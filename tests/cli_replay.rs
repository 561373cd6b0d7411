//! `omninode-events dlq replay` round trip. Records the pipeline dead-lettered are
//! re-published to their original topic, reach it once each with `x-replay-count` and
//! without `x-dlq-*` headers; a truncated record and one replayed to the limit are refused
//! and reported; `--dry-run` sends nothing and prints the histogram; a replay killed
//! (SIGKILL) half-way and run again sends no acknowledged record twice.
//!
//! The policy failures are dead-lettered by a real pipeline on librdkafka's mock cluster
//! (the only way to make a broker refuse a topic by ACL here) and copied byte for byte to
//! the test broker's DLQ; the truncated record is dead-lettered by a pipeline on the test
//! broker itself.

mod cli_support;
mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::AUDIT;
use rdkafka::producer::BaseProducer;
use serde_json::Value;

const POLICY: usize = 6;

/// Writes a consumed record to `topic` on the test broker, headers and all.
fn copy(p: &BaseProducer, topic: &str, rec: &common::Consumed, extra: Option<(&str, &str)>) {
    let headers: Vec<(&str, &str)> = rec
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra)
        .collect();
    let key = rec.key.clone().unwrap_or_default();
    cli_support::write(p, topic, &key, &headers, &rec.value.to_string());
}

/// An audit event too large for the broker, dead-lettered truncated on the test broker.
fn truncated_failure(bootstrap: &str, prefix: &str) {
    let blob = "x".repeat(30_000);
    let report = cli_support::pipeline(
        bootstrap,
        prefix,
        |b| b.message_max_bytes(20_000usize),
        || {
            tracing_omninode::audit!(
                action = "report.export",
                actor = "alice",
                resource = "report/huge",
                outcome = "success",
                attachment = blob.as_str()
            );
        },
    );
    assert_eq!(report.dead_lettered, 1, "{report:?}");
}

#[test]
fn replay_round_trip_refusals_dry_run_and_resume_after_kill() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("replay");
    common::provision(&bootstrap, &prefix);
    let topic = format!("{prefix}{AUDIT}");
    let dlq = format!("{topic}.dlq");

    // The DLQ: six policy failures, the first of them once more as if already replayed
    // three times (the limit), then one truncated record.
    let failures = cli_support::policy_dead_letters(&prefix, POLICY);
    let p = cli_support::producer(&bootstrap);
    // One record per produce request: tansu cannot fetch from the middle of a batch (it
    // returns the next batch), and the resumed replay starts between two records.
    let one_by_one = failures.iter().map(|r| (r, None));
    for (rec, extra) in one_by_one.chain([(&failures[0], Some(("x-replay-count", "3")))]) {
        copy(&p, &dlq, rec, extra);
    }
    truncated_failure(&bootstrap, &prefix);
    fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        [
            &["dlq", "replay", "--topic", "omninode.logging.audit.v1.dlq"],
            extra,
        ]
        .concat()
    }

    // Dry run: nothing sent, the refusals reported (exit 1), the histogram printed.
    let dry = cli_support::run_ok(&bootstrap, &prefix, &args(&["--dry-run"]), 1);
    assert_eq!(
        dry.stdout.matches("would replay").count(),
        POLICY + 1,
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("replayed 3 times already (limit 3"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("truncated to fit the DLQ"),
        "{}",
        dry.stdout
    );
    let histogram: Vec<&str> = dry
        .lines()
        .into_iter()
        .filter(|l| l.contains('#'))
        .collect();
    assert_eq!(histogram.len(), 2, "{}", dry.stdout);
    assert!(
        histogram[0].contains("7  NON_RETRYABLE_POLICY")
            && histogram[0].contains("TopicAuthorizationFailed"),
        "{}",
        histogram[0]
    );
    assert!(
        histogram[1].contains("1  NON_RETRYABLE_VALIDATION")
            && histogram[1].contains("MessageSizeTooLarge"),
        "{}",
        histogram[1]
    );
    assert!(
        dry.stdout.contains(
            "read 8, would replay 6, refused 2 (1 replay limit reached, 1 truncated original)"
        ),
        "{}",
        dry.stdout
    );
    assert!(common::consume(
        &bootstrap,
        std::slice::from_ref(&topic),
        1,
        Duration::from_secs(2)
    )
    .is_empty());

    // A slow replay, killed (SIGKILL) right after its third acknowledged and committed
    // record, while it waits for the slot of the fourth.
    let mut child = cli_support::command(&bootstrap, &prefix, &args(&["--rate", "1/s"]))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut replayed = 0;
    while replayed < 3 {
        let line = lines
            .next()
            .expect("the replay prints each record")
            .unwrap();
        replayed += usize::from(line.starts_with("replayed "));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Run again: it resumes after the third record; refusals make it exit 1.
    let rest = cli_support::run_ok(&bootstrap, &prefix, &args(&[]), 1);
    assert!(
        rest.stdout.contains("read 5, replayed 3, refused 2"),
        "{}",
        rest.stdout
    );
    assert_eq!(
        rest.stdout.matches("x-replay-count 1)").count(),
        3,
        "{}",
        rest.stdout
    );

    // The original topic holds each dead-lettered event exactly once, as it was.
    let back = common::consume(
        &bootstrap,
        std::slice::from_ref(&topic),
        POLICY + 1,
        Duration::from_secs(5),
    );
    assert_eq!(back.len(), POLICY, "each event once");
    let ids: HashSet<&str> = back
        .iter()
        .map(|r| r.value["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), POLICY);
    for r in &back {
        let original = failures
            .iter()
            .find(|f| f.value["original_event"]["event_id"] == r.value["event_id"])
            .expect("a dead-lettered event");
        assert_eq!(r.value, original.value["original_event"]);
        assert_eq!(r.key.as_deref(), Some("acme"));
        assert_eq!(
            r.headers.get("x-replay-count").map(String::as_str),
            Some("1")
        );
        assert!(
            r.headers.keys().all(|k| !k.starts_with("x-dlq-")),
            "{:?}",
            r.headers
        );
        assert_eq!(
            r.headers["x-event-id"],
            r.value["event_id"].as_str().unwrap()
        );
    }

    // Nothing left: the group's offsets are at the end.
    let done = cli_support::run_ok(&bootstrap, &prefix, &args(&[]), 0);
    assert!(
        done.stdout.contains("read 0, replayed 0, refused 0"),
        "{}",
        done.stdout
    );
    let v: Value = back[0].value.clone();
    assert_eq!(v["event_type"], AUDIT);
}
