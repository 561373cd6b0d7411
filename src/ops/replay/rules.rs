//! The rules of a replay: what is in scope, what is refused and why, what is re-sent.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::contract::dlq::{
    DlqRecord, OriginalEvent, DLQ_HEADER_PREFIX, DLQ_SUFFIX, REPLAY_COUNT_HEADER,
};
use crate::contract::timestamp::Timestamp;
use crate::contract::validate::validate_envelope;
use crate::contract::wire::WireRecord;
use crate::kafka::consumer::Record;
use crate::ops::catalog_topic;

/// How many times a record may be replayed before it is refused (`--max-replays`).
pub const DEFAULT_MAX_REPLAYS: u32 = 3;

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct Request {
    /// The DLQ topic (full name, ending in `.dlq`).
    pub dlq_topic: String,
    /// The topic prefix the catalog topics carry.
    pub prefix: String,
    /// Only records of this error class.
    pub class: Option<String>,
    /// Only records of this error code.
    pub code: Option<String>,
    /// Only records dead-lettered at or after this time.
    pub since: Option<Timestamp>,
    /// Stop after this many records taken from the DLQ (re-sent or refused).
    pub max: Option<u64>,
    /// At most this many re-sends per second.
    pub rate: Option<f64>,
    /// Send nothing, commit nothing; report what would happen.
    pub dry_run: bool,
    /// The consumer group (default [`default_group`]).
    pub group: Option<String>,
    /// A record that was replayed this many times is refused.
    pub max_replays: u32,
}

impl Request {
    /// A replay of `dlq_topic` with no filter and the default limits.
    pub fn new(dlq_topic: impl Into<String>, prefix: impl Into<String>) -> Self {
        Request {
            dlq_topic: dlq_topic.into(),
            prefix: prefix.into(),
            class: None,
            code: None,
            since: None,
            max: None,
            rate: None,
            dry_run: false,
            group: None,
            max_replays: DEFAULT_MAX_REPLAYS,
        }
    }

    fn filters(&self) -> Option<String> {
        let f = [
            self.class.as_ref().map(|c| format!("class={c}")),
            self.code.as_ref().map(|c| format!("code={c}")),
            self.since.map(|s| format!("since={s}")),
        ];
        let f: Vec<String> = f.into_iter().flatten().collect();
        (!f.is_empty()).then(|| f.join(","))
    }

    fn in_scope(&self, d: &DlqRecord) -> bool {
        self.class.as_ref().is_none_or(|c| &d.error.class == c)
            && self.code.as_ref().is_none_or(|c| &d.error.code == c)
            && self.since.is_none_or(|s| d.dead_lettered_at >= s)
    }
}

/// The consumer group a replay uses unless told otherwise: one per DLQ topic, and one per
/// set of filters, so a filtered replay never moves the offsets of an unfiltered one.
pub fn default_group(req: &Request) -> String {
    let base = format!("omninode-events-replay.{}", req.dlq_topic);
    match req.filters() {
        None => base,
        Some(f) => format!("{base}.{:.8x}", Sha256::digest(f.as_bytes())),
    }
}

/// Why a record is not re-sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The value is not a DLQ record.
    NotDlqRecord(String),
    /// `original_topic` is not this DLQ's catalog twin under the prefix.
    ForeignTopic(String),
    /// `original_topic` does not exist on the cluster. [`run`](super::run) stops there
    /// with [`OpsError::NoSuchTopic`](crate::ops::OpsError::NoSuchTopic) instead of
    /// refusing: once the topic is created, the next run resumes with this record.
    MissingTopic(String),
    /// The original was truncated to fit the DLQ.
    Truncated,
    /// The original is text, not an envelope.
    NotAnEnvelope,
    /// The original envelope fails validation.
    Invalid(String),
    /// Replayed `count` times already, the limit.
    OverLimit {
        /// Replays so far.
        count: u32,
        /// The limit.
        limit: u32,
    },
}

