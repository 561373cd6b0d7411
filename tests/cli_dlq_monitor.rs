//! `omninode-events dlq monitor` alerts once per threshold crossing, keeps the growth that
//! arrives during the cooldown for one alert after it, stays quiet below the threshold,
//! sends each alert as an `OMNINODE_DLQ_THRESHOLD` application event through the
//! pipeline, and stops cleanly on SIGTERM. Short threshold, cooldown and interval.

mod cli_support;
mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{APP, AUDIT};

/// `n` audit events the pipeline dead-letters (an outcome the catalog does not allow).
fn dead_letter(bootstrap: &str, prefix: &str, n: usize) {
    let report = cli_support::pipeline(
        bootstrap,
        prefix,
        |b| b,
        || cli_support::audits(n, "unknown"),
    );
    assert_eq!(report.dead_lettered, n as u64, "{report:?}");
}

#[test]
fn monitor_alerts_once_per_crossing_and_respects_the_cooldown() {
    const COOLDOWN: Duration = Duration::from_secs(4);
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("monitor");
    common::provision(&bootstrap, &prefix);
    let mut child = cli_support::command(
        &bootstrap,
        &prefix,
        &[
            "dlq",
            "monitor",
            "--threshold",
            "3",
            "--cooldown",
            "4s",
            "--interval",
            "300ms",
        ],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send((Instant::now(), line));
        }
    });
    let next = |within: Duration| rx.recv_timeout(within).ok();
    let (_, ready) = next(Duration::from_secs(30)).expect("the monitor starts");
    assert_eq!(ready, "omninode-events: watching 19 DLQ topics");

    let dlq = format!("{prefix}{AUDIT}.dlq");
    let alert = format!("omninode-events: ALERT {dlq} grew by 3 records (NON_RETRYABLE_VALIDATION=3) [OMNINODE_DLQ_THRESHOLD]");
    dead_letter(&bootstrap, &prefix, 3);
    let (first_at, first) = next(Duration::from_secs(20)).expect("an alert at the threshold");
    assert_eq!(first, alert);

    // Three more at once: over the threshold again, but inside the cooldown.
    dead_letter(&bootstrap, &prefix, 3);
    let (second_at, second) = next(Duration::from_secs(20)).expect("an alert after the cooldown");
    assert_eq!(second, alert);
    let gap = second_at - first_at;
    assert!(
        gap >= COOLDOWN - Duration::from_millis(400),
        "second alert after {gap:?}"
    );

    // Two more: below the threshold, no alert.
    dead_letter(&bootstrap, &prefix, 2);
    let quiet = next(COOLDOWN + Duration::from_secs(2));
    assert!(quiet.is_none(), "{quiet:?}");

    assert_eq!(cli_support::terminate(&mut child), Some(0));
    let (_, stopped) = next(Duration::from_secs(5)).expect("a last line");
    assert!(
        stopped.starts_with("omninode-events: monitor stopped"),
        "{stopped}"
    );

    // Each alert is also an application event on the stream.
    let app = common::consume(
        &bootstrap,
        &[format!("{prefix}{APP}")],
        3,
        Duration::from_secs(5),
    );
    assert_eq!(app.len(), 2, "{app:?}");
    for e in &app {
        let p = &e.value["payload"];
        assert_eq!(p["code"], "OMNINODE_DLQ_THRESHOLD");
        assert_eq!(p["level"], "WARN");
        assert_eq!(p["context"]["topic"], dlq.as_str());
        assert_eq!(p["context"]["growth"], 3);
        assert_eq!(p["context"]["classes"]["NON_RETRYABLE_VALIDATION"], 3);
        assert_eq!(e.value["source"]["service_name"], "omninode-events");
    }
}
