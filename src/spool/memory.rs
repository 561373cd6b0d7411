//! The memory-only store ([`SpoolMode::Memory`](crate::config::SpoolMode)) and [`Store`],
//! the one type the pipeline writes through whichever mode was chosen.
//!
//! The memory store keeps the disk spool's model (segments appended in order, records acked
//! one by one, sealed segments replayed oldest first, a size bound counting each record with
//! its [`RECORD_OVERHEAD`]) so the pipeline treats both alike; nothing of it survives the
//! process. Unlike the disk spool, an acked record's bytes are freed at once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::format::{Record, SegmentRead, RECORD_OVERHEAD};
use super::{RecordId, SegmentId, Spool, SpoolError, SpoolLimits};

/// What the memory store's errors and the pipeline's messages name as its place.
const MEMORY: &str = "(memory)";

/// A spool in memory: bounded, lost with the process.
#[derive(Debug)]
pub(crate) struct MemorySpool {
    limits: SpoolLimits,
    /// Records not acked yet, by segment and offset.
    segments: BTreeMap<u64, BTreeMap<u64, Vec<u8>>>,
    active: Option<(u64, u64)>,
    next_id: u64,
    total: u64,
    path: PathBuf,
}

impl MemorySpool {
    pub fn new(limits: SpoolLimits) -> Self {
        MemorySpool {
            limits,
            segments: BTreeMap::new(),
            active: None,
            next_id: 0,
            total: 0,
            path: PathBuf::from(MEMORY),
        }
    }

    fn append_all<'a>(
        &mut self,
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<RecordId>, (Vec<RecordId>, SpoolError)> {
        let mut ids = Vec::new();
        for payload in payloads {
            let frame = payload.len() as u64 + RECORD_OVERHEAD;
            let largest = self.limits.segment_bytes.min(self.limits.max_bytes);
            if frame > largest {
                let len = payload.len() as u64;
                return Err((ids, SpoolError::TooLarge { len, max: largest }));
            }
            if self.total + frame > self.limits.max_bytes {
                let max_bytes = self.limits.max_bytes;
                let dir = self.path.clone();
                return Err((ids, SpoolError::Full { max_bytes, dir }));
            }
            let (segment, offset) = match self.active {
                Some((id, size)) if size + frame <= self.limits.segment_bytes => (id, size),
                _ => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.segments.insert(id, BTreeMap::new());
                    (id, 0)
                }
            };
            self.active = Some((segment, offset + frame));
            self.segments
                .entry(segment)
                .or_default()
                .insert(offset, payload.to_vec());
            self.total += frame;
            ids.push(RecordId {
                segment: SegmentId(segment),
                offset,
            });
        }
        Ok(ids)
    }

    fn ack_all(&mut self, ids: &[RecordId]) {
        for id in ids {
            let Some(records) = self.segments.get_mut(&id.segment.0) else {
                continue;
            };
            if let Some(payload) = records.remove(&id.offset) {
                self.total -= payload.len() as u64 + RECORD_OVERHEAD;
            }
            self.remove_if_done(id.segment.0);
        }
    }

    /// Drops a sealed segment once nothing in it waits.
    fn remove_if_done(&mut self, id: u64) {
        let sealed = self.active.map(|(a, _)| a) != Some(id);
        if sealed && self.segments.get(&id).is_some_and(BTreeMap::is_empty) {
            self.segments.remove(&id);
        }
    }

    fn seal_active(&mut self) {
        if let Some((id, _)) = self.active.take() {
            self.remove_if_done(id);
        }
    }

    fn read_segment(&mut self, id: SegmentId) -> SegmentRead {
        let records = self.segments.get(&id.0).map_or_else(Vec::new, |records| {
            records
                .iter()
                .map(|(&offset, payload)| Record {
                    id: RecordId {
                        segment: id,
                        offset,
                    },
                    payload: payload.clone(),
                })
                .collect()
        });
        self.remove_if_done(id.0);
        SegmentRead {
            records,
            corrupt: 0,
        }
    }
}

/// The pipeline's store: the disk spool, or memory only.
#[derive(Debug)]
pub(crate) enum Store {
    /// Files in a directory, replayed after a restart.
    Disk(Spool),
    /// Memory, lost with the process.
    Memory(MemorySpool),
}

impl Store {
    /// See [`Spool::append_all`].
    pub fn append_all<'a>(
        &mut self,
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<RecordId>, (Vec<RecordId>, SpoolError)> {
        match self {
            Store::Disk(s) => s.append_all(payloads),
            Store::Memory(m) => m.append_all(payloads),
        }
    }

    /// See [`Spool::ack_all`].
    pub fn ack_all(&mut self, ids: &[RecordId]) -> Result<(), SpoolError> {
        match self {
            Store::Disk(s) => s.ack_all(ids),
            Store::Memory(m) => {
                m.ack_all(ids);
                Ok(())
            }
        }
    }

