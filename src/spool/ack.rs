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

    /// Appends the entry acking `offset`. A failed write is cut off again where possible,
    /// so later entries stay on entry boundaries.
    fn append(&mut self, offset: u64) -> io::Result<()> {
        self.unsynced = true;
        if let Err(e) = self.file.write_all(&ack_entry(offset)) {
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += ACK_ENTRY_LEN as u64;
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
        let path = self.ack_path(id.segment.0);
        let Some(segment) = self.segments.get_mut(&id.segment.0) else {
            return Ok(());
        };
        if id.offset >= segment.size || segment.acked.contains(&id.offset) {
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
        acks.append(id.offset)?;
        if segment.records.is_some() {
            segment.acked.insert(id.offset);
        }
        self.remove_if_done(id.segment);
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