impl Refusal {
    /// A short name for the summary.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::NotDlqRecord(_) => "not a DLQ record",
            Refusal::ForeignTopic(_) => "foreign original_topic",
            Refusal::MissingTopic(_) => "original topic missing",
            Refusal::Truncated => "truncated original",
            Refusal::NotAnEnvelope => "original not JSON",
            Refusal::Invalid(_) => "invalid envelope",
            Refusal::OverLimit { .. } => "replay limit reached",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotDlqRecord(why) => write!(f, "{why}"),
            Refusal::ForeignTopic(t) => write!(
                f,
                "original_topic `{t}` is not a catalog topic whose DLQ this is; re-publish it by hand if it is really wanted"
            ),
            Refusal::MissingTopic(t) => write!(
                f,
                "original topic `{t}` does not exist; create it (`omninode-events topics create`) and replay again"
            ),
            Refusal::Truncated => write!(
                f,
                "the original event was truncated to fit the DLQ and cannot be re-sent; recover it from the producer's logs"
            ),
            Refusal::NotAnEnvelope => write!(f, "the original event is not a JSON envelope"),
            Refusal::Invalid(why) => write!(
                f,
                "the original envelope is invalid ({why}); fix the producer, it would fail again"
            ),
            Refusal::OverLimit { count, limit } => write!(
                f,
                "replayed {count} times already (limit {limit}, --max-replays); it keeps failing: look at its error first"
            ),
        }
    }
}

/// What to do with one DLQ record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Re-send this record (the original), the `n`th replay.
    Send(WireRecord, u32),
    /// Report and do not send.
    Refuse(Refusal),
    /// Outside the filters.
    Skip,
}

/// Decides what happens to one record read from `req.dlq_topic`; `exists` says whether a
/// topic is on the cluster. Pure, so every rule has a unit test.
pub fn decide(rec: &Record, req: &Request, exists: &dyn Fn(&str) -> bool) -> Decision {
    match DlqRecord::parse(rec.value.as_deref().unwrap_or_default()) {
        Ok(d) => decide_parsed(rec, d, req, exists),
        Err(e) => Decision::Refuse(Refusal::NotDlqRecord(e.to_string())),
    }
}

/// [`decide`] for a record whose value was already parsed as `d`.
pub fn decide_parsed(
    rec: &Record,
    d: DlqRecord,
    req: &Request,
    exists: &dyn Fn(&str) -> bool,
) -> Decision {
    if !req.in_scope(&d) {
        return Decision::Skip;
    }
    let twin = req.dlq_topic.strip_suffix(DLQ_SUFFIX);
    let catalog = catalog_topic(&req.prefix, &d.original_topic).is_some_and(|(_, dlq)| !dlq);
    if twin != Some(d.original_topic.as_str()) || !catalog {
        return Decision::Refuse(Refusal::ForeignTopic(d.original_topic));
    }
    if !exists(&d.original_topic) {
        return Decision::Refuse(Refusal::MissingTopic(d.original_topic));
    }
    if d.original_event_truncated {
        return Decision::Refuse(Refusal::Truncated);
    }
    let count: u32 = rec
        .header(REPLAY_COUNT_HEADER)
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(0);
    if count >= req.max_replays {
        return Decision::Refuse(Refusal::OverLimit {
            count,
            limit: req.max_replays,
        });
    }
    let OriginalEvent::Json(original) = d.original_event else {
        return Decision::Refuse(Refusal::NotAnEnvelope);
    };
    let parsed: serde_json::Value =
        serde_json::from_str(&original).expect("DlqRecord::parse checked it is JSON");
    if let Err(problems) = validate_envelope(&parsed) {
        let first: Vec<String> = problems.iter().take(3).map(ToString::to_string).collect();
        return Decision::Refuse(Refusal::Invalid(first.join("; ")));
    }
    let mut headers: Vec<_> = rec
        .headers
        .iter()
        .filter(|(k, _)| !k.starts_with(DLQ_HEADER_PREFIX) && k != REPLAY_COUNT_HEADER)
        .map(|(k, v)| {
            (
                k.clone().into(),
                String::from_utf8_lossy(v).into_owned().into(),
            )
        })
        .collect();
    headers.push((REPLAY_COUNT_HEADER.into(), (count + 1).to_string().into()));
    Decision::Send(
        WireRecord {
            topic: d.original_topic,
            key: rec.key_text().unwrap_or_default().into_owned(),
            headers,
            value: original,
        },
        count + 1,
    )
}
