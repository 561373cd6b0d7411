//! The local disk spool: an append-only, checksummed store for records the broker could not
//! take (or has not acknowledged yet), replayed oldest first when delivery works again,
//! including after a process restart (SPEC §4).
//!
//! The spool stores opaque byte payloads. The owner encodes the sanitized record into bytes;
//! nothing here looks inside them.
//!
//! # Records, acks and replay
//!
//! Every record has a [`RecordId`]: its segment and the byte offset of its frame there.
//! [`Spool::append`] returns it; [`Spool::ack`] marks the record done (delivered,
//! dead-lettered or deliberately skipped), persistently, so it is never replayed;
//! [`Spool::read_segment`] returns only the records not acked yet, each with its id. Used as
//! a write-ahead log, a record is appended before it is produced and acked when the broker
//! acknowledged it, and after a crash the next process replays exactly the records that were
//! not acked.
//!
//! Appends go to the *active* segment; sealing it ([`Spool::seal_active`], or rotation at
//! [`SpoolLimits::segment_bytes`]) makes it one of the [sealed
//! segments](Spool::sealed_segments), which replay reads oldest first. A sealed segment
//! whose records are all acked is deleted with its ack file: when its last record is acked,
//! when it is sealed, or when a read finds nothing unacked in it. The active segment is never
//! deleted that way under the writer.
//!
//! The spool counts the records of each segment it wrote and the acks it took for them; a
//! segment found on open (or adopted) is only counted when it is first read, so opening a
//! full spool reads no segment.
//!
//! # On-disk format
//!
//! A spool is a directory of segment files named `segment-{:020}.spool`, each with an
//! optional ack file named `segment-{:020}.ack` (same number). Segment numbers rise
//! monotonically and continue after a restart from the highest number found (of segment and
//! ack files alike), so lexical order of the names equals creation order and a number is
//! never reused. A segment is a plain sequence of records:
//!
//! ```text
//! offset  size  field
//! 0       4     magic  b"OSP1" (0x4F 0x53 0x50 0x31; the last byte is the format version)
//! 4       4     len    payload length, u32 little-endian
//! 8       4     crc    CRC-32 (IEEE) of the 4 `len` bytes followed by the payload, u32 LE
//! 12      len   payload
//! ```
//!
//! There is no segment header, index or footer: a segment is valid up to any record boundary,
//! so a crash can only leave a torn last record behind.
//!
//! ## Ack files
//!
//! The ack file of a segment is created (`0600`) on its first ack and holds one 16-byte entry
//! per ack, appended in the order the acks came:
//!
//! ```text
//! offset  size  field
//! 0       4     magic   b"OAK1" (0x4F 0x41 0x4B 0x31; the last byte is the format version)
//! 4       8     offset  offset of the acked record's frame in the segment, u64 LE
//! 12      4     crc     CRC-32 (IEEE) of the 12 bytes before it, u32 LE
//! ```
//!
//! Entries name offsets only, so a segment and its ack file can be renamed together (as
//! adoption does). An entry that does not check out acks nothing: a torn last entry is
//! ignored (and cut off before the next process appends to the file), and past a damaged
//! entry the reader slides forward byte by byte until entries check out again. An entry for
//! an offset where no valid record starts is ignored. A segment is deleted before its ack
//! file; an ack file without its segment (a crash in between) is deleted on open.
//!
//! Ack files do not count towards [`SpoolLimits::max_bytes`]: they are 16 bytes per acked
//! record of the segments still on disk.
//!
//! # Corruption
//!
//! Reading never fails on bad bytes and never panics. A record whose checksum fails while its
//! framing holds (the next record's magic, or the end of the file, follows where its length
//! says it ends) is skipped on its own. Anything else that is not a valid record (a short
//! header, a length running past the end of the file, a wrong magic, a damaged length) starts
//! an unreadable region: the reader scans forward for the next magic whose record checks out
//! and carries on from there, so a truncated tail simply ends the segment. Each skipped record
//! and each unreadable region counts once in [`SegmentRead::corrupt`]. A corrupt record has no
//! id to ack: the segment counts as fully acked once its valid records are.
//!
//! # Durability
//!
//! Appends hand whole frames straight to the file (one `write_all` per batch of up to about
//! 1 MiB; nothing is kept in a user-space buffer between calls), and so do acks (one entry per
//! `write`), so a process crash (`kill -9`) loses nothing that [`Spool::append`] accepted and
//! no ack [`Spool::ack`] took: the next process replays every appended record that was not
//! acked, and none that was (a torn last record, cut by the crash mid-append, aside).
//! Neither `append` nor `ack` `fsync`s. [`Spool::sync`] `fsync`s every segment written since
//! the last sync, every ack file written since the last sync, and the directory when segment
//! or ack files were created or adopted, so a machine crash loses at most what was appended
//! or acked after the last sync: a lost record is gone, a lost ack only replays its record
//! once more (at least once). A new process never appends records to an old segment: it
//! starts a new one, leaving any torn tail behind where the reader skips it. It does append
//! acks to the ack file of an old segment whose records it acks.
//!
//! # Privacy
//!
//! Spooled events are sanitized, but they are still the service's private data. On Unix the
//! directory the spool creates is `0700` and its files `0600`, and [`Spool::open`] refuses an
//! existing directory that another user owns or that its group or others may write to
//! ([`SpoolError::NotPrivate`]); such a sibling is neither used as a slot nor adopted.
//!
//! # One owner per directory
//!
//! A spool directory belongs to one [`Spool`] at a time. [`Spool::open`] takes an exclusive
//! advisory lock on `dir/LOCK` (`flock` on Unix, released by the kernel when the owner
//! exits, even by a crash) and writes its pid there (for the humans, and for the message of
//! [`SpoolError::Locked`]). A second opener waits a little for the owner to let go (a
//! restarting process, a worker finishing its teardown), then fails with
//! [`SpoolError::Locked`] instead of sharing the directory: two writers would replay each
//! other's records and delete each other's segments.
//!
//! Several instances of a service can still share one configured directory:
//! [`Spool::open_slot`] takes the first free of `dir`, `dir.1`, `dir.2`, ... and moves the
//! segments of the slots nobody holds into the spool it opened, so they are replayed too.

