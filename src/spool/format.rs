//! The record format inside a segment: framing a payload (magic, length, CRC-32) for a
//! write, and parsing a segment's bytes back into records, skipping and counting what is
//! torn or corrupt and leaving out what is acked. See the [spool docs](super) for the layout
//! and the corruption rules.

use std::collections::HashSet;
use std::ops::Deref;

use super::{RecordId, SegmentId};

/// Bytes each record takes on disk in addition to its payload (the record header).
pub const RECORD_OVERHEAD: u64 = HEADER_LEN as u64;

const MAGIC: [u8; 4] = *b"OSP1";
pub(super) const HEADER_LEN: usize = 12;

/// What [`Spool::read_segment`](super::Spool::read_segment) found in a segment.
#[derive(Debug, Default)]
pub struct SegmentRead {
    /// The valid records that are not acked, in the order they were appended.
    pub records: Vec<Record>,
    /// How many damaged records and unreadable regions were skipped.
    pub corrupt: u64,
}

/// One record read back from the spool: its id (to [`ack`](super::Spool::ack) it) and its
/// payload. It dereferences to, and compares equal with, its payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where the record is; what [`Spool::ack`](super::Spool::ack) takes.
    pub id: RecordId,
    /// The bytes that were appended.
    pub payload: Vec<u8>,
}

impl Deref for Record {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.payload
    }
}

impl PartialEq<Vec<u8>> for Record {
    fn eq(&self, payload: &Vec<u8>) -> bool {
        self.payload == *payload
    }
}

impl PartialEq<Record> for Vec<u8> {
    fn eq(&self, record: &Record) -> bool {
        *self == record.payload
    }
}

impl PartialEq<[u8]> for Record {
    fn eq(&self, payload: &[u8]) -> bool {
        self.payload == payload
    }
}

/// Whole frames waiting for one `write`.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) buf: Vec<u8>,
    /// End offset in `buf` of each frame.
    pub(super) ends: Vec<usize>,
}

impl Batch {
    pub(super) fn push(&mut self, payload: &[u8]) {
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

    /// Start offset in `buf` of each frame.
    pub(super) fn starts(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(0).chain(self.ends.iter().copied())
    }

    pub(super) fn clear(&mut self) {
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
    // Checked against the bytes really there before anything is allocated for the record, so
    // a damaged length never costs more memory than the segment's own size.
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

/// A segment parsed against its acks.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    /// The unacked valid records and the corruption count.
    pub(super) read: SegmentRead,
    /// How many valid records the segment holds, acked or not.
    pub(super) valid: u64,
    /// The offsets of its valid records that `acked` names.
    pub(super) acked: HashSet<u64>,
}

/// Parses the bytes of segment `id`, leaving out (but counting) the valid records whose
/// offsets are in `acked`.
pub(super) fn parse_segment(id: SegmentId, data: &[u8], acked: &HashSet<u64>) -> Parsed {
    let mut parsed = Parsed::default();
    let read = &mut parsed.read;
    let mut pos = 0;
    let mut in_unreadable = false;
    while pos < data.len() {
        match frame_at(data, pos) {
            Frame::Valid { payload, end } => {
                let offset = pos as u64;
                parsed.valid += 1;
                if acked.contains(&offset) {
                    parsed.acked.insert(offset);
                } else {
                    read.records.push(Record {
                        id: RecordId {
                            segment: id,
                            offset,
                        },
                        payload: payload.to_vec(),
                    });
                }
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
    parsed
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File};

    use super::*;
    use crate::spool::testutil::*;
    use crate::spool::{SegmentId, Spool, SpoolLimits};

    #[test]
    fn torn_tail_keeps_earlier_records() {
        for cut in [5, HEADER_LEN as u64 + 2, 1] {
            let dir = tempfile::tempdir().unwrap();
            {
                let mut spool = spool_with(dir.path(), SpoolLimits::default(), 3);
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
            let mut spool = spool_with(dir.path(), SpoolLimits::default(), 3);
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
            let read = parse_segment(SegmentId(0), &data, &HashSet::new()).read;
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
            let read = parse_segment(SegmentId(0), &noise(seed, 4096), &HashSet::new()).read;
            assert!(read.corrupt >= 1);
        }
    }
}
