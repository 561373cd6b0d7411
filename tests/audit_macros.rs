//! `audit!`/`security!` take `%`/`?` sigils and a trailing format message (shipped as the
//! payload's `message`), and are emitted at ERROR, so a subscriber limited to WARN (as with
//! `RUST_LOG=warn`) still ships them.

mod common;

use std::time::Duration;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::prelude::*;

/// Shipped through its `Debug` form.
#[derive(Debug)]
#[allow(dead_code)]
struct DocId(u32);

struct User<'a>(&'a str);

impl std::fmt::Display for User<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "user:{}", self.0)
    }
}

#[test]
fn sigils_and_a_message_ship_and_a_warn_subscriber_keeps_them() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("macros");
    common::provision(&bootstrap, &prefix);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::WARN)
        .with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let user = User("alice");
        let doc = DocId(7);
        tracing::info!("an INFO log: below WARN, not shipped");
        tracing_omninode::audit!(
            action = "doc.read",
            actor = %user,
            resource = ?doc,
            outcome = "success",
            pages = 3u64,
            "read {} pages of {:?}",
            3,
            doc
        );
        tracing_omninode::audit!(
            tenant_id = %"globex",
            action = "doc.delete",
            actor = "bob",
            resource = "doc/8",
            outcome = "failure",
        );
        tracing_omninode::security!(
            event_type = "permission_check",
            user_id = %user,
            resource = ?doc,
            decision = "deny",
            "no role grants {}",
            "doc.write"
        );
    });
    let report = guard.shutdown(Duration::from_secs(20)).unwrap();
    assert_eq!(report.dead_lettered, 0, "{report:?}");
    assert_eq!(report.delivered, 3, "{report:?}");
    let got = common::consume(
        &bootstrap,
        &common::event_topics(&prefix),
        3,
        Duration::from_secs(20),
    );
    let find = |action: &str| {
        got.iter()
            .map(|c| &c.value)
            .find(|v| v["payload"]["action"] == action)
            .unwrap_or_else(|| panic!("{action}"))
    };
    let read = &find("doc.read")["payload"];
    assert_eq!(read["actor"], "user:alice");
    assert_eq!(read["resource"], "DocId(7)");
    assert_eq!(read["pages"], 3);
    assert_eq!(read["message"], "read 3 pages of DocId(7)");
    let delete = find("doc.delete");
    assert_eq!(delete["tenant_id"], "globex");
    assert!(delete["payload"].get("message").is_none());
    let sec = got
        .iter()
        .map(|c| &c.value)
        .find(|v| v["event_type"] == "omninode.logging.security.v1")
        .unwrap();
    assert_eq!(sec["payload"]["user_id"], "user:alice");
    assert_eq!(sec["payload"]["resource"], "DocId(7)");
    assert_eq!(sec["payload"]["message"], "no role grants doc.write");
}