// One file per concern: `format` (record framing, CRC, torn/corrupt detection), `dir`
// (directory creation and privacy check, segment and ack file names, scanning, fsync of the
// directory), `lock` (the LOCK file), `slots` (slot selection and adoption of orphaned
// siblings), `append` (the write side and size limits), `ack` (ack files, and deleting what
// is fully acked), `replay` (sealed segments, read, remove).
mod ack;
mod append;
mod dir;
mod format;
mod lock;
mod memory;
mod replay;
mod slots;
#[cfg(test)]
mod testutil;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ack::AckFile;
use dir::{ack_name, check_private, create_dir, remove_if_present, scan};
use lock::lock_dir;

pub use dir::{RecordId, SegmentId};
pub use format::{Record, SegmentRead, RECORD_OVERHEAD};
pub use lock::LOCK_WAIT;
pub(crate) use memory::{MemorySpool, Store};
pub use slots::SPOOL_SLOTS;

/// Default cap on the bytes all segments of a spool may hold together: 256 MiB.
///
/// Appends beyond it fail with [`SpoolError::Full`].
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Default size at which the active segment is closed and a new one started: 8 MiB.
///
/// It is also the size of the largest record the spool accepts (see [`SpoolError::TooLarge`]).
pub const DEFAULT_SPOOL_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// Size limits of a [`Spool`].
#[derive(Debug, Clone)]
pub struct SpoolLimits {
    /// Most bytes all segments may hold together, record headers included.
    ///
    /// Default: [`DEFAULT_SPOOL_MAX_BYTES`].
    pub max_bytes: u64,
    /// Size at which the active segment is closed and a new one is started. A record whose
    /// frame (payload plus [`RECORD_OVERHEAD`]) exceeds it is refused.
    ///
    /// Default: [`DEFAULT_SPOOL_SEGMENT_BYTES`].
    pub segment_bytes: u64,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            segment_bytes: DEFAULT_SPOOL_SEGMENT_BYTES,
        }
    }
}

