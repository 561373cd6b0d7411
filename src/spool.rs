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
//! Every append is one `write` of whole frames straight to the file (no user-space buffer), so
//! a process crash loses nothing that [`Spool::append`] accepted. [`Spool::sync`] `fsync`s
//! every segment written since the last sync (and the directory, when segments were created),
//! so a machine crash loses at most what was appended after the last sync. A new process
//! never appends to an old segment: it starts a new one, leaving any torn tail behind where
//! the reader skips it.
//!
//! # One owner per directory
//!
//! A spool directory belongs to one [`Spool`] at a time. [`Spool::open`] takes an exclusive
//! advisory lock on `dir/LOCK` (`flock` on Unix, released by the kernel when the owner
//! exits, even by a crash) and writes its pid there for the humans. A second opener waits a
//! little for the owner to let go (a restarting process, a worker finishing its teardown),
//! then fails with [`SpoolError::Locked`] instead of sharing the directory: two writers
//! would replay each other's records and delete each other's segments.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Default cap on the bytes all segments of a spool may hold together: 256 MiB.
///
/// Appends beyond it fail with [`SpoolError::Full`].
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Default size at which the active segment is closed and a new one started: 8 MiB.
///
/// It is also the size of the largest record the spool accepts (see [`SpoolError::TooLarge`]).
pub const DEFAULT_SPOOL_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// Bytes each record takes on disk in addition to its payload (the record header).
pub const RECORD_OVERHEAD: u64 = HEADER_LEN as u64;

const MAGIC: [u8; 4] = *b"OSP1";
const HEADER_LEN: usize = 12;
const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".spool";
const SEGMENT_DIGITS: usize = 20;
const LOCK_FILE: &str = "LOCK";
/// `append_all` hands the OS at most this much per `write`, so a long batch does not build
/// one huge buffer.
const BATCH_BYTES: usize = 1024 * 1024;
/// Attempts to find a free segment number when another writer took ours.
const CREATE_ATTEMPTS: usize = 64;

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

/// Identifies one segment file of a spool. Ordered by creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(u64);

impl fmt::Display for SegmentId {
    /// Formats as the segment's file name, which is what an operator finds on disk.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SEGMENT_PREFIX}{:020}{SEGMENT_SUFFIX}", self.0)
    }
}

/// What [`Spool::read_segment`] found in a segment.
#[derive(Debug, Default)]
pub struct SegmentRead {
    /// The payloads of all valid records, in the order they were appended.
    pub records: Vec<Vec<u8>>,
    /// How many damaged records and unreadable regions were skipped.
    pub corrupt: u64,
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
    /// Reading or writing the spool directory failed.
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
}

/// How many directories [`Spool::open_slot`] tries: the configured one and 15 siblings.
pub const SPOOL_SLOTS: u32 = 16;

