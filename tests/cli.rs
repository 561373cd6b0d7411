//! The `omninode-events` binary: `topics create` makes the 38 topics (twice is fine),
//! `topics list` shows them, `sanitize` cleans stdin.

mod cli_support;
mod common;

use std::process::Command;

use cli_support::BIN;

#[test]
fn topics_create_makes_38_topics_and_is_idempotent() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("cli");
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .output()
            .expect("run omninode-events");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run(&[
        "topics",
        "create",
        "--bootstrap-servers",
        &bootstrap,
        "--prefix",
        &prefix,
    ]);
    assert!(
        first.contains("38 topics: 38 created, 0 already existed"),
        "{first}"
    );
    let second = run(&[
        "topics",
        "create",
        "--bootstrap-servers",
        &bootstrap,
        "--prefix",
        &prefix,
    ]);
    assert!(
        second.contains("38 topics: 0 created, 38 already existed"),
        "{second}"
    );
    let listed = run(&["topics", "list", "--bootstrap-servers", &bootstrap]);
    let ours: Vec<&str> = listed.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(ours.len(), 38);
    assert_eq!(ours.iter().filter(|t| t.ends_with(".dlq")).count(), 19);
}

#[test]
fn bad_arguments_exit_nonzero_with_usage() {
    let out = Command::new(BIN)
        .args(["topics", "create"])
        .env_remove("OMNINODE_KAFKA_BOOTSTRAP_SERVERS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bootstrap-servers"));
}

#[test]
fn sanitize_cleans_a_whole_stream_including_multiline_pem() {
    let input = "user=bob password=hunter2\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----\nrequest 0190f0f0-0000-7000-8000-000000000001 ok\n";
    let mut sanitize = Command::new(BIN);
    sanitize.arg("sanitize");
    let out = cli_support::with_stdin(sanitize, input);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("MIIEowIBAAKCAQEA"), "{text}");
    assert!(!text.contains("VTLw7onLRnrq0"), "{text}");
    assert!(
        text.contains("request 0190f0f0-0000-7000-8000-000000000001 ok"),
        "{text}"
    );
    assert!(text.contains("user=bob"));
}
