//! Acknowledgements: the ack file beside each segment (one checksummed fixed-size entry per
//! acked record, appended), reading it back, and deleting a sealed segment once all its
//! records are acked. See the [spool docs](super#ack-files) for the layout.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::dir::private_file_options;
use super::{RecordId, SegmentId, Spool, SpoolError};

/// Bytes of one ack entry.
pub(super) const ACK_ENTRY_LEN: usize = 16;
const ACK_MAGIC: [u8; 4] = *b"OAK1";

/// The entry that acks the record at `offset`: magic, offset (u64 LE), CRC-32 of the 12
/// bytes before it (u32 LE).
fn ack_entry(offset: u64) -> [u8; ACK_ENTRY_LEN] {
    let mut entry = [0; ACK_ENTRY_LEN];
    entry[..4].copy_from_slice(&ACK_MAGIC);
    entry[4..12].copy_from_slice(&offset.to_le_bytes());
    let crc = crc32fast::hash(&entry[..12]);
    entry[12..].copy_from_slice(&crc.to_le_bytes());
    entry
}

/// The offset an entry at the start of `bytes` acks, if a whole valid entry is there.
fn entry_at(bytes: &[u8]) -> Option<u64> {
    let entry = bytes.get(..ACK_ENTRY_LEN)?;
    let crc = u32::from_le_bytes(entry[12..].try_into().ok()?);
    if entry[..4] != ACK_MAGIC || crc32fast::hash(&entry[..12]) != crc {
        return None;
    }
    Some(u64::from_le_bytes(entry[4..12].try_into().ok()?))
}

/// The offsets an ack file's bytes ack. A torn last entry is ignored; past a damaged entry
/// the reader slides forward a byte at a time until entries check out again, so damage costs
/// only the acks it covers (their records are replayed again: at least once).
pub(super) fn parse_acks(data: &[u8]) -> HashSet<u64> {
    let mut acked = HashSet::new();
    let mut pos = 0;
    while pos + ACK_ENTRY_LEN <= data.len() {
        match entry_at(&data[pos..]) {
            Some(offset) => {
                acked.insert(offset);
                pos += ACK_ENTRY_LEN;
            }
            None => pos += 1,
        }
    }
    acked
}

