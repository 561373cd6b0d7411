//! The read side: the replay cursor over the sealed segments, oldest first, reading a
//! segment's unacked records, and removing a segment.

use std::fs;
use std::io;

use super::ack::read_acks;
use super::dir::remove_if_present;
use super::format::{parse_segment, SegmentRead};
use super::{SegmentId, Spool, SpoolError};

impl Spool {
    /// The oldest segment, ready for replay. If it is the active segment it is sealed first
    /// (see [`seal_active`](Self::seal_active)), so later appends go to a new segment.
    ///
    /// Sealing the active segment is only safe when none of its records is still on its way
    /// to the broker; a caller that appends records before producing them uses
    /// [`sealed_segments`](Self::sealed_segments) instead.
    pub fn oldest_sealed(&mut self) -> Option<SegmentId> {
        let &id = self.segments.keys().next()?;
        if self.active_id() == Some(id) {
            // Sealing deletes it when all its records are acked: then the next one is oldest.
            self.seal_active();
        }
        self.segments.keys().next().map(|&id| SegmentId(id))
    }

    /// The sealed segments, oldest first: every segment but the active one. Never seals
    /// anything, so appends and replay do not race.
    pub fn sealed_segments(&self) -> impl Iterator<Item = SegmentId> + '_ {
        let active = self.active_id();
        self.segments
            .keys()
            .filter(move |&&id| Some(id) != active)
            .map(|&id| SegmentId(id))
    }

    /// The segment appends go to now, if there is one (none before the first append and
    /// after [`seal_active`](Self::seal_active)).
    pub fn active_segment(&self) -> Option<SegmentId> {
        self.active_id().map(SegmentId)
    }

    /// Reads the valid records of a segment that are not acked, each with its id, in append
    /// order, skipping (and counting) corrupt ones: damage inside a readable file never makes
    /// this fail (see [Corruption](super#corruption)). A segment whose file is gone (removed
    /// behind the spool's back) reads as empty.
    ///
    /// A sealed segment in which the read finds no unacked record is deleted, with its ack
    /// file (best effort: one that cannot be deleted now stays and is tried again by the next
    /// read); removing it again with [`remove_segment`](Self::remove_segment) is harmless. The
    /// active segment is never deleted here.
    ///
    /// Fails only with [`SpoolError::Io`], when the segment or its ack file could not be
    /// opened or read now (too many open files, `EIO`, no permission, out of memory). That
    /// says nothing about the records in it: **a caller must never remove a segment because
    /// reading it failed**, but leave it and try again later, as it would after a failed
    /// delivery.
    pub fn read_segment(&mut self, id: SegmentId) -> Result<SegmentRead, SpoolError> {
        let data = match fs::read(self.segment_path(id.0)) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(SpoolError::Io(e)),
        };
        let acked = read_acks(&self.ack_path(id.0))?;
        let parsed = parse_segment(id, &data, &acked);
        if let Some(segment) = self.segments.get_mut(&id.0) {
            // What is on disk now; it stays exact as long as this process appends and acks.
            segment.records = Some(parsed.valid);
            segment.acked = parsed.acked;
        }
        self.remove_if_done(id);
        Ok(parsed.read)
    }

    /// Deletes a segment, acked or not, with its ack file: once all its records were
    /// delivered or re-routed, or to give its records up. Removing a segment that is already
    /// gone is not an error. Removing the active segment ends it: the next append starts a new one.
    pub fn remove_segment(&mut self, id: SegmentId) -> Result<(), SpoolError> {
        if self.active_id() == Some(id.0) {
            self.active = None;
        }
        self.unsynced.retain(|(unsynced, _)| *unsynced != id.0);
        if let Some(segment) = self.segments.get_mut(&id.0) {
            // Closed before the files go (some platforms cannot delete an open file); acks
            // not synced yet only matter if the segment stays, and then cost duplicates.
            segment.acks = None;
        }
        // The segment first, then its ack file: a crash in between leaves an ack file
        // without a segment, which the next open deletes, never a segment without its acks.
        remove_if_present(&self.segment_path(id.0))?;
        // An ack file left here is deleted on the next open, and its number is never reused.
        let _ = remove_if_present(&self.ack_path(id.0));
        if let Some(segment) = self.segments.remove(&id.0) {
            self.total -= segment.size;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::testutil::*;
    use crate::spool::SpoolLimits;

    #[test]
    fn oldest_first_across_reopen_and_numbering_continues() {
        let dir = tempfile::tempdir().unwrap();
        let seg = 2 * frame(payload(0).len());
        {
            let mut spool = spool_with(dir.path(), limits(1 << 20, seg), 3);
            spool.sync().unwrap();
        }
        let before = segment_files(dir.path());
        assert_eq!(before.len(), 2);

        let mut spool = Spool::open(dir.path(), limits(1 << 20, seg)).unwrap();
        assert_eq!(spool.segment_count(), 2);
        assert_eq!(spool.bytes(), 3 * frame(payload(0).len()));
        // The half-full segment of the old process is not appended to.
        spool.append(&payload(3)).unwrap();
        let after = segment_files(dir.path());
        assert_eq!(after.len(), 3);
        assert_eq!(after[..2], before[..]);
        assert!(
            after[2] > before[1],
            "numbering continues after the highest"
        );

        assert_eq!(drain(&mut spool), (0..4).map(payload).collect::<Vec<_>>());
        assert!(spool.is_empty());
    }

    #[test]
    fn remove_segment_frees_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let seg = frame(payload(0).len());
        let mut spool = Spool::open(dir.path(), limits(2 * seg, seg)).unwrap();
        spool.append(&payload(0)).unwrap();
        spool.append(&payload(1)).unwrap();
        assert!(matches!(
            spool.append(&payload(2)),
            Err(SpoolError::Full { .. })
        ));

        let id = spool.oldest_sealed().unwrap();
        spool.remove_segment(id).unwrap();
        assert_eq!(spool.bytes(), seg);
        assert!(!spool.segment_path(id.0).exists());
        spool.remove_segment(id).unwrap();
        assert_eq!(spool.bytes(), seg);

        spool.append(&payload(2)).unwrap();
        assert_eq!(drain(&mut spool), vec![payload(1), payload(2)]);
    }

    #[test]
    fn a_segment_removed_behind_the_spools_back_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = spool_with(dir.path(), SpoolLimits::default(), 2);
        let id = spool.oldest_sealed().unwrap();
        std::fs::remove_file(spool.segment_path(id.0)).unwrap();

        // Not an I/O error to retry forever: there is nothing left to read.
        let read = spool.read_segment(id).unwrap();
        assert!(read.records.is_empty());
        assert_eq!(read.corrupt, 0);
        spool.remove_segment(id).unwrap();
        assert!(spool.is_empty());
        assert_eq!(spool.bytes(), 0);
    }

    #[test]
    fn a_segment_that_cannot_be_read_is_an_io_error_and_stays() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = spool_with(dir.path(), SpoolLimits::default(), 2);
        let id = spool.oldest_sealed().unwrap();
        let path = spool.segment_path(id.0);
        // A file that cannot be read, even by root (whom no mode bit stops): a directory in
        // the segment's place.
        let saved = dir.path().join("saved");
        std::fs::rename(&path, &saved).unwrap();
        std::fs::create_dir(&path).unwrap();

        let err = spool.read_segment(id).unwrap_err();
        assert!(matches!(err, SpoolError::Io(_)), "{err:?}");
        // The spool keeps the segment: the caller tries again later.
        assert_eq!(spool.oldest_sealed(), Some(id));
        assert_eq!(spool.segment_count(), 1);

        std::fs::remove_dir(&path).unwrap();
        std::fs::rename(&saved, &path).unwrap();
        assert_eq!(drain(&mut spool), vec![payload(0), payload(1)]);
    }

    #[test]
    fn oldest_sealed_seals_the_active_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert_eq!(spool.oldest_sealed(), None);
        spool.append(&payload(0)).unwrap();
        let first = spool.oldest_sealed().unwrap();
        spool.append(&payload(1)).unwrap();
        assert_eq!(spool.segment_count(), 2);

        assert_eq!(spool.read_segment(first).unwrap().records, vec![payload(0)]);
        spool.remove_segment(first).unwrap();
        let second = spool.oldest_sealed().unwrap();
        assert!(second > first);
        assert_eq!(
            spool.read_segment(second).unwrap().records,
            vec![payload(1)]
        );
        spool.sync().unwrap();
    }
}
