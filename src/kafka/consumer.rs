//! Reading topics for the operations tools: topic discovery, a [`Reader`] that starts at
//! the beginning, the end, a time or a consumer group's committed offsets, stops at the end
//! of every partition unless it follows, and hands out owned [`Record`]s (no rdkafka type).
//! Offsets are committed only when asked ([`Reader::commit`]), synchronously.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::client::{ClientOptions, OpsError};

/// One record read from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// The record's timestamp in milliseconds since the epoch, when it has one.
    pub timestamp_ms: Option<i64>,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
    /// Headers in order (a header without a value has an empty one).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    /// The first header of that name, as text.
    pub fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v))
    }

    /// The key as text.
    pub fn key_text(&self) -> Option<Cow<'_, str>> {
        self.key.as_deref().map(String::from_utf8_lossy)
    }

    /// `topic[partition]@offset`, where the record is.
    pub fn position(&self) -> String {
        format!("{}[{}]@{}", self.topic, self.partition, self.offset)
    }
}

/// Where a [`Reader`] starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The oldest record kept.
    Beginning,
    /// After the newest record.
    End,
    /// The first record at or after this time.
    Time(SystemTime),
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Partition ids.
    pub partitions: Vec<i32>,
}

fn consumer(opts: &ClientOptions, group: &str) -> Result<BaseConsumer, OpsError> {
    opts.client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .map_err(|e| OpsError::kafka("creating the consumer", e))
}

