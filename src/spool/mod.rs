//! The local disk spool: an append-only, checksummed store for records the broker could not
//! take, replayed oldest first when delivery works again, including after a process restart
//! (SPEC §4).
//!
//! The spool stores opaque byte payloads. The owner encodes the sanitized record into bytes;
//! nothing here looks inside them.
//!
//! # On-disk format
//!
//! A spool is a directory of segment files named `segment-{:020}.spool`. Segment numbers rise
//! monotonically and continue after a restart from the highest number found, so lexical order
//! of the names equals creation order. A segment is a plain sequence of records:
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
//! # Corruption
//!
//! Reading never fails on bad bytes and never panics. A record whose checksum fails while its
//! framing holds (the next record's magic, or the end of the file, follows where its length
//! says it ends) is skipped on its own. Anything else that is not a valid record (a short
//! header, a length running past the end of the file, a wrong magic, a damaged length) starts
//! an unreadable region: the reader scans forward for the next magic whose record checks out
//! and carries on from there, so a truncated tail simply ends the segment. Each skipped record
//! and each unreadable region counts once in [`SegmentRead::corrupt`].
//!
//! # Durability
//!
//! Appends hand whole frames straight to the file (one `write_all` per batch of up to about
//! 1 MiB; nothing is kept in a user-space buffer between calls), so a process crash loses
//! nothing that [`Spool::append`] accepted. [`Spool::sync`] `fsync`s every segment written
//! since the last sync (and the directory, when segments were created or adopted), so a
//! machine crash loses at most what was appended after the last sync. A new process
//! never appends to an old segment: it starts a new one, leaving any torn tail behind where
//! the reader skips it.
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
// (directory creation and privacy check, segment names, scanning, fsync of the directory), `lock` (the LOCK
// file), `slots` (slot selection and adoption of orphaned siblings), `append` (the write
// side and size limits), `replay` (oldest sealed segment, read, remove).
mod append;
mod dir;
mod format;
mod lock;
mod replay;
mod slots;
#[cfg(test)]
mod testutil;

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dir::{check_private, create_dir, scan_segments};
use lock::lock_dir;

pub use dir::SegmentId;
pub use format::{SegmentRead, RECORD_OVERHEAD};
pub use lock::LOCK_WAIT;
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
    /// Every segment file on disk and its size; sizes are recomputed on open, then tracked.
    segments: BTreeMap<u64, u64>,
    /// Sum of `segments` values.
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

        let segments = scan_segments(&dir)?;
        let total = segments.values().sum();
        let next_id = segments
            .keys()
            .next_back()
            .map_or(0, |&max: &u64| max.saturating_add(1));

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

    /// Total bytes of all segment files, headers and any corrupt bytes included.
    pub fn bytes(&self) -> u64 {
        self.total
    }

    /// Number of segment files, the active one included.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Whether the spool has no segments, and so nothing to replay: exactly when
    /// [`oldest_sealed`](Self::oldest_sealed) returns `None`.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(SegmentId(id).to_string())
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
