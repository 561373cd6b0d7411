//! The pipeline against a real broker over TLS (`security.protocol=SSL`, hostname
//! verification on, librdkafka's default): a `tansu` process behind a rustls terminator
//! (`common/tls.rs`), certificates made per test with rcgen.
//!
//! - the right CA: audit events are delivered and read back over TLS;
//! - a CA that did not sign the server certificate, an expired server certificate, and a
//!   server certificate for another host name: nothing is delivered, dropped or
//!   dead-lettered, every audit event waits in the spool, and a pipeline started next with
//!   a trusted setup (the right CA; a renewed certificate) on the same spool directory
//!   delivers every one of them to its topic, exactly once.
//!
//! SASL/SCRAM is not tested here. tansu 0.6 speaks SCRAM-SHA-256/512, but its `dynostore`
//! storage (`memory://`, `s3://`: the only engine of the build `scripts/test` installs)
//! never stores a SCRAM credential, so every login ends in `unknown-user`; and
//! `tansu user create` cannot reach a broker started with `--authentication` (it does not
//! authenticate itself: `NotAuthenticated`).

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::AUDIT;
use tls::{Ca, SecuredCluster, Validity};
use tracing_subscriber::prelude::*;

/// Audit events per test.
const N: usize = 30;
/// librdkafka's `message.timeout.ms` while the TLS setup is wrong: short, so the failing
/// pipeline gives its events to the spool within seconds.
const FAILING_MESSAGE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound of each shutdown.
const SHUTDOWN: Duration = Duration::from_secs(5);

/// A pipeline to `cluster` over TLS, trusting the CA in `ca_pem`.
fn tls_builder(
    cluster: &SecuredCluster,
    prefix: &str,
    spool: &Path,
    ca_pem: &Path,
) -> tracing_omninode::Builder {
    SecuredCluster::tls_props(ca_pem).into_iter().fold(
        common::builder(&cluster.bootstrap(), prefix, spool),
        |b, (k, v)| b.kafka_property(k, v),
    )
}

/// Emits `n` audit events through `layer`; returns their resources.
fn emit_audits(layer: tracing_omninode::OmniNodeLayer, tag: &str, n: usize) -> Vec<String> {
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        (0..n)
            .map(|i| {
                let resource = format!("doc/{tag}/{i}");
                common::audit(&resource);
                resource
            })
            .collect()
    })
}

/// How long a read-back waits for one more record before it takes the topic as read.
const IDLE: Duration = Duration::from_secs(5);

/// Reads the audit topic back over TLS and checks it holds exactly `resources`, once each,
/// with distinct event ids; and that nothing went to its DLQ.
fn assert_on_topic_exactly_once(cluster: &SecuredCluster, prefix: &str, resources: &[String]) {
    let topic = format!("{prefix}{AUDIT}");
    let got = cluster.consume(&topic, IDLE);
    assert_eq!(got.len(), resources.len(), "records read back from {topic}");
    let ids: HashSet<&str> = got
        .iter()
        .map(|v| v["event_id"].as_str().expect("event_id"))
        .collect();
    assert_eq!(ids.len(), resources.len(), "no duplicate event ids");
    let got_resources: HashSet<&str> = got
        .iter()
        .map(|v| v["payload"]["resource"].as_str().expect("payload.resource"))
        .collect();
    let want: HashSet<&str> = resources.iter().map(String::as_str).collect();
    assert_eq!(got_resources, want);
    for v in &got {
        assert_eq!(v["event_type"], AUDIT, "{v}");
    }
    let dlq = cluster.consume(&format!("{topic}.dlq"), IDLE);
    assert!(dlq.is_empty(), "nothing dead-lettered: {dlq:?}");
}

/// Each distinct message in `failures`, with how often it occurred.
fn tally(failures: &[String]) -> BTreeMap<&str, usize> {
    let mut t = BTreeMap::new();
    for f in failures {
        *t.entry(f.as_str()).or_default() += 1;
    }
    t
}