/// The offsets acked in the ack file at `path`; none when there is no ack file.
pub(super) fn read_acks(path: &Path) -> io::Result<HashSet<u64>> {
    match fs::read(path) {
        Ok(data) => Ok(parse_acks(&data)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(HashSet::new()),
        Err(e) => Err(e),
    }
}

/// An ack file open for appending.
#[derive(Debug)]
pub(super) struct AckFile {
    file: File,
    /// Its length: whole entries only.
    len: u64,
    /// Written since the last `sync`.
    unsynced: bool,
}

impl AckFile {
    /// Opens (or creates, `0600`) the ack file at `path` for appending. A torn last entry
    /// that a crash left is cut off first, so new entries start on an entry boundary.
    fn open(path: &Path) -> io::Result<AckFile> {
        let file = private_file_options()
            .append(true)
            .create(true)
            .open(path)?;
        let len = file.metadata()?.len();
        let whole = len - len % ACK_ENTRY_LEN as u64;
        // Where it cannot be cut, the reader still finds the entries after the torn one.
        let len = if whole < len && file.set_len(whole).is_ok() {
            whole
        } else {
            len
        };
        Ok(AckFile {
            file,
            len,
            unsynced: true,
        })
    }

    /// Appends the entries acking `offsets`, in one write. A failed write is cut off again
    /// where possible, so later entries stay on entry boundaries.
    fn append(&mut self, offsets: &[u64]) -> io::Result<()> {
        self.unsynced = true;
        let entries: Vec<u8> = offsets.iter().flat_map(|&o| ack_entry(o)).collect();
        if let Err(e) = self.file.write_all(&entries) {
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += entries.len() as u64;
        Ok(())
    }

    /// `fsync`s the file if it was written since the last call.
    pub(super) fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }
}

impl Spool {
    /// Records that `id` is done (delivered, dead-lettered or deliberately skipped) so it is
    /// never replayed: [`read_segment`](Self::read_segment) leaves it out from now on, also
    /// after a restart. A sealed segment whose records are then all acked is deleted, with
    /// its ack file.
    ///
    /// The ack is appended to the segment's ack file and reaches the OS before this returns,
    /// but it is not `fsync`ed: [`sync`](Self::sync) does that. An ack lost to a machine
    /// crash only means the record is replayed once more (at least once).
    ///
    /// Acking an id twice, or an id whose segment is gone, does nothing. `id` must come from
    /// [`append`](Self::append) or [`read_segment`](Self::read_segment) of this spool: an
    /// offset that is not where a record starts could count as one, and then the segment
    /// could be deleted with a record never delivered. Fails only with [`SpoolError::Io`],
    /// when the ack could not be written (then the record is replayed again).
    pub fn ack(&mut self, id: RecordId) -> Result<(), SpoolError> {
        self.ack_all(&[id])
    }

    /// [`ack`](Self::ack)s many records, with one write per segment they are in.
    pub fn ack_all(&mut self, ids: &[RecordId]) -> Result<(), SpoolError> {
        let mut segments: Vec<SegmentId> = ids.iter().map(|id| id.segment).collect();
        segments.sort_unstable();
        segments.dedup();
        for seg in segments {
            let offsets: Vec<u64> = ids
                .iter()
                .filter(|id| id.segment == seg)
                .map(|id| id.offset)
                .collect();
            self.ack_in(seg, offsets)?;
        }
        Ok(())
    }

    fn ack_in(&mut self, seg: SegmentId, mut offsets: Vec<u64>) -> Result<(), SpoolError> {
        let path = self.ack_path(seg.0);
        let Some(segment) = self.segments.get_mut(&seg.0) else {
            return Ok(());
        };
        offsets.sort_unstable();
        offsets.dedup();
        offsets.retain(|o| *o < segment.size && !segment.acked.contains(o));
        if offsets.is_empty() {
            return Ok(());
        }
        let acks = match &mut segment.acks {
            Some(acks) => acks,
            None => {
                let opened = AckFile::open(&path)?;
                // A new name in the directory, for the next `sync` to make durable.
                self.dir_dirty = true;
                segment.acks.insert(opened)
            }
        };
        acks.append(&offsets)?;
        if segment.records.is_some() {
            segment.acked.extend(offsets);
        }
        self.remove_if_done(seg);
        Ok(())
    }

    /// Deletes segment `id` if it is sealed and every record in it is known to be acked.
    /// Best effort: a segment that cannot be deleted now stays, and the next read of it
    /// tries again.
    pub(super) fn remove_if_done(&mut self, id: SegmentId) {
        let done = self.segments.get(&id.0).is_some_and(|s| s.fully_acked());
        if done && self.active_id() != Some(id.0) {
            let _ = self.remove_segment(id);
        }
    }

    /// `fsync`s every ack file written since the last sync.
    pub(super) fn sync_acks(&mut self) -> io::Result<()> {
        for acks in self.segments.values_mut().filter_map(|s| s.acks.as_mut()) {
            acks.sync()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;
    use crate::spool::dir::ack_name;
    use crate::spool::format::HEADER_LEN;
    use crate::spool::testutil::*;
    use crate::spool::{Record, SpoolLimits};

    fn record(id: RecordId, i: usize) -> Record {
        Record {
            id,
            payload: payload(i),
        }
    }

    /// `spool` with `payload(0)` .. `payload(n - 1)` appended, and their ids.
    fn appended(spool: &mut Spool, n: usize) -> Vec<RecordId> {
        (0..n).map(|i| spool.append(&payload(i)).unwrap()).collect()
    }

    fn len(path: &Path) -> u64 {
        fs::metadata(path).unwrap().len()
    }

    #[test]
    fn ids_are_frame_offsets_and_acks_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let f = frame(payload(0).len());
        let ids = {
            let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
            let ids = appended(&mut spool, 5);
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(id.segment, ids[0].segment);
                assert_eq!(id.offset, i as u64 * f);
            }
            assert_eq!(spool.active_segment(), Some(ids[0].segment));
            spool.ack(ids[3]).unwrap();
            spool.ack(ids[1]).unwrap();
            // No sync: acks that reached the OS survive the process.
            ids
        };
        assert_eq!(
            ids[2].to_string(),
            format!("segment-00000000000000000000.spool@{}", 2 * f)
        );
        let acks = ack_files(dir.path());
        assert_eq!(acks.len(), 1);
        assert_eq!(len(&acks[0]), 2 * ACK_ENTRY_LEN as u64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&acks[0]).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        let read = unacked(&mut spool);
        let expected = [record(ids[0], 0), record(ids[2], 2), record(ids[4], 4)];
        assert_eq!(read, expected);
        // A later process acks records of an old segment in the same ack file.
        spool.ack(read[1].id).unwrap();
        drop(spool);
        let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert_eq!(unacked(&mut spool), [record(ids[0], 0), record(ids[4], 4)]);
    }

    #[test]
    fn a_sealed_segment_goes_once_all_its_records_are_acked() {
        let dir = tempfile::tempdir().unwrap();
        let f = frame(payload(0).len());
        let mut spool = Spool::open(dir.path(), limits(1 << 20, 2 * f)).unwrap();
        let ids = appended(&mut spool, 3);
        let (first, second) = (ids[0].segment, ids[2].segment);
        assert_eq!(spool.sealed_segments().collect::<Vec<_>>(), [first]);

        // When its last record is acked.
        spool.ack(ids[1]).unwrap();
        assert!(spool.segment_path(first.0).exists());
        spool.ack(ids[0]).unwrap();
        assert!(!spool.segment_path(first.0).exists());
        assert!(!spool.ack_path(first.0).exists());
        assert_eq!(spool.bytes(), f);
        assert_eq!(spool.sealed_segments().count(), 0);

        // When it is sealed.
        spool.ack(ids[2]).unwrap();
        assert!(spool.segment_path(second.0).exists(), "still active");
        spool.seal_active();
        assert!(spool.is_empty());
        assert_eq!(spool.bytes(), 0);

        // When a rotation seals it.
        let more = appended(&mut spool, 2);
        spool.ack(more[0]).unwrap();
        spool.ack(more[1]).unwrap();
        let last = spool.append(&payload(9)).unwrap();
        assert_ne!(last.segment, more[0].segment);
        assert_eq!(
            segment_files(dir.path()),
            [spool.segment_path(last.segment.0)]
        );
        assert!(ack_files(dir.path()).is_empty());
        assert_eq!(spool.bytes(), f);
    }

    #[test]
    fn a_read_that_finds_nothing_unacked_deletes_a_sealed_segment() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
            for id in appended(&mut spool, 2) {
                spool.ack(id).unwrap();
            }
        }
        // Left by the process that acked it while it was active.
        assert_eq!(segment_files(dir.path()).len(), 1);
        let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert_eq!(spool.segment_count(), 1, "not read on open");
        let id = spool.sealed_segments().next().unwrap();
        let read = spool.read_segment(id).unwrap();
        assert!(read.records.is_empty());
        assert!(spool.is_empty());
        assert!(segment_files(dir.path()).is_empty());
        assert!(ack_files(dir.path()).is_empty());
        // What the replay of before did next is still fine.
        spool.remove_segment(id).unwrap();
    }

    #[test]
    fn the_active_segment_is_never_deleted_under_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let f = frame(payload(0).len());
        let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        let first = spool.append(&payload(0)).unwrap();
        spool.ack(first).unwrap();
        let seg = first.segment;
        assert_eq!(spool.active_segment(), Some(seg));
        assert!(spool.read_segment(seg).unwrap().records.is_empty());
        assert!(spool.segment_path(seg.0).exists());

        let second = spool.append(&payload(1)).unwrap();
        assert_eq!(
            second,
            RecordId {
                segment: seg,
                offset: f
            }
        );
        let read = spool.read_segment(seg).unwrap();
        assert_eq!(read.records, [record(second, 1)]);
        spool.ack(second).unwrap();
        assert!(spool.segment_path(seg.0).exists());
        assert_eq!(spool.sealed_segments().count(), 0);
        spool.sync().unwrap();
        assert_eq!(spool.bytes(), 2 * f);
    }

    #[test]
    fn sealed_segments_never_seal_the_active_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert_eq!(spool.active_segment(), None);
        let a = spool.append(&payload(0)).unwrap();
        assert_eq!(spool.sealed_segments().count(), 0);
        assert_eq!(spool.active_segment(), Some(a.segment));

        spool.seal_active();
        assert_eq!(spool.active_segment(), None);
        assert_eq!(spool.sealed_segments().collect::<Vec<_>>(), [a.segment]);
        let b = spool.append(&payload(1)).unwrap();
        assert!(b.segment > a.segment);
        assert_eq!(spool.sealed_segments().collect::<Vec<_>>(), [a.segment]);
        // The oldest is not the active one: nothing is sealed.
        assert_eq!(spool.oldest_sealed(), Some(a.segment));
        assert_eq!(spool.active_segment(), Some(b.segment));
    }

    #[test]
    fn a_corrupt_record_keeps_the_ids_of_the_good_ones() {
        let dir = tempfile::tempdir().unwrap();
        let f = frame(payload(0).len());
        let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        let ids = appended(&mut spool, 3);
        spool.seal_active();
        let path = spool.segment_path(ids[0].segment.0);
        let mut data = fs::read(&path).unwrap();
        data[f as usize + HEADER_LEN + 3] ^= 0x01;
        fs::write(&path, &data).unwrap();

        let read = spool.read_segment(ids[0].segment).unwrap();
        assert_eq!(read.records, [record(ids[0], 0), record(ids[2], 2)]);
        assert_eq!(read.corrupt, 1);
        // The corrupt record has no id to ack: the good ones are all there is.
        spool.ack(ids[2]).unwrap();
        spool.ack(ids[0]).unwrap();
        assert!(spool.is_empty());
        assert!(!path.exists());
    }

    #[test]
    fn acking_twice_or_a_gone_segment_is_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        let ids = appended(&mut spool, 3);
        spool.seal_active();
        spool.ack(ids[0]).unwrap();
        spool.ack(ids[0]).unwrap();
        let ack_path = spool.ack_path(ids[0].segment.0);
        assert_eq!(len(&ack_path), ACK_ENTRY_LEN as u64);
        // No offset of the segment: nothing to ack.
        let past = RecordId {
            offset: spool.bytes(),
            ..ids[0]
        };
        spool.ack(past).unwrap();
        assert_eq!(len(&ack_path), ACK_ENTRY_LEN as u64);

        spool.remove_segment(ids[0].segment).unwrap();
        assert!(!ack_path.exists());
        spool.ack(ids[1]).unwrap();
        assert!(!ack_path.exists(), "not created again");
        assert!(spool.is_empty());
    }

    #[test]
    fn sync_covers_the_ack_files() {
        let dir = tempfile::tempdir().unwrap();
        let one_per_segment = limits(1 << 20, frame(payload(0).len()));
        let mut spool = Spool::open(dir.path(), one_per_segment).unwrap();
        let ids = appended(&mut spool, 3);
        spool.ack(ids[0]).unwrap();
        spool.ack(ids[2]).unwrap();
        let unsynced = |spool: &Spool| {
            let files = spool.segments.values().filter_map(|s| s.acks.as_ref());
            files.filter(|acks| acks.unsynced).count()
        };
        assert_eq!(unsynced(&spool), 1, "the other segment went");
        assert!(spool.dir_dirty);
        spool.sync().unwrap();
        assert_eq!(unsynced(&spool), 0);
        assert!(!spool.dir_dirty);
    }

    #[test]
    fn an_ack_file_left_by_a_crash_mid_delete_acks_nothing_new() {
        let dir = tempfile::tempdir().unwrap();
        let old = {
            let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
            let ids = appended(&mut spool, 2);
            spool.ack(ids[0]).unwrap();
            spool.ack(ids[1]).unwrap();
            // The crash came after the segment went and before its ack file did.
            fs::remove_file(spool.segment_path(ids[0].segment.0)).unwrap();
            ids[0].segment
        };
        let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert!(spool.is_empty());
        assert!(ack_files(dir.path()).is_empty(), "deleted on open");
        let ids = appended(&mut spool, 2);
        assert!(ids[0].segment > old, "its number is not reused");
        assert_eq!(unacked(&mut spool).len(), 0, "nothing sealed yet");
        spool.seal_active();
        assert_eq!(unacked(&mut spool), [record(ids[0], 0), record(ids[1], 1)]);
    }

    #[test]
    fn adopted_segments_keep_their_acks() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().join("svc");
        let open = || {
            let wait = std::time::Duration::ZERO;
            Spool::open_slot(&base, SpoolLimits::default(), 2, wait).unwrap()
        };
        let a = open();
        let mut b = open();
        assert_eq!(b.dir(), root.path().join("svc.1"));
        let ids = appended(&mut b, 3);
        b.ack(ids[1]).unwrap();
        drop(b);
        drop(a);
        let mut d = open();
        assert_eq!(d.dir(), base);
        let read: Vec<_> = unacked(&mut d).into_iter().map(|r| r.payload).collect();
        assert_eq!(read, [payload(0), payload(2)]);
        assert!(segment_files(&root.path().join("svc.1")).is_empty());
        assert!(ack_files(&root.path().join("svc.1")).is_empty());
    }

    #[test]
    fn torn_damaged_and_garbage_ack_entries_ack_nothing() {
        let entries: Vec<u8> = [0u64, 40, 80].iter().flat_map(|&o| ack_entry(o)).collect();
        assert_eq!(parse_acks(&entries), HashSet::from([0, 40, 80]));
        for cut in 1..ACK_ENTRY_LEN {
            let torn = &entries[..entries.len() - cut];
            assert_eq!(parse_acks(torn), HashSet::from([0, 40]), "cut {cut}");
        }
        for at in ACK_ENTRY_LEN..2 * ACK_ENTRY_LEN {
            let mut damaged = entries.clone();
            damaged[at] ^= 0x10;
            assert_eq!(parse_acks(&damaged), HashSet::from([0, 80]), "byte {at}");
        }
        // Entries after a torn one (a failed write that could not be cut) are found.
        let mut shifted = entries[..ACK_ENTRY_LEN + 5].to_vec();
        shifted.extend_from_slice(&ack_entry(120));
        assert_eq!(parse_acks(&shifted), HashSet::from([0, 120]));
        for seed in 0..50 {
            assert!(parse_acks(&noise(seed, 4096)).is_empty());
        }
    }

    /// A process killed at any point: the spool files cut at every length. Whatever the cut,
    /// the next process reads every record that is whole and not acked by a whole entry,
    /// with its id, and no other; its own acks then count, after a torn entry too.
    #[test]
    fn a_crash_at_any_byte_loses_no_unacked_record_and_replays_no_acked_one() {
        let scenario = tempfile::tempdir().unwrap();
        let (ids, name) = {
            let mut spool = Spool::open(scenario.path(), SpoolLimits::default()).unwrap();
            let ids = appended(&mut spool, 5);
            spool.ack(ids[3]).unwrap();
            spool.ack(ids[1]).unwrap();
            let name = ids[0].segment;
            (ids, name)
        };
        let segment = fs::read(scenario.path().join(name.to_string())).unwrap();
        let acks = fs::read(scenario.path().join(ack_name(name.0))).unwrap();
        let f = frame(payload(0).len()) as usize;
        let ack_order = [3, 1];

        // One directory for all cases (each leaves it empty but for its LOCK): creating
        // and removing directories is what makes this slow on a disk.
        let dir = tempfile::tempdir().unwrap();
        for seg_len in 0..=segment.len() {
            for ack_len in 0..=acks.len() {
                let case = format!("segment cut at {seg_len}, acks at {ack_len}");
                fs::write(dir.path().join(name.to_string()), &segment[..seg_len]).unwrap();
                fs::write(dir.path().join(ack_name(name.0)), &acks[..ack_len]).unwrap();
                let acked = &ack_order[..ack_len / ACK_ENTRY_LEN];
                let expected: Vec<_> = (0..5)
                    .filter(|i| (i + 1) * f <= seg_len && !acked.contains(i))
                    .map(|i| record(ids[i], i))
                    .collect();

                let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
                assert_eq!(unacked(&mut spool), expected, "{case}");
                let Some((first, rest)) = expected.split_first() else {
                    assert!(spool.is_empty(), "{case}");
                    continue;
                };
                spool.ack(first.id).unwrap();
                let ack_file = dir.path().join(ack_name(name.0));
                if rest.is_empty() {
                    assert!(spool.is_empty() && !ack_file.exists(), "{case}");
                } else {
                    // A torn entry was cut off before the new one.
                    assert_eq!(len(&ack_file) % ACK_ENTRY_LEN as u64, 0, "{case}");
                }
                drop(spool);

                let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
                assert_eq!(unacked(&mut spool), rest, "{case}");
                for record in rest {
                    spool.ack(record.id).unwrap();
                }
                assert!(spool.is_empty(), "{case}");
                assert!(!ack_file.exists(), "{case}");
            }
        }
    }
}