fn topics_of(c: &BaseConsumer, opts: &ClientOptions) -> Result<Vec<TopicInfo>, OpsError> {
    let md = c
        .fetch_metadata(None, opts.timeout)
        .map_err(|_| opts.unreachable())?;
    let mut out: Vec<TopicInfo> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| TopicInfo {
            name: t.name().to_owned(),
            partitions: t.partitions().iter().map(|p| p.id()).collect(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Every topic the cluster has, sorted by name. An unreachable cluster is an
/// [`OpsError::Unreachable`] after the options' timeout.
pub fn list_topics(opts: &ClientOptions) -> Result<Vec<TopicInfo>, OpsError> {
    topics_of(&consumer(opts, "omninode-events-metadata")?, opts)
}

/// Reads a set of partitions, each from its own start offset; without `follow` it stops
/// at the high watermark each partition had when the reader was opened.
pub struct Reader {
    consumer: BaseConsumer,
    /// Per `(topic, partition)`: the next offset to read and the end (exclusive).
    parts: BTreeMap<(String, i32), (i64, i64)>,
    /// The last poll found nothing buffered.
    idle: bool,
    follow: bool,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("parts", &self.parts)
            .field("follow", &self.follow)
            .finish_non_exhaustive()
    }
}

/// Where one partition starts, resolved before assigning.
enum From {
    Start(Start),
    Offset(i64),
}

impl Reader {
    /// Reads `topics` (every partition) from `start`, never committing anything (a fresh
    /// throw-away group id). Each topic must exist.
    pub fn open(
        opts: &ClientOptions,
        topics: &[String],
        start: Start,
        follow: bool,
    ) -> Result<Reader, OpsError> {
        let group = format!("omninode-events-tail-{}", uuid::Uuid::now_v7());
        let c = consumer(opts, &group)?;
        let parts = Self::partitions(&c, opts, topics)?
            .into_iter()
            .map(|(t, p)| (t, p, From::Start(start)))
            .collect();
        Self::assign(c, opts, parts, follow)
    }

    /// Reads `topics` from `group`'s committed offsets (`fallback` where the group has
    /// none) up to the end of each partition; [`Reader::commit`] commits for the group.
    pub fn open_group(
        opts: &ClientOptions,
        topics: &[String],
        group: &str,
        fallback: Start,
    ) -> Result<Reader, OpsError> {
        let c = consumer(opts, group)?;
        let parts = Self::partitions(&c, opts, topics)?;
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &parts {
            tpl.add_partition(t, *p);
        }
        let committed = c
            .committed_offsets(tpl, opts.timeout)
            .map_err(|e| OpsError::kafka("reading the group's committed offsets", e))?;
        let parts = parts
            .into_iter()
            .map(|(t, p)| {
                let from = match committed.find_partition(&t, p).map(|e| e.offset()) {
                    Some(Offset::Offset(n)) => From::Offset(n),
                    _ => From::Start(fallback),
                };
                (t, p, from)
            })
            .collect();
        Self::assign(c, opts, parts, false)
    }

    /// Reads each `(topic, partition)` from the given offset, up to its end now unless
    /// `follow`.
    pub fn open_ranges(
        opts: &ClientOptions,
        ranges: &[(String, i32, i64)],
        follow: bool,
    ) -> Result<Reader, OpsError> {
        let group = format!("omninode-events-range-{}", uuid::Uuid::now_v7());
        let c = consumer(opts, &group)?;
        let parts = ranges
            .iter()
            .map(|(t, p, o)| (t.clone(), *p, From::Offset(*o)))
            .collect();
        Self::assign(c, opts, parts, follow)
    }

    fn partitions(
        c: &BaseConsumer,
        opts: &ClientOptions,
        topics: &[String],
    ) -> Result<Vec<(String, i32)>, OpsError> {
        let known = topics_of(c, opts)?;
        let mut out = Vec::new();
        for t in topics {
            let info = known
                .iter()
                .find(|k| &k.name == t)
                .ok_or_else(|| OpsError::NoSuchTopic(t.clone()))?;
            out.extend(info.partitions.iter().map(|p| (t.clone(), *p)));
        }
        Ok(out)
    }

    fn assign(
        c: BaseConsumer,
        opts: &ClientOptions,
        parts: Vec<(String, i32, From)>,
        follow: bool,
    ) -> Result<Reader, OpsError> {
        let mut times = TopicPartitionList::new();
        let mut resolved = BTreeMap::new();
        for (t, p, from) in parts {
            let (low, high) = c
                .fetch_watermarks(&t, p, opts.timeout)
                .map_err(|e| OpsError::kafka("reading watermarks", e))?;
            let next = match from {
                From::Offset(n) => n.clamp(low, high),
                From::Start(Start::Beginning) => low,
                From::Start(Start::End) => high,
                From::Start(Start::Time(at)) => {
                    let ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()) as i64;
                    times
                        .add_partition_offset(&t, p, Offset::Offset(ms))
                        .map_err(|e| OpsError::kafka("looking up offsets by time", e))?;
                    high
                }
            };
            resolved.insert((t, p), (next, high));
        }
        if times.count() > 0 {
            let found = c
                .offsets_for_times(times, opts.timeout)
                .map_err(|e| OpsError::kafka("looking up offsets by time", e))?;
            for e in found.elements() {
                if let (Offset::Offset(n), Some(part)) = (
                    e.offset(),
                    resolved.get_mut(&(e.topic().to_owned(), e.partition())),
                ) {
                    part.0 = n.min(part.1);
                }
            }
        }
        let mut tpl = TopicPartitionList::new();
        for ((t, p), (next, _)) in &resolved {
            tpl.add_partition_offset(t, *p, Offset::Offset(*next))
                .map_err(|e| OpsError::kafka("assigning partitions", e))?;
        }
        c.assign(&tpl)
            .map_err(|e| OpsError::kafka("assigning partitions", e))?;
        Ok(Reader {
            consumer: c,
            parts: resolved,
            idle: false,
            follow,
        })
    }

    /// The next offset to read of every partition.
    pub fn positions(&self) -> Vec<(String, i32, i64)> {
        self.parts
            .iter()
            .map(|((t, p), (next, _))| (t.clone(), *p, *next))
            .collect()
    }

    /// Whether every partition has been read up to its end (never, when following).
    ///
    /// The end is the high watermark when the reader was opened, and the reader must also
    /// have found nothing more buffered: some brokers (tansu) report a high watermark one
    /// past the *first* record of the last batch, so the rest of that batch is read too.
    pub fn finished(&self) -> bool {
        !self.follow && self.idle && self.parts.values().all(|(next, end)| next >= end)
    }

    /// The next record, waiting at most `wait`; `None` when none came (or when
    /// [`Reader::finished`]). Each offset of a partition comes at most once, in order.
    pub fn next(&mut self, wait: Duration) -> Result<Option<Record>, OpsError> {
        if self.finished() {
            return Ok(None);
        }
        let polled = self.consumer.poll(wait);
        self.idle = polled.is_none();
        match polled {
            None => {
                self.catch_up();
                Ok(None)
            }
            Some(Err(e)) => Err(OpsError::kafka("reading", e)),
            Some(Ok(m)) => {
                let topic = m.topic().to_owned();
                if let Some(part) = self.parts.get_mut(&(topic.clone(), m.partition())) {
                    // Each offset once, in order: a broker that serves a batch again (tansu,
                    // asked for an offset inside a batch) must not repeat records.
                    if m.offset() < part.0 {
                        return Ok(None);
                    }
                    part.0 = m.offset() + 1;
                }
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Some(Record {
                    topic,
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp_ms: m.timestamp().to_millis(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers,
                }))
            }
        }
    }

    /// Control records (transaction markers) take offsets no record is read at: when
    /// nothing came, the fetch position says how far a partition really got.
    fn catch_up(&mut self) {
        if self.follow {
            return;
        }
        if let Ok(pos) = self.consumer.position() {
            for e in pos.elements() {
                if let (Offset::Offset(n), Some(part)) = (
                    e.offset(),
                    self.parts.get_mut(&(e.topic().to_owned(), e.partition())),
                ) {
                    part.0 = part.0.max(n);
                }
            }
        }
    }

    /// Commits `next_offset` (the offset of the next record to read) for each
    /// `(topic, partition)`, synchronously, for the reader's group.
    pub fn commit(&self, offsets: &[(String, i32, i64)]) -> Result<(), OpsError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in offsets {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))
                .map_err(|e| OpsError::kafka("committing offsets", e))?;
        }
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| OpsError::kafka("committing offsets", e))
    }
}
