//! The operations half: what an operator runs against a cluster to see a topic ([`tail`]),
//! check a stream ([`check`]), watch and count the dead-letter topics, and recover what was
//! dead-lettered. The `omninode-events` binary (feature `cli`) is a thin shell over these
//! functions.
//!
//! Everything here reads through [`Reader`] and produces through the crate's own
//! producer; no rdkafka type appears in this API. Nothing here commits a consumer offset
//! except [`replay`], which commits its own group's offsets only after the broker
//! acknowledged what it re-published.

pub mod check;
pub mod format;
pub mod monitor;
pub mod replay;
pub mod stats;
pub mod tail;
#[cfg(test)]
mod test_support;

pub use crate::kafka::admin_ops::create_catalog_topics;
pub use crate::kafka::client::{ClientOptions, OpsError, DEFAULT_CLIENT_TIMEOUT};
pub use crate::kafka::consumer::{list_topics, Reader, Record, Start, TopicInfo};

use crate::contract::catalog::{lookup, CATALOG};
use crate::contract::dlq::DLQ_SUFFIX;

/// How long one poll of a reader waits before the tools look at their stop flag again.
pub(crate) const POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// The Kafka topic an operator means by `name`: used as given when it already starts with
/// the prefix, else `prefix + name` (so `omninode.logging.audit.v1` works under a prefix).
pub fn topic_name(prefix: &str, name: &str) -> String {
    if name.starts_with(prefix) {
        name.to_owned()
    } else {
        format!("{prefix}{name}")
    }
}

/// The catalog event type a topic under `prefix` carries, and whether it is the DLQ twin.
/// `None` for a topic outside the catalog.
pub fn catalog_topic(prefix: &str, topic: &str) -> Option<(&'static str, bool)> {
    let rest = topic.strip_prefix(prefix)?;
    let (event_type, dlq) = match rest.strip_suffix(DLQ_SUFFIX) {
        Some(t) => (t, true),
        None => (rest, false),
    };
    lookup(event_type).map(|k| (k.event_type, dlq))
}

/// The catalog topics (and DLQ twins) under `prefix` that the cluster has, in catalog
/// order.
pub fn existing_catalog_topics(
    opts: &ClientOptions,
    prefix: &str,
    with_dlq: bool,
) -> Result<Vec<String>, OpsError> {
    let have = list_topics(opts)?;
    let exists = |t: &str| have.iter().any(|i| i.name == t);
    Ok(CATALOG
        .iter()
        .flat_map(|k| {
            let t = format!("{prefix}{}", k.event_type);
            let d = format!("{t}{DLQ_SUFFIX}");
            [Some(t), with_dlq.then_some(d)]
        })
        .flatten()
        .filter(|t| exists(t))
        .collect())
}

/// Every `*.dlq` topic under `prefix` that the cluster has, catalog or not.
pub fn dlq_topics(opts: &ClientOptions, prefix: &str) -> Result<Vec<TopicInfo>, OpsError> {
    Ok(list_topics(opts)?
        .into_iter()
        .filter(|t| t.name.starts_with(prefix) && t.name.ends_with(DLQ_SUFFIX))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_under_a_prefix() {
        assert_eq!(topic_name("stg.", "omninode.a.v1"), "stg.omninode.a.v1");
        assert_eq!(topic_name("stg.", "stg.omninode.a.v1"), "stg.omninode.a.v1");
        assert_eq!(topic_name("", "x"), "x");
        assert_eq!(
            catalog_topic("stg.", "stg.omninode.logging.audit.v1.dlq"),
            Some(("omninode.logging.audit.v1", true))
        );
        assert_eq!(
            catalog_topic("stg.", "stg.omninode.logging.audit.v1"),
            Some(("omninode.logging.audit.v1", false))
        );
        assert_eq!(catalog_topic("stg.", "omninode.logging.audit.v1"), None);
        assert_eq!(catalog_topic("", "omninode.nope.v1"), None);
    }
}
