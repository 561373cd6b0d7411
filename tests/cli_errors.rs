//! Bad input gets a clear error (exit 2) and nothing hangs: an unreachable broker is named
//! within the timeout, a missing topic is named, a malformed option says how to write it.

mod cli_support;
mod common;

use std::time::Duration;

#[test]
fn unreachable_broker_is_a_clear_error_within_the_timeout() {
    let dead = common::closed_port();
    for args in [
        &["tail", "--all"][..],
        &["tail", "omninode.logging.audit.v1"],
        &["topics", "list"],
        &["topics", "create"],
        &["validate", "--all"],
        &["dlq", "stats"],
        &["dlq", "monitor"],
        &["dlq", "replay", "--topic", "omninode.logging.audit.v1.dlq"],
    ] {
        let r = cli_support::run(&dead, "", &[args, &["--timeout", "2s"]].concat());
        assert_eq!(r.code, Some(2), "{args:?}: {r:?}");
        assert!(
            r.stderr
                .contains(&format!("no broker answered at {dead} within 2s")),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("--bootstrap-servers"), "{}", r.stderr);
        assert!(
            r.took < Duration::from_secs(8),
            "{args:?} took {:?}",
            r.took
        );
    }
}

#[test]
fn missing_topic_and_bad_options_say_what_to_fix() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("errors");
    let r = cli_support::run(&bootstrap, &prefix, &["tail", "omninode.logging.audit.v1"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "topic `{prefix}omninode.logging.audit.v1` does not exist"
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("topics list"), "{}", r.stderr);

    for (args, needle) in [
        (&["tail", "--all", "--from", "yesterday"][..], "RFC 3339"),
        (&["tail", "--all", "-X", "novalue"], "KEY=VALUE"),
        (&["tail"], "--all"),
    ] {
        let r = cli_support::run(&bootstrap, &prefix, args);
        assert_eq!(r.code, Some(2), "{args:?}: {r:?}");
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
}