/// Errors of the spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The record would take the spool past its size limit. Nothing was written.
    #[error(
        "spool full (max {max_bytes} bytes in {}): raise OMNINODE_SPOOL_MAX_BYTES or restore broker connectivity",
        dir.display()
    )]
    Full {
        /// The configured limit, [`SpoolLimits::max_bytes`].
        max_bytes: u64,
        /// The spool directory.
        dir: PathBuf,
    },
    /// Reading or writing the spool directory failed. From
    /// [`read_segment`](Spool::read_segment) it means "try later": the segment is left as
    /// it was and must not be removed for it.
    #[error(
        "spool I/O error: {0}: check that the spool directory is writable and its disk has free space"
    )]
    Io(#[from] io::Error),
    /// The record can never fit: its frame is larger than a segment (or than the whole
    /// spool). Nothing was written.
    #[error(
        "record of {len} bytes is larger than the largest the spool holds ({max} bytes incl. {RECORD_OVERHEAD}-byte header): raise the spool's segment size (SpoolLimits::segment_bytes) or its total bound (OMNINODE_SPOOL_MAX_BYTES)"
    )]
    TooLarge {
        /// Size of the payload that was refused.
        len: u64,
        /// Largest frame (payload plus header) the spool accepts with its current limits.
        max: u64,
    },
    /// Another [`Spool`] (in this process or another) holds the directory's lock.
    #[error(
        "{} is locked by another pipeline{}: give each instance its own spool directory",
        dir.display(),
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked {
        /// The spool directory.
        dir: PathBuf,
        /// The owner's pid, as it wrote it into the lock file.
        pid: Option<u32>,
    },
    /// The directory is not private to the user this process runs as (Unix): another user
    /// owns it, or its group or others may write to it, so they could read, replace or
    /// inject spooled records. Nothing was written to it.
    #[error("{}", dir::not_private_advice(dir, *owner, *user, *mode))]
    NotPrivate {
        /// The spool directory.
        dir: PathBuf,
        /// The uid that owns the directory.
        owner: u32,
        /// The (effective) uid of this process.
        user: u32,
        /// The directory's permission bits.
        mode: u32,
    },
}

/// An append-only, checksummed store of byte records in a directory, replayed segment by
/// segment, oldest first. See the [module docs](self) for the format and guarantees.
///
/// It is `Send` and not internally synchronised; the owner wraps it in a `Mutex`.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
    /// Every segment file on disk, by number, and what is known of it.
    segments: BTreeMap<u64, Segment>,
    /// Sum of the segments' sizes.
    total: u64,
    /// The segment appends go to; `None` until the first append and after sealing.
    active: Option<Active>,
    /// Sealed segments written since the last `sync`, kept open so `sync` can still fsync them.
    unsynced: Vec<(u64, File)>,
    /// A segment was created since the directory was last fsynced.
    dir_dirty: bool,
    next_id: u64,
    /// The open `LOCK` file; its lock is held as long as it is open.
    _lock: File,
}

#[derive(Debug)]
struct Active {
    id: u64,
    file: File,
}

/// What the spool knows of one segment.
#[derive(Debug, Default)]
struct Segment {
    /// Size of the file: found on open, then tracked.
    size: u64,
    /// How many valid records it holds, when known: counted by this process's appends, or by
    /// the last read. `None` for a segment found on open (or adopted) and not read since.
    records: Option<u64>,
    /// Offsets of its records acked so far, kept while `records` is known.
    acked: HashSet<u64>,
    /// Its ack file, open for appending, once this process acked one of its records.
    acks: Option<AckFile>,
}

