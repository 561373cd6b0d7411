//! Running the `omninode-events` binary from a test: against a broker and a topic prefix,
//! with its exit code, stdout and stderr.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_omninode-events");

/// What one run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Run {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// The command with the broker and the prefix set, no colour, no inherited OMNINODE_*.
pub fn command(bootstrap: &str, prefix: &str, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .args(["--bootstrap-servers", bootstrap, "--topic-prefix", prefix])
        .env_remove("OMNINODE_KAFKA_BOOTSTRAP_SERVERS")
        .env_remove("OMNINODE_TOPIC_PREFIX")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

/// Runs the command to its end.
pub fn run(bootstrap: &str, prefix: &str, args: &[&str]) -> Run {
    let started = Instant::now();
    let out = command(bootstrap, prefix, args)
        .output()
        .expect("run omninode-events");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// Runs the command and checks that it exited with `code`.
pub fn run_ok(bootstrap: &str, prefix: &str, args: &[&str], code: i32) -> Run {
    let r = run(bootstrap, prefix, args);
    assert_eq!(
        r.code,
        Some(code),
        "{args:?}\nstdout:\n{}\nstderr:\n{}",
        r.stdout,
        r.stderr
    );
    r
}

/// Runs `body` with a test pipeline (`common::builder`, changed by `configure`) as the
/// subscriber, shuts the pipeline down and returns its report.
pub fn pipeline(
    bootstrap: &str,
    prefix: &str,
    configure: impl FnOnce(tracing_omninode::Builder) -> tracing_omninode::Builder,
    body: impl FnOnce(),
) -> tracing_omninode::Report {
    use tracing_subscriber::prelude::*;
    let spool = crate::common::spool_dir();
    let (layer, guard) = configure(crate::common::builder(bootstrap, prefix, spool.path()))
        .build()
        .expect("a valid test pipeline");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), body);
    guard
        .shutdown(Duration::from_secs(20))
        .expect("the pipeline shuts down")
}

/// `n` audit events dead-lettered as NON_RETRYABLE_POLICY (`TopicAuthorizationFailed`) by
/// a real pipeline on librdkafka's mock cluster, the only way to make a broker refuse a
/// topic here, read back from the mock's DLQ topic.
pub fn policy_dead_letters(prefix: &str, n: usize) -> Vec<crate::common::Consumed> {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let mock = crate::common::mock(prefix);
    let bootstrap = mock.bootstrap_servers();
    // One refusal; librdkafka then keeps the topic marked failed, so every event of the
    // burst is refused the same way.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    let report = pipeline(&bootstrap, prefix, |b| b, || audits(n, "success"));
    assert_eq!(
        (report.dead_lettered, report.delivered),
        (n as u64, 0),
        "{report:?}"
    );
    let dlq = format!("{prefix}{}.dlq", crate::common::AUDIT);
    let got = crate::common::consume(&bootstrap, &[dlq], n, Duration::from_secs(10));
    assert_eq!(got.len(), n);
    got
}

/// Writes `value` to `topic` with `key` and `headers`, alone in its produce request (tansu
/// cannot fetch from the middle of a batch: it returns the next one).
pub fn write(
    p: &rdkafka::producer::BaseProducer,
    topic: &str,
    key: &str,
    headers: &[(&str, &str)],
    value: &str,
) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseRecord, Producer};
    let mut h = OwnedHeaders::new();
    for (k, v) in headers {
        h = h.insert(Header {
            key: k,
            value: Some(*v),
        });
    }
    p.send(BaseRecord::to(topic).key(key).payload(value).headers(h))
        .map_err(|(e, _)| e)
        .expect("produce");
    p.flush(Duration::from_secs(10)).expect("flush");
}

/// A producer for [`write`].
pub fn producer(bootstrap: &str) -> rdkafka::producer::BaseProducer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer")
}

/// Emits `n` audit events (`doc/0`, `doc/1`, ...) with `outcome`; one the catalog does not
/// allow makes the pipeline dead-letter them.
pub fn audits(n: usize, outcome: &str) {
    for i in 0..n {
        let resource = format!("doc/{i}");
        tracing_omninode::audit!(
            action = "doc.delete",
            actor = "alice",
            resource = resource.as_str(),
            outcome = outcome
        );
    }
}

/// Stops a child with SIGTERM and returns its exit code.
pub fn terminate(child: &mut std::process::Child) -> Option<i32> {
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    child.wait().expect("wait for the child").code()
}

/// Runs `cmd` to its end with `input` on its stdin.
pub fn with_stdin(mut cmd: Command, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run omninode-events");
    child
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for omninode-events")
}