    /// See [`Spool::sync`]; nothing to do in memory.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        match self {
            Store::Disk(s) => s.sync(),
            Store::Memory(_) => Ok(()),
        }
    }

    /// See [`Spool::seal_active`].
    pub fn seal_active(&mut self) {
        match self {
            Store::Disk(s) => s.seal_active(),
            Store::Memory(m) => m.seal_active(),
        }
    }

    /// See [`Spool::sealed_segments`].
    pub fn sealed_segments(&self) -> Box<dyn Iterator<Item = SegmentId> + '_> {
        match self {
            Store::Disk(s) => Box::new(s.sealed_segments()),
            Store::Memory(m) => {
                let active = m.active.map(|(id, _)| id);
                Box::new(
                    m.segments
                        .keys()
                        .filter(move |&&id| Some(id) != active)
                        .map(|&id| SegmentId(id)),
                )
            }
        }
    }

    /// Whether a sealed segment waits for replay (without building the iterator of
    /// [`Store::sealed_segments`]: the worker asks on every round).
    pub fn has_sealed(&self) -> bool {
        match self {
            Store::Disk(s) => s.sealed_segments().next().is_some(),
            Store::Memory(m) => {
                let active = m.active.map(|(id, _)| id);
                m.segments.keys().any(|&id| Some(id) != active)
            }
        }
    }

    /// See [`Spool::active_segment`].
    pub fn active_segment(&self) -> Option<SegmentId> {
        match self {
            Store::Disk(s) => s.active_segment(),
            Store::Memory(m) => m.active.map(|(id, _)| SegmentId(id)),
        }
    }

    /// See [`Spool::read_segment`]; never fails in memory.
    pub fn read_segment(&mut self, id: SegmentId) -> Result<SegmentRead, SpoolError> {
        match self {
            Store::Disk(s) => s.read_segment(id),
            Store::Memory(m) => Ok(m.read_segment(id)),
        }
    }

    /// See [`Spool::bytes`]; in memory, the records not acked yet.
    pub fn bytes(&self) -> u64 {
        match self {
            Store::Disk(s) => s.bytes(),
            Store::Memory(m) => m.total,
        }
    }

    /// See [`Spool::unacked_records`].
    pub fn unacked_records(&self) -> u64 {
        match self {
            Store::Disk(s) => s.unacked_records(),
            Store::Memory(m) => m.segments.values().map(|r| r.len() as u64).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max_bytes: u64, segment_bytes: u64) -> Store {
        Store::Memory(MemorySpool::new(SpoolLimits {
            max_bytes,
            segment_bytes,
        }))
    }

    #[test]
    fn records_are_replayed_by_sealed_segment_and_freed_when_acked() {
        let mut s = store(1 << 20, 64);
        let ids = s
            .append_all([&b"first"[..], &b"second"[..], &[7u8; 40][..]])
            .unwrap();
        // The third record did not fit the first segment.
        assert_eq!(ids[0].segment, ids[1].segment);
        assert_ne!(ids[1].segment, ids[2].segment);
        assert_eq!(s.unacked_records(), 3);
        let sealed: Vec<_> = s.sealed_segments().collect();
        assert_eq!(sealed, [ids[0].segment]);
        s.ack_all(&ids[..1]).unwrap();
        let read = s.read_segment(ids[0].segment).unwrap();
        assert_eq!(read.records.len(), 1);
        assert_eq!(read.records[0].payload, b"second");
        assert_eq!(read.records[0].id, ids[1]);
        s.ack_all(&[ids[1]]).unwrap();
        assert_eq!(
            s.sealed_segments().count(),
            0,
            "an acked sealed segment goes"
        );
        s.seal_active();
        assert_eq!(s.sealed_segments().collect::<Vec<_>>(), [ids[2].segment]);
        s.ack_all(&[ids[2]]).unwrap();
        assert_eq!((s.bytes(), s.unacked_records()), (0, 0));
        assert_eq!(s.sealed_segments().count(), 0);
    }

    #[test]
    fn the_size_bound_refuses_what_does_not_fit_and_keeps_what_did() {
        let frame = 10 + RECORD_OVERHEAD;
        let mut s = store(2 * frame, 1 << 20);
        let (written, err) = s
            .append_all([&[1u8; 10][..], &[2u8; 10][..], &[3u8; 10][..]])
            .unwrap_err();
        assert_eq!(written.len(), 2);
        assert!(matches!(err, SpoolError::Full { .. }), "{err}");
        assert!(err.to_string().contains("(memory)"), "{err}");
        s.ack_all(&written[..1]).unwrap();
        assert!(
            s.append_all([&[4u8; 10][..]]).is_ok(),
            "room again after an ack"
        );
        let err = s.append_all([&[0u8; 100][..]]).unwrap_err().1;
        assert!(matches!(err, SpoolError::TooLarge { .. }), "{err}");
    }
}