impl Segment {
    /// A segment file this process did not write (found on open, or adopted).
    fn found(size: u64) -> Self {
        Segment {
            size,
            ..Segment::default()
        }
    }

    /// Whether every valid record in it is known to be acked.
    fn fully_acked(&self) -> bool {
        self.records == Some(self.acked.len() as u64)
    }
}

impl Spool {
    /// Opens the spool in `dir`. Creates the directory (and parents) if missing, refuses
    /// it with [`SpoolError::NotPrivate`] if another user owns it or may write to it (Unix),
    /// takes its lock (waiting up to [`LOCK_WAIT`] for another owner to let go), and scans
    /// the segments an earlier process left.
    ///
    /// Creates no segment until the first append; that append starts a new segment
    /// numbered after the highest existing one, so old segments are only ever read.
    pub fn open(dir: impl Into<PathBuf>, limits: SpoolLimits) -> Result<Spool, SpoolError> {
        Self::open_waiting(dir, limits, LOCK_WAIT)
    }

    /// [`Spool::open`], waiting at most `wait` for the lock (zero: fail at once).
    pub fn open_waiting(
        dir: impl Into<PathBuf>,
        limits: SpoolLimits,
        wait: Duration,
    ) -> Result<Spool, SpoolError> {
        let dir = dir.into();
        create_dir(&dir)?;
        check_private(&dir)?;

        // Lock first: the segments are only ours to read once nobody else writes them.
        let lock = lock_dir(&dir, wait)?;

        // Names and sizes only: a full spool opens without reading its segments.
        let found = scan(&dir)?;
        for orphan in found.orphan_acks() {
            // Best effort: one left behind is retried on the next open, and numbering goes
            // on after it, so it never names a new segment.
            let _ = remove_if_present(&dir.join(ack_name(orphan)));
        }
        let next_id = found.max_id().map_or(0, |max| max.saturating_add(1));
        let segments: BTreeMap<_, _> = found
            .segments
            .into_iter()
            .map(|(id, size)| (id, Segment::found(size)))
            .collect();
        let total = segments.values().map(|segment| segment.size).sum();

        Ok(Spool {
            dir,
            limits,
            segments,
            total,
            active: None,
            unsynced: Vec::new(),
            dir_dirty: false,
            next_id,
            _lock: lock,
        })
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The limits the spool was opened with.
    pub fn limits(&self) -> &SpoolLimits {
        &self.limits
    }

    /// Total bytes of all segment files, headers, acked records and any corrupt bytes
    /// included; ack files are not counted. This is what [`SpoolLimits::max_bytes`] bounds.
    pub fn bytes(&self) -> u64 {
        self.total
    }

    /// Records written and not acked yet, in the segments whose records this process has
    /// counted (written or read): segments an earlier process left are counted once replay
    /// reads them.
    pub fn unacked_records(&self) -> u64 {
        self.segments
            .values()
            .filter_map(|s| s.records.map(|n| n.saturating_sub(s.acked.len() as u64)))
            .sum()
    }

    /// Number of segment files, the active one included.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Whether the spool has no segments: exactly when
    /// [`oldest_sealed`](Self::oldest_sealed) returns `None`. A segment whose records are
    /// all acked but that is not deleted yet (the active one, or one found on open and not
    /// read since) still counts.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(SegmentId(id).to_string())
    }

    fn ack_path(&self, id: u64) -> PathBuf {
        self.dir.join(ack_name(id))
    }

    fn active_id(&self) -> Option<u64> {
        self.active.as_ref().map(|active| active.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Spool>();
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let full = SpoolError::Full {
            max_bytes: 10,
            dir: PathBuf::from("/var/spool/x"),
        };
        assert_eq!(
            full.to_string(),
            "spool full (max 10 bytes in /var/spool/x): raise OMNINODE_SPOOL_MAX_BYTES or restore broker connectivity"
        );
    }
}
