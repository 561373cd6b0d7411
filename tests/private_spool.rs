//! The spool is private to its owner: a directory others may write to is refused at build
//! time with a message that says how to fix it, and a replay sends only records addressed to
//! an OmniNode catalog topic under the configured prefix, never what another local user
//! planted in a spool file.

mod common;

use std::time::Duration;

use common::AUDIT;
use tracing_omninode::spool::{Spool, SpoolLimits};
use tracing_omninode::wire::WireRecord;

#[cfg(unix)]
#[test]
fn a_directory_others_may_write_is_a_build_error_that_says_how_to_fix_it() {
    use std::os::unix::fs::PermissionsExt;
    let spool = common::spool_dir();
    std::fs::set_permissions(spool.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = common::builder(&common::closed_port(), "p.", spool.path())
        .build()
        .expect_err("a world-writable spool directory is refused");
    let text = err.to_string();
    assert!(text.contains("chmod 700"), "{text}");
    assert!(text.contains(&spool.path().display().to_string()), "{text}");
}

fn record(topic: &str, resource: &str) -> WireRecord {
    WireRecord {
        topic: topic.to_owned(),
        key: "acme".into(),
        headers: vec![("x-event-type".into(), AUDIT.into())],
        value: format!(r#"{{"payload":{{"resource":"{resource}"}}}}"#),
    }
}

#[test]
fn a_replay_sends_only_catalog_topics_under_the_prefix() {
    let prefix = common::unique_prefix("planted");
    let mock = common::mock(&prefix);
    mock.create_topic("payments.v1", 1, 1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    let spool = common::spool_dir();
    {
        let mut s = Spool::open(spool.path(), SpoolLimits::default()).unwrap();
        for r in [
            record(&format!("{prefix}{AUDIT}"), "doc/1"),
            record("payments.v1", "planted"),
            record(&format!("other.{AUDIT}"), "other-prefix"),
        ] {
            s.append(&r.to_bytes()).unwrap();
        }
        s.sync().unwrap();
    }
    let (_layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    let m = common::wait_for(&guard, Duration::from_secs(10), |m| {
        m.replayed == 1 && m.spool_rejected == 2
    });
    assert_eq!((m.replayed, m.spool_rejected), (1, 2), "{m:?}");
    guard.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(
        common::records_on(&bootstrap, &format!("{prefix}{AUDIT}")),
        1
    );
    assert_eq!(common::records_on(&bootstrap, "payments.v1"), 0);
}