#[test]
fn tls_with_the_right_ca_delivers_and_reads_back() {
    let Some(cluster) = SecuredCluster::start_or_skip("tls_with_the_right_ca") else {
        return;
    };
    let prefix = common::unique_prefix("tls-ok");
    cluster.provision(&prefix);
    let spool = common::spool_dir();
    let (layer, guard) = tls_builder(&cluster, &prefix, spool.path(), &cluster.ca.pem_path)
        .build()
        .unwrap();

    let started = Instant::now();
    let resources = emit_audits(layer, "ok", N);
    let m = common::wait_for(&guard, Duration::from_secs(30), |m| m.delivered >= N as u64);
    let delivered_in = started.elapsed();
    let t = Instant::now();
    let report = guard.shutdown(SHUTDOWN).unwrap();
    eprintln!(
        "right CA: {N} audits delivered in {delivered_in:?}, shutdown took {:?}; {m:?}; {report:?}; \
         {} TLS handshakes",
        t.elapsed(),
        cluster.tls.handshakes_ok()
    );
    assert_eq!(report.delivered, N as u64, "{report:?}");
    assert_eq!(
        (
            report.spooled,
            report.dropped,
            report.dead_lettered,
            report.skipped
        ),
        (0, 0, 0, 0),
        "{report:?}"
    );
    assert!(common::spool_is_empty(spool.path()));
    // librdkafka may drop a connection mid-handshake (`tls handshake eof`) when it has
    // another one to the same broker; it never refuses the certificate.
    let failures = cluster.tls.failures();
    assert!(
        !failures.iter().any(|f| f.contains("alert")),
        "the client accepted the certificate: {:?}",
        tally(&failures)
    );
    assert_on_topic_exactly_once(&cluster, &prefix, &resources);
}

/// What is wrong while the first pipeline runs.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The client trusts another CA than the one that signed the server certificate.
    UnknownCa,
    /// The server presents a certificate of the right CA whose validity ended.
    ExpiredCertificate,
    /// The server presents a valid certificate of the right CA for another host name:
    /// refused only because hostname verification is on (librdkafka's default).
    WrongHostname,
}

