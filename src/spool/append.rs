//! The write side: appending records to the active segment (one `write` per batch of whole
//! frames), rotating to a new segment at the size limit, enforcing the size limits, sealing,
//! and `fsync`ing what was written.

use std::fs;
use std::io::{self, Write};

use super::dir::{private_file_options, sync_dir};
use super::format::{Batch, RECORD_OVERHEAD};
use super::{Active, RecordId, Segment, SegmentId, Spool, SpoolError};

/// `append_all` hands the OS at most this much per `write`, so a long batch does not build
/// one huge buffer.
const BATCH_BYTES: usize = 1024 * 1024;
/// Attempts to find a free segment number when another writer took ours.
const CREATE_ATTEMPTS: usize = 64;

impl Spool {
    /// Appends one record to the active segment, starting a new segment first when the
    /// record would take the active one past [`SpoolLimits::segment_bytes`], and returns
    /// its id (which also says which segment it went to).
    ///
    /// Fails with [`SpoolError::Full`] when the spool would exceed
    /// [`SpoolLimits::max_bytes`] and with [`SpoolError::TooLarge`] when the record can
    /// never fit; in both cases nothing is written. The record reaches the OS before this
    /// returns; call [`sync`](Self::sync) to make it durable against a machine crash.
    ///
    /// [`SpoolLimits::segment_bytes`]: super::SpoolLimits::segment_bytes
    /// [`SpoolLimits::max_bytes`]: super::SpoolLimits::max_bytes
    pub fn append(&mut self, payload: &[u8]) -> Result<RecordId, SpoolError> {
        let ids = self.append_all([payload]).map_err(|(_, e)| e)?;
        let id = ids.first().copied();
        id.ok_or_else(|| io::Error::other("the spool wrote no record").into())
    }

    /// Appends many records, handing them to the OS in as few writes as possible (one per
    /// segment, in chunks of about 1 MiB), and returns their ids in the order of `payloads`.
    ///
    /// Stops at the first error and returns it with the ids of the records written, which
    /// are the first ones of `payloads`. A failing write (a full disk) keeps the whole
    /// records that reached the file and cuts off a torn one, and deletes a segment it
    /// leaves empty, so failed appends leave no new files behind; only where the file cannot
    /// be cut does a torn record stay, which the reader skips.
    pub fn append_all<'a>(
        &mut self,
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<RecordId>, (Vec<RecordId>, SpoolError)> {
        let mut ids = Vec::new();
        match self.append_into(payloads, &mut ids) {
            Ok(()) => Ok(ids),
            Err(e) => Err((ids, e)),
        }
    }