/// How long [`Spool::open`] waits for the owner of a locked directory to let go.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

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
    /// Opens the spool in `dir`. Creates the directory (and parents) if missing, takes its
    /// lock (waiting up to [`LOCK_WAIT`] for another owner to let go), and scans the
    /// segments an earlier process left.
    ///
    /// Opens nothing for writing until the first append; that append starts a new segment
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
        if !dir.exists() {
            // Spooled events are sanitized, but they are still the service's private data:
            // a directory we create is readable by its owner only.
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(&dir)?;
        }

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

    /// Opens the first free of `base`, `base.1`, ... `base.<slots - 1>`: several instances of
    /// a service on one host can share one configured directory. `base` gets `wait` (it is
    /// where a restarted single instance finds its spool; [`LOCK_WAIT`] is a good value),
    /// the others none. The segments of every other slot that nobody holds (an instance
    /// that crashed, or is no longer started) are moved into the opened spool, as far as
    /// its size limit allows, so they are replayed too.
    pub fn open_slot(
        base: &Path,
        limits: SpoolLimits,
        slots: u32,
        wait: Duration,
    ) -> Result<Spool, SpoolError> {
        let slot = |n: u32| -> PathBuf {
            let mut name = base.file_name().unwrap_or_default().to_owned();
            name.push(format!(".{n}"));
            base.with_file_name(name)
        };
        // The configured directory's own error is the one to report; a sibling that cannot
        // be used (not a directory, no permission) only means trying the next.
        let mut opened = Spool::open_waiting(base, limits.clone(), wait);
        if matches!(opened, Err(SpoolError::Locked { .. })) {
            for n in 1..slots {
                if let Ok(spool) = Spool::open_waiting(slot(n), limits.clone(), Duration::ZERO) {
                    opened = Ok(spool);
                    break;
                }
            }
        }
        let mut spool = opened?;
        for n in 1..slots {
            let dir = slot(n);
            if dir != spool.dir && dir.is_dir() {
                spool.adopt(&dir);
            }
        }
        Ok(spool)
    }

    /// Moves the segments of another spool directory into this one, if nobody holds it
    /// (best effort: a segment that cannot be moved stays where it is).
    fn adopt(&mut self, other: &Path) {
        let Ok(_lock) = lock_dir(other, Duration::ZERO) else {
            return;
        };
        let Ok(segments) = scan_segments(other) else {
            return;
        };
        for (id, len) in segments {
            let from = other.join(SegmentId(id).to_string());
            // Only what fits: the rest waits in the sibling for a later owner, rather than
            // filling this spool and refusing the events of the next outage.
            if self.total + len > self.limits.max_bytes {
                break;
            }
            let to = self.segment_path(self.next_id);
            if fs::rename(&from, &to).is_ok() {
                self.segments.insert(self.next_id, len);
                self.total += len;
                self.next_id += 1;
                self.dir_dirty = true;
            }
        }
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The limits the spool was opened with.
    pub fn limits(&self) -> &SpoolLimits {
        &self.limits
    }

    /// Appends one record to the active segment, starting a new segment first when the
    /// record would take the active one past [`SpoolLimits::segment_bytes`].
    ///
    /// Fails with [`SpoolError::Full`] when the spool would exceed
    /// [`SpoolLimits::max_bytes`] and with [`SpoolError::TooLarge`] when the record can
    /// never fit; in both cases nothing is written. The record reaches the OS before this
    /// returns; call [`sync`](Self::sync) to make it durable against a machine crash.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), SpoolError> {
        self.append_all([payload]).map(drop).map_err(|(_, e)| e)
    }

    /// Appends many records, handing them to the OS in as few writes as possible (one per
    /// segment, in chunks of about 1 MiB).
    ///
    /// Stops at the first error and returns it with how many records were written, which
    /// are the first ones of `payloads`. Records are never written partially except by a
    /// failing write, whose torn record the reader skips.
    pub fn append_all<'a>(
        &mut self,
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<usize, (usize, SpoolError)> {
        let mut batch = Batch::default();
        let mut done = 0;
        for payload in payloads {
            let frame_len = match self.frame_len(payload.len()) {
                Ok(n) => n,
                Err(e) => return Err(self.fail(&mut batch, done, e)),
            };
            let pending = batch.buf.len() as u64;
            if self.total + pending + frame_len > self.limits.max_bytes {
                let full = SpoolError::Full {
                    max_bytes: self.limits.max_bytes,
                    dir: self.dir.clone(),
                };
                return Err(self.fail(&mut batch, done, full));
            }
            let needs_segment = match &self.active {
                None => true,
                Some(active) => {
                    let used = self.segments.get(&active.id).copied().unwrap_or(0) + pending;
                    used > 0 && used + frame_len > self.limits.segment_bytes
                }
            };
            if needs_segment {
                done += self
                    .write_batch(&mut batch)
                    .map_err(|(n, e)| (done + n, e))?;
                self.start_segment().map_err(|e| (done, e))?;
            }
            batch.push(payload);
            if batch.buf.len() >= BATCH_BYTES {
                done += self
                    .write_batch(&mut batch)
                    .map_err(|(n, e)| (done + n, e))?;
            }
        }
        done += self
            .write_batch(&mut batch)
            .map_err(|(n, e)| (done + n, e))?;
        Ok(done)
    }

    /// Makes everything appended so far durable: `fsync`s the active segment, every segment
    /// sealed since the last sync, and the directory when segments were created.
    ///
    /// Call it on shutdown and periodically; appends alone survive a process crash but not a
    /// machine crash.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        while let Some((_, file)) = self.unsynced.last() {
            file.sync_data()?;
            self.unsynced.pop();
        }
        if let Some(active) = &self.active {
            active.file.sync_data()?;
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
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

    /// The oldest segment, ready for replay. If it is the active segment it is sealed first,
    /// so later appends go to a new segment and replay never races appends.
    pub fn oldest_sealed(&mut self) -> Option<SegmentId> {
        let id = *self.segments.keys().next()?;
        if self.active.as_ref().is_some_and(|active| active.id == id) {
            self.seal();
        }
        Some(SegmentId(id))
    }

    /// Reads all valid records of a segment in append order, skipping (and counting) corrupt
    /// ones. Fails only when the file cannot be read.
    pub fn read_segment(&self, id: SegmentId) -> Result<SegmentRead, SpoolError> {
        let data = fs::read(self.segment_path(id.0))?;
        Ok(parse_segment(&data))
    }

    /// Deletes a segment once all its records were delivered or re-routed. Removing a
    /// segment that is already gone is not an error.
    pub fn remove_segment(&mut self, id: SegmentId) -> Result<(), SpoolError> {
        if self.active.as_ref().is_some_and(|active| active.id == id.0) {
            self.active = None;
        }
        self.unsynced.retain(|(unsynced, _)| *unsynced != id.0);
        match fs::remove_file(self.segment_path(id.0)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(size) = self.segments.remove(&id.0) {
            self.total -= size;
        }
        Ok(())
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(SegmentId(id).to_string())
    }

    /// The on-disk size of a record, or `TooLarge` when no segment can ever hold it.
    fn frame_len(&self, payload_len: usize) -> Result<u64, SpoolError> {
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
        Ok(frame_len)
    }

    /// Writes what is batched, then returns `err` with the number of records written.
    fn fail(&mut self, batch: &mut Batch, done: usize, err: SpoolError) -> (usize, SpoolError) {
        match self.write_batch(batch) {
            Ok(n) => (done + n, err),
            // The write error is the more urgent one to report.
            Err((n, write_err)) => (done + n, write_err),
        }
    }

    /// Writes the batch to the active segment in one `write_all` and returns how many
    /// records reached the file.
    fn write_batch(&mut self, batch: &mut Batch) -> Result<usize, (usize, SpoolError)> {
        if batch.ends.is_empty() {
            return Ok(0);
        }
        let records = batch.ends.len();
        let Some(active) = self.active.as_mut() else {
            // `append_all` starts a segment before it batches anything.
            batch.clear();
            return Err((0, io::Error::other("spool has no active segment").into()));
        };
        let size = self.segments.entry(active.id).or_insert(0);
        let result = active.file.write_all(&batch.buf);
        let written = match &result {
            Ok(()) => batch.buf.len() as u64,
            // Measure what did reach the file so sizes stay true and the caller learns which
            // records are in.
            Err(_) => active
                .file
                .metadata()
                .map_or(0, |meta| meta.len().saturating_sub(*size)),
        };
        *size += written;
        self.total += written;
        let complete = batch
            .ends
            .iter()
            .take_while(|&&end| end as u64 <= written)
            .count();
        batch.clear();
        match result {
            Ok(()) => Ok(records),
            Err(e) => {
                // A failed write may have left a torn record; later records go to a fresh
                // segment rather than after it.
                self.seal();
                Err((complete, e.into()))
            }
        }
    }

    /// Seals the active segment (if any) and creates the next one.
    fn start_segment(&mut self) -> Result<(), SpoolError> {
        self.seal();
        for _ in 0..CREATE_ATTEMPTS {
            let id = self.next_id;
            self.next_id = self.next_id.saturating_add(1);
            match File::options()
                .append(true)
                .create_new(true)
                .open(self.segment_path(id))
            {
                Ok(file) => {
                    self.segments.insert(id, 0);
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

    /// Stops appending to the active segment; keeps its handle until the next `sync`.
    fn seal(&mut self) {
        if let Some(active) = self.active.take() {
            self.unsynced.push((active.id, active.file));
        }
    }
}

/// Whole frames waiting for one `write`.
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    /// End offset in `buf` of each frame.
    ends: Vec<usize>,
}

impl Batch {
    fn push(&mut self, payload: &[u8]) {
        // `frame_len` already refused payloads longer than `u32::MAX`.
        let len = (payload.len() as u32).to_le_bytes();
        self.buf.reserve(HEADER_LEN + payload.len());
        self.buf.extend_from_slice(&MAGIC);
        self.buf.extend_from_slice(&len);
        self.buf
            .extend_from_slice(&checksum(len, payload).to_le_bytes());
        self.buf.extend_from_slice(payload);
        self.ends.push(self.buf.len());
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }
}

fn checksum(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(payload);
    hasher.finalize()
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What starts at one offset of a segment.
enum Frame<'a> {
    Valid {
        payload: &'a [u8],
        end: usize,
    },
    BadChecksum {
        end: usize,
    },
    /// No record can start here: short header, wrong magic or a length past the end.
    Unreadable,
}

fn frame_at(data: &[u8], pos: usize) -> Frame<'_> {
    let rest = &data[pos..];
    if rest.len() < HEADER_LEN || rest[..4] != MAGIC {
        return Frame::Unreadable;
    }
    let len_bytes = [rest[4], rest[5], rest[6], rest[7]];
    let crc = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > rest.len() - HEADER_LEN {
        return Frame::Unreadable;
    }
    let payload = &rest[HEADER_LEN..HEADER_LEN + len];
    let end = pos + HEADER_LEN + len;
    if checksum(len_bytes, payload) == crc {
        Frame::Valid { payload, end }
    } else {
        Frame::BadChecksum { end }
    }
}

/// Whether `rest` starts with a record header or is a (possibly torn) prefix of one.
fn at_record_boundary(rest: &[u8]) -> bool {
    let n = rest.len().min(MAGIC.len());
    rest[..n] == MAGIC[..n]
}

fn find_magic(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?
        .windows(MAGIC.len())
        .position(|window| window == MAGIC)
        .map(|i| from + i)
}

fn parse_segment(data: &[u8]) -> SegmentRead {
    let mut read = SegmentRead::default();
    let mut pos = 0;
    let mut in_unreadable = false;
    while pos < data.len() {
        match frame_at(data, pos) {
            Frame::Valid { payload, end } => {
                read.records.push(payload.to_vec());
                pos = end;
                in_unreadable = false;
            }
            // The framing holds, so only this record is damaged.
            Frame::BadChecksum { end } if at_record_boundary(&data[end..]) => {
                read.corrupt += 1;
                pos = end;
                in_unreadable = false;
            }
            // The header itself cannot be trusted: resynchronise on the next magic. A torn
            // tail has none, which ends the segment.
            Frame::BadChecksum { .. } | Frame::Unreadable => {
                if !in_unreadable {
                    read.corrupt += 1;
                    in_unreadable = true;
                }
                pos = find_magic(data, pos + 1).unwrap_or(data.len());
            }
        }
    }
    read
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Other platforms cannot open a directory as a file; their file systems make new names
/// durable with the file's data.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// The segment files in `dir` and their sizes, by id.
fn scan_segments(dir: &Path) -> io::Result<BTreeMap<u64, u64>> {
    let mut segments = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) else {
            continue;
        };
        let meta = fs::metadata(entry.path())?;
        if meta.is_file() {
            segments.insert(id, meta.len());
        }
    }
    Ok(segments)
}

/// Takes the exclusive lock of `dir/LOCK`, retrying for `wait`, and writes this process's
/// pid into it. Writing also proves early that the directory is writable, rather than on
/// the first append while the broker is already down.
fn lock_dir(dir: &Path, wait: Duration) -> Result<File, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(fs::TryLockError::WouldBlock) => {
                let pid = fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                return Err(SpoolError::Locked {
                    dir: dir.to_owned(),
                    pid,
                });
            }
            // A platform or file system without locks: one owner per directory is then
            // the deployer's to ensure, as before locks.
            Err(fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => break,
            Err(fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
    file.set_len(0)?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_created_directory_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a").join("spool");
        let _spool = Spool::open(&dir, SpoolLimits::default()).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    fn limits(max_bytes: u64, segment_bytes: u64) -> SpoolLimits {
        SpoolLimits {
            max_bytes,
            segment_bytes,
        }
    }

    fn frame(payload_len: usize) -> u64 {
        payload_len as u64 + RECORD_OVERHEAD
    }

    fn payload(i: usize) -> Vec<u8> {
        format!("record-{i:04}").into_bytes()
    }

    /// All records of all segments, oldest first, removing each segment after reading it.
    fn drain(spool: &mut Spool) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(id) = spool.oldest_sealed() {
            let read = spool.read_segment(id).unwrap();
            assert_eq!(read.corrupt, 0, "{id}");
            out.extend(read.records);
            spool.remove_segment(id).unwrap();
        }
        out
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "spool"))
            .collect();
        files.sort();
        files
    }

    /// A deterministic xorshift stream, so failures reproduce.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn spool_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Spool>();
    }

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
        let mut spool = Spool::open(dir.path(), limits(1 << 20, seg)).unwrap();
        for i in 0..5 {
            spool.append(&payload(i)).unwrap();
        }
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
        let n = spool
            .append_all(payloads.iter().map(Vec::as_slice))
            .unwrap();
        assert_eq!(n, 10);
        assert_eq!(spool.segment_count(), 4);
        assert_eq!(drain(&mut spool), payloads);
        assert_eq!(spool.bytes(), 0);
    }

    #[test]
    fn oldest_first_across_reopen_and_numbering_continues() {
        let dir = tempfile::tempdir().unwrap();
        let seg = 2 * frame(payload(0).len());
        {
            let mut spool = Spool::open(dir.path(), limits(1 << 20, seg)).unwrap();
            for i in 0..3 {
                spool.append(&payload(i)).unwrap();
            }
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
    fn full_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let f = frame(payload(0).len());
        let mut spool = Spool::open(dir.path(), limits(3 * f + f / 2, 1 << 20)).unwrap();
        for i in 0..3 {
            spool.append(&payload(i)).unwrap();
        }
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
        let (n, err) = spool
            .append_all(batch.iter().map(Vec::as_slice))
            .unwrap_err();
        assert_eq!(n, 3);
        assert!(matches!(err, SpoolError::Full { .. }));
        assert_eq!(drain(&mut spool), batch[..3]);
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

    #[test]
    fn torn_tail_keeps_earlier_records() {
        for cut in [5, HEADER_LEN as u64 + 2, 1] {
            let dir = tempfile::tempdir().unwrap();
            {
                let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
                for i in 0..3 {
                    spool.append(&payload(i)).unwrap();
                }
                spool.sync().unwrap();
            }
            let file = &segment_files(dir.path())[0];
            let len = fs::metadata(file).unwrap().len();
            File::options()
                .write(true)
                .open(file)
                .unwrap()
                .set_len(len - cut)
                .unwrap();

            let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
            assert_eq!(spool.bytes(), len - cut);
            let id = spool.oldest_sealed().unwrap();
            let read = spool.read_segment(id).unwrap();
            assert_eq!(read.records, vec![payload(0), payload(1)], "cut {cut}");
            assert_eq!(read.corrupt, 1, "cut {cut}");
        }
    }

    #[test]
    fn damaged_middle_record_is_skipped() {
        let f = frame(payload(0).len()) as usize;
        // Payload byte, crc byte, low and high length bytes, magic byte of record 1.
        for offset in [f + HEADER_LEN + 3, f + 9, f + 4, f + 7, f] {
            let dir = tempfile::tempdir().unwrap();
            let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
            for i in 0..3 {
                spool.append(&payload(i)).unwrap();
            }
            let id = spool.oldest_sealed().unwrap();
            let path = spool.segment_path(id.0);
            let mut data = fs::read(&path).unwrap();
            data[offset] ^= 0x01;
            fs::write(&path, &data).unwrap();

            let read = spool.read_segment(id).unwrap();
            assert_eq!(
                read.records,
                vec![payload(0), payload(2)],
                "offset {offset}"
            );
            assert_eq!(read.corrupt, 1, "offset {offset}");
        }
    }

    #[test]
    fn garbage_segment_does_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let name = SegmentId(7).to_string();
        fs::write(dir.path().join(&name), noise(42, 64 * 1024)).unwrap();
        // Foreign files are not segments.
        fs::write(dir.path().join("segment-1.spool"), b"x").unwrap();
        fs::write(dir.path().join("notes.txt"), b"x").unwrap();

        let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert_eq!(spool.segment_count(), 1);
        let id = spool.oldest_sealed().unwrap();
        assert_eq!(id.to_string(), name);
        let read = spool.read_segment(id).unwrap();
        assert!(read.records.is_empty());
        assert!(read.corrupt >= 1);

        // New records go after the garbage segment and read back cleanly.
        spool.append(b"after").unwrap();
        spool.remove_segment(id).unwrap();
        assert_eq!(drain(&mut spool), vec![b"after".to_vec()]);
    }

    #[test]
    fn mutated_segments_never_panic_and_keep_intact_records() {
        let valid_payloads: Vec<_> = (0..20).map(payload).collect();
        let mut valid = Batch::default();
        for p in &valid_payloads {
            valid.push(p);
        }
        let frame_len = frame(payload(0).len()) as usize;
        for seed in 0..300u64 {
            let mut data = valid.buf.clone();
            let r = noise(seed, 8);
            let cut = usize::from(u16::from_le_bytes([r[0], r[1]])) % (data.len() + 1);
            data.truncate(cut);
            let mut damaged_from = cut;
            if !data.is_empty() {
                let at = usize::from(u16::from_le_bytes([r[2], r[3]])) % data.len();
                data[at] ^= r[4] | 1;
                damaged_from = damaged_from.min(at);
            }
            let read = parse_segment(&data);
            let intact = damaged_from / frame_len;
            assert!(read.records.len() >= intact, "seed {seed}");
            assert_eq!(
                read.records[..intact],
                valid_payloads[..intact],
                "seed {seed}"
            );
            // Whatever is read after the damage is a real record, in order.
            let mut last = None;
            for record in &read.records {
                let i = valid_payloads.iter().position(|p| p == record);
                assert!(i.is_some() && i > last, "seed {seed}");
                last = i;
            }
            assert!(data.is_empty() || read.corrupt >= 1, "seed {seed}");
        }
        for seed in 0..50u64 {
            let read = parse_segment(&noise(seed, 4096));
            assert!(read.corrupt >= 1);
        }
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

    #[test]
    fn a_second_owner_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join(LOCK_FILE);
        let first = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert_eq!(
            fs::read_to_string(&lock).unwrap(),
            format!("{}\n", std::process::id())
        );
        let err =
            Spool::open_waiting(dir.path(), SpoolLimits::default(), Duration::ZERO).unwrap_err();
        assert!(
            matches!(&err, SpoolError::Locked { pid: Some(p), .. } if *p == std::process::id()),
            "{err:?}"
        );
        assert!(err.to_string().contains("its own spool directory"), "{err}");

        // The waiting opener gets the directory once the owner is gone.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(first);
        });
        let second = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        releaser.join().unwrap();
        drop(second);

        // A stale lock file (its owner died) is no obstacle.
        fs::write(&lock, format!("{}\n", u32::MAX)).unwrap();
        Spool::open_waiting(dir.path(), SpoolLimits::default(), Duration::ZERO).unwrap();
    }

    #[test]
    fn instances_sharing_a_directory_take_slots_and_orphans_are_adopted() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().join("svc");
        let open = |slots| Spool::open_slot(&base, SpoolLimits::default(), slots, Duration::ZERO);
        let a = open(4).unwrap();
        assert_eq!(a.dir(), base);
        // A second live instance gets the first free sibling and spools there.
        let mut b = open(4).unwrap();
        assert_eq!(b.dir(), root.path().join("svc.1"));
        b.append_all([payload(1).as_slice(), payload(2).as_slice()])
            .unwrap();
        b.sync().unwrap();
        drop(b);
        // While `a` holds `svc`, the next instance takes the free `svc.1`, records and all.
        let c = open(4).unwrap();
        assert_eq!(c.dir(), root.path().join("svc.1"));
        drop(c);
        drop(a);
        // The next owner of `svc` adopts what the free `svc.1` holds.
        let mut d = open(4).unwrap();
        assert_eq!(d.dir(), base);
        assert_eq!(drain(&mut d), vec![payload(1), payload(2)]);
        let left: Vec<_> = fs::read_dir(root.path().join("svc.1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [LOCK_FILE]);

        // Every slot held: refused, with the reason.
        let _e = open(2).unwrap();
        let err = open(2).unwrap_err();
        assert!(matches!(err, SpoolError::Locked { .. }), "{err:?}");
    }

    #[test]
    fn adoption_stays_within_the_size_limit_and_unusable_siblings_are_skipped() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().join("svc");
        let small = limits(3 * frame(11), 1024);
        let open = || Spool::open_slot(&base, small.clone(), 4, Duration::ZERO);
        let mut a = open().unwrap();
        a.append(&payload(9)).unwrap();
        // `svc.1` is a file, not a directory: the next slot is used.
        fs::write(root.path().join("svc.1"), b"x").unwrap();
        let mut b = open().unwrap();
        assert_eq!(b.dir(), root.path().join("svc.2"));
        for i in 0..3 {
            b.append(&payload(i)).unwrap();
            b.sync().unwrap();
            b.seal();
        }
        drop(b);
        drop(a);
        // The owner of `svc` holds one record: of the three one-record segments of `svc.2`
        // only two fit; the third stays there for a later owner.
        let mut d = open().unwrap();
        assert!(d.bytes() <= 3 * frame(11), "{}", d.bytes());
        assert_eq!(drain(&mut d), vec![payload(9), payload(0), payload(1)]);
        let left = fs::read_dir(root.path().join("svc.2"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != LOCK_FILE)
            .count();
        assert_eq!(left, 1);
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
