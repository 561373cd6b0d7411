//! Every example runs (not only compiles) against the test broker, ends in time, succeeds
//! and prints what it is for; and `examples/service.rs` serves requests, moves its
//! `omninode_events_*` counters on `/metrics`, reports `/health`, and shuts down cleanly
//! on SIGTERM.
//!
//! The examples are built by `cargo test` (or `cargo build --examples`); the test builds
//! them once more with this test's features, which costs nothing when they are fresh and
//! keeps `cargo test --test examples` from running stale binaries.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long one example may run.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// One example at a time: each starts a pipeline and a few Kafka clients, and the machine
/// is small.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The features this test was built with, for building the examples alike.
fn features() -> String {
    let mut f = Vec::new();
    for (on, name) in [
        (cfg!(feature = "tokio"), "tokio"),
        (cfg!(feature = "metrics"), "metrics"),
        (cfg!(feature = "cli"), "cli"),
        (cfg!(feature = "opentelemetry"), "opentelemetry"),
        (cfg!(feature = "failpoints"), "failpoints"),
    ] {
        if on {
            f.push(name);
        }
    }
    f.join(",")
}

/// The example binary `name`: `target/<profile>/examples/<name>`, beside this test's
/// `deps/` directory.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args(["build", "--examples", "--features", &features()])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run cargo build --examples");
        assert!(
            out.status.success(),
            "cargo build --examples failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// The test broker with the catalog topics (no prefix, as the examples use them), once.
fn broker() -> String {
    static BROKER: OnceLock<String> = OnceLock::new();
    BROKER
        .get_or_init(|| {
            let b = common::broker();
            common::provision(&b, "");
            b
        })
        .clone()
}

/// `name` with the test broker and a spool directory of its own.
fn command(name: &str, spool: &std::path::Path) -> Command {
    let mut cmd = Command::new(example(name));
    cmd.env("OMNINODE_KAFKA_BOOTSTRAP_SERVERS", broker())
        .env("OMNINODE_SPOOL_DIR", spool)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

/// Waits for `child` at most `limit`; kills it after that.
fn wait_at_most(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs example `name` to its end; returns its stdout after checking it succeeded.
fn run(name: &str) -> String {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let spool = common::spool_dir();
    let mut child = command(name, spool.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes while it runs, so a chatty example never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = wait_at_most(&mut child, RUN_LIMIT);
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "example {name}: {status}\nstdout:\n{out}\nstderr:\n{err}"
    );
    out
}

/// The delivery report (`delivered=N dead_lettered=N ...`) in the last line that has one.
fn report(out: &str) -> HashMap<String, u64> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("delivered="))
        .unwrap_or_else(|| panic!("no delivery report in:\n{out}"));
    line.split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn quickstart_reads_its_envelopes_back() {
    let out = run("quickstart");
    assert!(out.contains("# using the broker at"), "{out}");
    let r = report(&out);
    assert!(r["delivered"] > 0, "{out}");
    assert_eq!(r["dropped"], 0, "{out}");
    // It prints each envelope it read back as one JSON line (from the start of every
    // topic: on a shared broker, not necessarily its own).
    let envelopes = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["event_type"]
                .as_str()
                .is_some_and(|t| t.starts_with("omninode."))
        })
        .count();
    assert!(envelopes >= 1, "no envelope read back:\n{out}");
}

#[test]
fn agent_example_delivers_its_agent_events() {
    let out = run("agent");
    assert!(out.contains("routed to coder"), "{out}");
    let r = report(&out);
    assert!(r["delivered"] >= 6, "{out}");
    assert_eq!((r["spooled"], r["dropped"]), (0, 0), "{out}");
}

#[test]
fn audit_example_delivers_its_audit_and_security_events() {
    let out = run("audit");
    let r = report(&out);
    assert!(r["delivered"] >= 3, "{out}");
    assert_eq!(r["dropped"], 0, "{out}");
}

#[test]
fn catalog_example_delivers_every_catalog_type() {
    let out = run("catalog");
    let r = report(&out);
    assert!(r["delivered"] >= 19, "{out}");
    assert_eq!((r["dead_lettered"], r["dropped"]), (0, 0), "{out}");
}

#[test]
fn consumer_example_handles_and_dead_letters() {
    let out = run("consumer");
    assert!(out.contains(": Done"), "{out}");
    assert!(out.contains(": DeadLettered"), "{out}");
}

/// One HTTP/1.1 request on a fresh connection; the status code and the body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    (code, body.to_owned())
}

/// The value of the series `series` (name and labels) on a `/metrics` page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Kills the child when a failed assertion unwinds past it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn service_serves_moves_its_metrics_and_stops_on_sigterm() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let spool = common::spool_dir();
    let mut child = KillOnDrop(
        command("service", spool.path())
            .arg("0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let next_line = |what: &str| -> String {
        lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the service printed no {what}"))
    };
    let addr = loop {
        let line = next_line("address");
        if let Some(a) = line.strip_prefix("listening on http://") {
            break a.to_owned();
        }
    };

    let (code, body) = get(&addr, "/health");
    assert_eq!(code, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "running", "{body}");

    let delivered = "omninode_events_delivered_total{service=\"service-example\"}";
    // Scrapes until the delivered counter passes `above` (it is published every second).
    let scrape_above = |above: f64| -> (f64, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, page) = get(&addr, "/metrics");
            assert_eq!(code, 200, "{page}");
            match sample(&page, delivered) {
                Some(v) if v > above => return (v, page),
                _ if Instant::now() > deadline => panic!("{delivered} not above {above}:\n{page}"),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    };

    for task in ["alpha", "beta"] {
        let (code, body) = get(&addr, &format!("/run/{task}"));
        assert_eq!(code, 200, "{body}");
        assert!(body.contains(&format!("summarize {task}: done")), "{body}");
    }
    let (first, page) = scrape_above(0.0);
    assert!(
        page.contains("omninode_events_enqueued_total{service=\"service-example\"}"),
        "{page}"
    );
    assert!(
        page.contains(
            "omninode_events_dropped_total{service=\"service-example\",reason=\"queue_full\"} 0"
        ),
        "{page}"
    );
    let (code, _) = get(&addr, "/run/gamma");
    assert_eq!(code, 200);
    let (second, _) = scrape_above(first);
    assert!(second > first);

    // SIGTERM: the server stops, then the pipeline shuts down and reports.
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = wait_at_most(child, Duration::from_secs(60));
    assert!(status.success(), "{status}");
    let rest: Vec<String> = lines.try_iter().collect();
    let rest = rest.join("\n");
    let r = report(&rest);
    assert!(r["delivered"] as f64 >= second, "{rest}");
    assert_eq!((r["spooled"], r["dropped"]), (0, 0), "{rest}");
}