    /// Makes everything appended and acked so far durable: `fsync`s the active segment,
    /// every segment sealed since the last sync, every ack file written since the last sync,
    /// and the directory when segment or ack files were created.
    ///
    /// Call it on shutdown and periodically; appends and acks alone survive a process crash
    /// but not a machine crash.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        while let Some((_, file)) = self.unsynced.last() {
            file.sync_data()?;
            self.unsynced.pop();
        }
        if let Some(active) = &self.active {
            active.file.sync_data()?;
        }
        self.sync_acks()?;
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Stops appending to the active segment (if any): the next append starts a new one,
    /// and the segment becomes one of the [`sealed_segments`](Self::sealed_segments), to be
    /// replayed. If all its records are acked it is deleted right away.
    ///
    /// A caller that appends records before producing them calls it when none of the active
    /// segment's records is still on its way to the broker, so replay never re-sends one
    /// that is still in flight.
    pub fn seal_active(&mut self) {
        if let Some(active) = self.active.take() {
            // Kept open until the next `sync`, which still owes it an fsync.
            self.unsynced.push((active.id, active.file));
            self.remove_if_done(SegmentId(active.id));
        }
    }

    /// [`append_all`](Self::append_all), pushing the id of each record written to `ids`.
    fn append_into<'a>(
        &mut self,
        payloads: impl IntoIterator<Item = &'a [u8]>,
        ids: &mut Vec<RecordId>,
    ) -> Result<(), SpoolError> {
        let mut batch = Batch::default();
        for payload in payloads {
            let pending = batch.buf.len() as u64;
            let frame_len = match self.check_room(payload.len(), pending) {
                Ok(n) => n,
                Err(e) => {
                    // What is batched goes in; a write error is the more urgent one to report.
                    self.write_batch(&mut batch, ids)?;
                    return Err(e);
                }
            };
            let needs_segment = match &self.active {
                None => true,
                Some(active) => {
                    let size = self.segments.get(&active.id).map_or(0, |s| s.size);
                    let used = size + pending;
                    used > 0 && used + frame_len > self.limits.segment_bytes
                }
            };
            if needs_segment {
                self.write_batch(&mut batch, ids)?;
                self.start_segment()?;
            }
            batch.push(payload);
            if batch.buf.len() >= BATCH_BYTES {
                self.write_batch(&mut batch, ids)?;
            }
        }
        self.write_batch(&mut batch, ids)
    }

    /// The on-disk size of a record, when it fits after the `pending` bytes batched:
    /// `TooLarge` when no segment can ever hold it, `Full` when the spool has no room now.
    fn check_room(&self, payload_len: usize, pending: u64) -> Result<u64, SpoolError> {
        let max = self
            .limits
            .segment_bytes
            .min(self.limits.max_bytes)
            .min(u64::from(u32::MAX) + RECORD_OVERHEAD);
        let frame_len = payload_len as u64 + RECORD_OVERHEAD;
        if frame_len > max {
            return Err(SpoolError::TooLarge {
                len: payload_len as u64,
                max,
            });
        }
        if self.total + pending + frame_len > self.limits.max_bytes {
            return Err(SpoolError::Full {
                max_bytes: self.limits.max_bytes,
                dir: self.dir.clone(),
            });
        }
        Ok(frame_len)
    }

    /// Writes the batch to the active segment in one `write_all` and pushes the ids of the
    /// records that reached the file to `ids`.
    fn write_batch(
        &mut self,
        batch: &mut Batch,
        ids: &mut Vec<RecordId>,
    ) -> Result<(), SpoolError> {
        if batch.ends.is_empty() {
            return Ok(());
        }
        let Some(active) = self.active.as_mut() else {
            // `append_all` starts a segment before it batches anything.
            batch.clear();
            return Err(io::Error::other("spool has no active segment").into());
        };
        let id = active.id;
        let before = self.segments.get(&id).map_or(0, |s| s.size);
        let outcome = active.file.write_all(&batch.buf);
        let complete = match outcome {
            Ok(()) => {
                self.grow(id, batch.buf.len() as u64, batch.ends.len());
                batch.ends.len()
            }
            Err(_) => self.undo_failed_write(before, &batch.ends),
        };
        let segment = SegmentId(id);
        ids.extend(batch.starts().take(complete).map(|start| RecordId {
            segment,
            offset: before + start as u64,
        }));
        batch.clear();
        outcome.map_err(SpoolError::from)
    }

    /// Books `bytes` more in segment `id`, holding `records` more records.
    fn grow(&mut self, id: u64, bytes: u64, records: usize) {
        let segment = self.segments.entry(id).or_default();
        segment.size += bytes;
        if let Some(known) = &mut segment.records {
            *known += records as u64;
        }
        self.total += bytes;
    }

    /// After a write to the active segment (then `before` bytes long) failed: keeps the
    /// whole records that reached the file and cuts off a torn one, so the segment still
    /// ends on a record boundary and later appends go on in it. A segment left empty is
    /// deleted, so failing appends (a full disk) leave no files behind, however many there
    /// are. Where the file cannot be measured or cut, it is sealed instead and the reader
    /// skips its torn tail. Returns how many records of the batch (ending at `ends`) are in.
    fn undo_failed_write(&mut self, before: u64, ends: &[usize]) -> usize {
        let Some(active) = &self.active else {
            return 0;
        };
        let id = active.id;
        // Measure what did reach the file so sizes stay true and the caller learns which
        // records are in.
        let Ok(len) = active.file.metadata().map(|meta| meta.len()) else {
            // Whole records of the batch may be in: they are counted when it is read, so
            // the segment is not deleted as fully acked before.
            if let Some(segment) = self.segments.get_mut(&id) {
                segment.records = None;
            }
            self.seal_active();
            return 0;
        };
        let written = len.saturating_sub(before);
        let complete = ends
            .iter()
            .take_while(|&&end| end as u64 <= written)
            .count();
        let whole = complete.checked_sub(1).map_or(0, |last| ends[last] as u64);
        let kept = if written > whole && active.file.set_len(before + whole).is_err() {
            written
        } else {
            whole
        };
        self.grow(id, kept, complete);
        if kept > whole {
            // A torn record is left: later records go to a fresh segment rather than after it.
            self.seal_active();
        } else if before + kept == 0 && fs::remove_file(self.segment_path(id)).is_ok() {
            self.segments.remove(&id);
            self.active = None;
        }
        complete
    }

    /// Seals the active segment (if any) and creates the next one.
    fn start_segment(&mut self) -> Result<(), SpoolError> {
        self.seal_active();
        for _ in 0..CREATE_ATTEMPTS {
            let id = self.next_id;
            self.next_id = self.next_id.saturating_add(1);
            let mut options = private_file_options();
            options.append(true).create_new(true);
            match options.open(self.segment_path(id)) {
                Ok(file) => {
                    let segment = Segment {
                        records: Some(0),
                        ..Segment::default()
                    };
                    self.segments.insert(id, segment);
                    self.active = Some(Active { id, file });
                    self.dir_dirty = true;
                    return Ok(());
                }
                // Another writer in the same directory took this number; it is not ours to
                // append to.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "no free segment number after {CREATE_ATTEMPTS} attempts in {}; is another process using this spool directory?",
                self.dir.display()
            ),
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;
    use crate::spool::testutil::*;
    use crate::spool::SpoolLimits;

    #[test]
    fn append_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path().join("a/b"), SpoolLimits::default()).unwrap();
        assert!(spool.is_empty());
        assert!(
            segment_files(spool.dir()).is_empty(),
            "nothing opened before an append"
        );

        let payloads = [b"first".to_vec(), Vec::new(), vec![0u8; 70_000], payload(3)];
        for p in &payloads {
            spool.append(p).unwrap();
        }
        spool.sync().unwrap();
        let expected: u64 = payloads.iter().map(|p| frame(p.len())).sum();
        assert_eq!(spool.bytes(), expected);
        assert_eq!(spool.segment_count(), 1);

        let id = spool.oldest_sealed().unwrap();
        let read = spool.read_segment(id).unwrap();
        assert_eq!(read.records, payloads);
        assert_eq!(read.corrupt, 0);
    }

    #[test]
    fn rotates_at_segment_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let seg = 2 * frame(payload(0).len());
        let mut spool = spool_with(dir.path(), limits(1 << 20, seg), 5);
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 3);
        for file in &files {
            assert!(fs::metadata(file).unwrap().len() <= seg);
        }
        let mut per_segment = Vec::new();
        while let Some(id) = spool.oldest_sealed() {
            per_segment.push(spool.read_segment(id).unwrap().records);
            spool.remove_segment(id).unwrap();
        }
        assert_eq!(
            per_segment,
            vec![
                vec![payload(0), payload(1)],
                vec![payload(2), payload(3)],
                vec![payload(4)]
            ]
        );
    }

    #[test]
    fn append_all_batches_across_segments_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let seg = 3 * frame(payload(0).len());
        let mut spool = Spool::open(dir.path(), limits(1 << 20, seg)).unwrap();
        let payloads: Vec<_> = (0..10).map(payload).collect();
        let ids = spool
            .append_all(payloads.iter().map(Vec::as_slice))
            .unwrap();
        assert_eq!(ids.len(), 10);
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        assert_eq!(spool.segment_count(), 4);
        assert_eq!(drain(&mut spool), payloads);
        assert_eq!(spool.bytes(), 0);
    }

    #[test]
    fn full_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let f = frame(payload(0).len());
        let mut spool = spool_with(dir.path(), limits(3 * f + f / 2, 1 << 20), 3);
        let bytes = spool.bytes();
        let err = spool.append(&payload(3)).unwrap_err();
        assert!(matches!(err, SpoolError::Full { max_bytes, .. } if max_bytes == 3 * f + f / 2));
        assert!(
            err.to_string().contains("OMNINODE_SPOOL_MAX_BYTES"),
            "{err}"
        );
        assert_eq!(spool.bytes(), bytes);
        let on_disk: u64 = segment_files(dir.path())
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(on_disk, bytes);

        // A batch writes what fits and says how much.
        let id = spool.oldest_sealed().unwrap();
        spool.remove_segment(id).unwrap();
        let batch: Vec<_> = (10..15).map(payload).collect();
        let (ids, err) = spool
            .append_all(batch.iter().map(Vec::as_slice))
            .unwrap_err();
        assert_eq!(ids.len(), 3);
        assert!(matches!(err, SpoolError::Full { .. }));
        assert_eq!(drain(&mut spool), batch[..3]);
    }

    #[test]
    fn refused_appends_create_no_segment() {
        let dir = tempfile::tempdir().unwrap();
        let f = frame(payload(0).len());
        let mut spool = spool_with(dir.path(), limits(2 * f, 1 << 20), 2);
        // Sealed: the next append would start a new segment.
        spool.oldest_sealed().unwrap();
        for _ in 0..5 {
            let full = spool.append(&payload(9)).unwrap_err();
            assert!(matches!(full, SpoolError::Full { .. }), "{full}");
            let large = spool.append(&vec![7; 2 * f as usize]).unwrap_err();
            assert!(matches!(large, SpoolError::TooLarge { .. }), "{large}");
        }
        assert_eq!(segment_files(dir.path()).len(), 1);
        assert_eq!(spool.segment_count(), 1);
    }

    /// Set for the child process of [`failed_writes_leave_no_torn_records_or_new_files`].
    #[cfg(unix)]
    const FILE_SIZE_LIMITED: &str = "OMNINODE_TEST_FILE_SIZE_LIMITED";

    /// Real write errors without filling a disk: a child process runs
    /// [`write_errors_in_a_size_limited_process`] with a file size limit of 4 KiB
    /// (`ulimit -f 8`), past which every write fails (`EFBIG`) the way it fails with
    /// `ENOSPC` on a full disk.
    #[cfg(unix)]
    #[test]
    fn failed_writes_leave_no_torn_records_or_new_files() {
        let out = std::process::Command::new("sh")
            .arg("-c")
            // SIGXFSZ ignored: a write past the limit fails instead of killing the process.
            .arg(r#"trap '' XFSZ; ulimit -f 8 && exec "$0" --exact "$1" --ignored --nocapture"#)
            .arg(std::env::current_exe().unwrap())
            .arg("spool::append::tests::write_errors_in_a_size_limited_process")
            .env(FILE_SIZE_LIMITED, "1")
            .output()
            .unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{report}");
        assert!(report.contains("1 passed"), "{report}");
    }

    #[cfg(unix)]
    #[test]
    #[ignore = "run by failed_writes_leave_no_torn_records_or_new_files in a size-limited child"]
    fn write_errors_in_a_size_limited_process() {
        if std::env::var_os(FILE_SIZE_LIMITED).is_none() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // How far a file can grow here.
        let probe = dir.path().join("probe");
        assert!(File::create(&probe)
            .unwrap()
            .write_all(&[0; 1 << 20])
            .is_err());
        let limit = fs::metadata(&probe).unwrap().len();
        fs::remove_file(&probe).unwrap();
        let on_disk = |dir: &std::path::Path| -> u64 {
            let files = segment_files(dir);
            files.iter().map(|p| fs::metadata(p).unwrap().len()).sum()
        };

        let mut spool = Spool::open(dir.path().join("spool"), SpoolLimits::default()).unwrap();
        let mut ok = 0;
        while spool.append(&payload(ok)).is_ok() {
            ok += 1;
        }
        // The record that did not fit is cut off, not left torn.
        assert_eq!(spool.bytes(), ok as u64 * frame(payload(0).len()));
        assert_eq!(on_disk(spool.dir()), spool.bytes());
        // A record larger than any file can grow fails in every segment.
        let big = vec![7; limit as usize];
        for _ in 0..5 {
            let err = spool.append(&big).unwrap_err();
            assert!(matches!(err, SpoolError::Io(_)), "{err}");
        }
        assert_eq!(segment_files(spool.dir()).len(), 1);
        // Each failed append into a new segment deletes it again.
        spool.oldest_sealed().unwrap();
        for _ in 0..5 {
            let err = spool.append(&big).unwrap_err();
            assert!(matches!(err, SpoolError::Io(_)), "{err}");
        }
        assert_eq!(segment_files(spool.dir()).len(), 1);
        assert_eq!(spool.segment_count(), 1);
        assert_eq!(on_disk(spool.dir()), spool.bytes());

        spool.append(b"after").unwrap();
        let mut expected: Vec<_> = (0..ok).map(payload).collect();
        expected.push(b"after".to_vec());
        assert_eq!(drain(&mut spool), expected);
    }

    #[test]
    fn too_large_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), limits(1 << 20, 100)).unwrap();
        spool.append(&[7; 88]).unwrap();
        let err = spool.append(&[7; 89]).unwrap_err();
        assert!(
            matches!(err, SpoolError::TooLarge { len: 89, max: 100 }),
            "{err}"
        );
        assert_eq!(spool.bytes(), 100);
    }
}
