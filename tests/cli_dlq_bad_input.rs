//! A DLQ holding what it should not (a value that is not JSON, a foreign JSON record, a
//! DLQ record of another topic) and a record whose original topic is missing: `dlq stats`
//! counts every record, `tail` shows every record, `dlq replay` reports each foreign one
//! and stops with a clear error (exit 2) before the record it cannot deliver, then, once
//! the topic exists, resumes with that record. A missing or non-DLQ `--topic` is a clear
//! error too. Nothing is lost.

mod cli_support;
mod common;

use std::time::Duration;

use common::AUDIT;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

/// Creates one topic (only the DLQ: its twin stays missing).
fn create_topic(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    let created = rt
        .block_on(admin.create_topics([&new], &AdminOptions::new()))
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
}

#[test]
fn foreign_records_and_a_missing_original_topic_lose_nothing() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("badinput");
    let dlq = format!("{prefix}{AUDIT}.dlq");
    create_topic(&bootstrap, &dlq);
    let real = cli_support::policy_dead_letters(&prefix, 2);
    let p = cli_support::producer(&bootstrap);
    cli_support::write(&p, &dlq, "k", &[], "\u{1}\u{2} binary, not JSON");
    cli_support::write(&p, &dlq, "k", &[], r#"{"hello":"a foreign record"}"#);
    let mut other = real[0].value.clone();
    other["original_topic"] = format!("{prefix}omninode.logging.security.v1").into();
    cli_support::write(&p, &dlq, "acme", &[], &other.to_string());
    let headers: Vec<(&str, &str)> = real[1]
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    cli_support::write(&p, &dlq, "acme", &headers, &real[1].value.to_string());

    // Stats count all four, the foreign ones under their own row.
    let stats = cli_support::run_ok(&bootstrap, &prefix, &["dlq", "stats"], 0);
    let row = |class: &str| {
        stats
            .lines()
            .into_iter()
            .find(|l| l.starts_with(&dlq) && l.contains(class))
            .unwrap_or_else(|| panic!("no {class} row:\n{}", stats.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        row("(not a DLQ record)").contains("(not a DLQ record) - 2 - -"),
        "{}",
        stats.stdout
    );
    assert!(
        row("NON_RETRYABLE_POLICY").contains("NON_RETRYABLE_POLICY TopicAuthorizationFailed 2 20"),
        "{}",
        stats.stdout
    );
    assert!(
        stats
            .stdout
            .ends_with("4 records in 1 DLQ topics (0 empty)\n"),
        "{}",
        stats.stdout
    );

    // Tail shows all four.
    let tail = cli_support::run_ok(
        &bootstrap,
        &prefix,
        &["tail", "omninode.logging.audit.v1.dlq"],
        0,
    );
    assert_eq!(tail.lines().len(), 4, "{}", tail.stdout);

    // Replay reports the three foreign records and stops before the undeliverable one.
    let args = ["dlq", "replay", "--topic", "omninode.logging.audit.v1.dlq"];
    let blocked = cli_support::run_ok(&bootstrap, &prefix, &args, 2);
    let refused: Vec<&str> = blocked
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("refused"))
        .collect();
    assert_eq!(refused.len(), 3, "{}", blocked.stdout);
    assert!(
        refused[0].contains("@0: not a DLQ record (SPEC §3): expected value"),
        "{}",
        refused[0]
    );
    assert!(
        refused[1].contains("@1: not a DLQ record (SPEC §3): missing field"),
        "{}",
        refused[1]
    );
    assert!(
        refused[2].contains("@2: original_topic `")
            && refused[2].contains("security.v1` is not a catalog topic whose DLQ this is"),
        "{}",
        refused[2]
    );
    assert!(
        blocked
            .stderr
            .contains(&format!("topic `{prefix}{AUDIT}` does not exist")),
        "{}",
        blocked.stderr
    );

    // Once the topic exists the replay resumes with that record; the refused ones stay
    // behind (reported once, committed past), the DLQ keeps everything.
    cli_support::run_ok(
        &bootstrap,
        &prefix,
        &["topics", "create", "--partitions", "1"],
        0,
    );
    let resumed = cli_support::run_ok(&bootstrap, &prefix, &args, 0);
    assert!(resumed.stdout.contains("@3 -> "), "{}", resumed.stdout);
    assert!(
        resumed.stdout.contains("read 1, replayed 1, refused 0"),
        "{}",
        resumed.stdout
    );
    let back = common::consume(
        &bootstrap,
        &[format!("{prefix}{AUDIT}")],
        2,
        Duration::from_secs(5),
    );
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].value, real[1].value["original_event"]);
    let tail = cli_support::run_ok(
        &bootstrap,
        &prefix,
        &["tail", "omninode.logging.audit.v1.dlq"],
        0,
    );
    assert_eq!(tail.lines().len(), 4);

    // A DLQ topic that does not exist, and a topic that is not a DLQ.
    let missing = cli_support::run_ok(
        &bootstrap,
        &prefix,
        &[
            "dlq",
            "replay",
            "--topic",
            "omninode.agent.routing.failed.v9.dlq",
        ],
        2,
    );
    assert!(
        missing.stderr.contains("does not exist"),
        "{}",
        missing.stderr
    );
    let not_dlq = cli_support::run_ok(&bootstrap, &prefix, &["dlq", "replay", "--topic", AUDIT], 2);
    assert!(
        not_dlq.stderr.contains("is not a DLQ topic"),
        "{}",
        not_dlq.stderr
    );
}