/// A pipeline runs while `fault` makes every TLS handshake fail: nothing is delivered or
/// dropped, every audit event ends in the spool. Then, with the fault repaired, a new
/// pipeline on the same spool directory replays them all to the topic, exactly once.
fn nothing_lost_across_a_tls_fault(fault: Fault, test: &str) {
    let Some(cluster) = SecuredCluster::start_or_skip(test) else {
        return;
    };
    let prefix = common::unique_prefix("tls-fault");
    // Topics first, while the cluster is reachable with its valid certificate.
    cluster.provision(&prefix);
    let client_ca = match fault {
        Fault::UnknownCa => Ca::new(cluster.dir.path(), "wrong").pem_path,
        Fault::ExpiredCertificate | Fault::WrongHostname => {
            let validity = match fault {
                Fault::ExpiredCertificate => Validity::Expired,
                _ => Validity::OtherHost,
            };
            cluster
                .tls
                .set_certificate(&cluster.ca.server_cert(validity));
            cluster.ca.pem_path.clone()
        }
    };
    let spool = common::spool_dir();

    // 1. The failing pipeline.
    let (ok_before, failed_before) = (cluster.tls.handshakes_ok(), cluster.tls.failures().len());
    let (layer, guard) = tls_builder(&cluster, &prefix, spool.path(), &client_ca)
        .message_timeout(FAILING_MESSAGE_TIMEOUT)
        .build()
        .unwrap();
    let started = Instant::now();
    let resources = emit_audits(layer, "fault", N);
    let m = common::wait_for(&guard, Duration::from_secs(45), |m| {
        m.spooled + m.dead_lettered + m.dropped >= N as u64
    });
    let settled_in = started.elapsed();
    // The failure is named, with where to look, and the pipeline is degraded meanwhile.
    let health = guard.handle().health();
    assert_eq!(
        health.status,
        tracing_omninode::HealthStatus::Degraded,
        "{health:#?}"
    );
    let tls = health
        .problems
        .iter()
        .find(|p| p.condition == tracing_omninode::diagnostics::Condition::TlsFailed)
        .unwrap_or_else(|| panic!("{fault:?}: no TLS problem in {health:#?}"));
    assert!(tls.message.contains("ssl.ca.location"), "{}", tls.message);
    let t = Instant::now();
    let report = guard.shutdown(SHUTDOWN).unwrap();
    let shutdown_took = t.elapsed();
    let failures = cluster.tls.failures().split_off(failed_before);
    eprintln!(
        "{fault:?}: settled after {settled_in:?}, shutdown took {shutdown_took:?}; {m:?}; \
         {report:?}; failed handshakes: {:?}",
        tally(&failures)
    );
    assert_eq!(
        cluster.tls.handshakes_ok(),
        ok_before,
        "no handshake succeeded"
    );
    assert!(!failures.is_empty(), "the client reached the terminator");
    let alert = match fault {
        Fault::UnknownCa => "UnknownCA",
        Fault::ExpiredCertificate => "CertificateExpired",
        Fault::WrongHostname => "BadCertificate",
    };
    assert!(
        failures.iter().any(|f| f.contains(alert)),
        "the client refused the certificate with a {alert} alert: {:?}",
        tally(&failures)
    );
    assert!(
        shutdown_took < SHUTDOWN + Duration::from_secs(1),
        "{shutdown_took:?}"
    );
    assert_eq!(report.delivered, 0, "{report:?}");
    assert_eq!(report.dropped, 0, "nothing dropped: {report:?}");
    assert_eq!(report.skipped, 0, "{report:?}");
    assert_eq!(
        report.dead_lettered, 0,
        "a TLS failure is no reason to dead-letter: {report:?}"
    );
    assert_eq!(report.spooled, N as u64, "every audit spooled: {report:?}");
    assert!(!common::spool_is_empty(spool.path()));

    // 2. The fault repaired: nothing reached the topic, and the next pipeline on the same
    // spool directory replays every event.
    if let Fault::ExpiredCertificate | Fault::WrongHostname = fault {
        cluster
            .tls
            .set_certificate(&cluster.ca.server_cert(Validity::Valid));
    }
    let topic = format!("{prefix}{AUDIT}");
    let early = cluster.consume(&topic, IDLE);
    assert!(early.is_empty(), "nothing reached {topic}: {early:?}");
    let (layer, guard) = tls_builder(&cluster, &prefix, spool.path(), &cluster.ca.pem_path)
        .build()
        .unwrap();
    assert_eq!(guard.spool_dir(), spool.path());
    let started = Instant::now();
    let m = common::wait_for(&guard, Duration::from_secs(60), |m| m.replayed >= N as u64);
    let replayed_in = started.elapsed();
    let t = Instant::now();
    let report = guard.shutdown(SHUTDOWN).unwrap();
    eprintln!(
        "{fault:?} repaired: replayed after {replayed_in:?}, shutdown took {:?}; {m:?}; {report:?}",
        t.elapsed()
    );
    // The layer shares the spool directory's lock with the worker.
    drop(layer);
    assert_eq!(m.replayed, N as u64, "{m:?}");
    assert_eq!(report.delivered, N as u64, "{report:?}");
    assert_eq!(
        (
            report.spooled,
            report.dropped,
            report.dead_lettered,
            report.skipped
        ),
        (0, 0, 0, 0),
        "{report:?}"
    );
    assert!(
        common::spool_is_empty(spool.path()),
        "replayed segments are removed"
    );
    assert_on_topic_exactly_once(&cluster, &prefix, &resources);
}

#[test]
fn tls_with_a_wrong_ca_spools_everything_and_a_fixed_pipeline_replays_it() {
    nothing_lost_across_a_tls_fault(Fault::UnknownCa, "tls_with_a_wrong_ca");
}

#[test]
fn tls_with_an_expired_server_certificate_spools_everything_and_replays_after_renewal() {
    nothing_lost_across_a_tls_fault(Fault::ExpiredCertificate, "tls_with_an_expired_certificate");
}

#[test]
fn tls_with_a_certificate_for_another_host_spools_everything_and_replays_after_renewal() {
    nothing_lost_across_a_tls_fault(Fault::WrongHostname, "tls_with_a_wrong_hostname");
}
