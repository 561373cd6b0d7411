//! Helpers shared by the spool's unit tests.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Record, Spool, SpoolLimits, RECORD_OVERHEAD};

pub(super) fn limits(max_bytes: u64, segment_bytes: u64) -> SpoolLimits {
    SpoolLimits {
        max_bytes,
        segment_bytes,
    }
}

pub(super) fn frame(payload_len: usize) -> u64 {
    payload_len as u64 + RECORD_OVERHEAD
}

pub(super) fn payload(i: usize) -> Vec<u8> {
    format!("record-{i:04}").into_bytes()
}

/// A spool opened in `dir` holding `payload(0)` .. `payload(records - 1)`.
pub(super) fn spool_with(dir: &Path, limits: SpoolLimits, records: usize) -> Spool {
    let mut spool = Spool::open(dir, limits).unwrap();
    for i in 0..records {
        spool.append(&payload(i)).unwrap();
    }
    spool
}

/// All records of all segments, oldest first, removing each segment after reading it.
pub(super) fn drain(spool: &mut Spool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(id) = spool.oldest_sealed() {
        let read = spool.read_segment(id).unwrap();
        assert_eq!(read.corrupt, 0, "{id}");
        out.extend(read.records.into_iter().map(|record| record.payload));
        spool.remove_segment(id).unwrap();
    }
    out
}

/// The unacked records of all sealed segments, oldest first, as a replay would read them
/// (which deletes the segments that have none left).
pub(super) fn unacked(spool: &mut Spool) -> Vec<Record> {
    let sealed: Vec<_> = spool.sealed_segments().collect();
    let mut out = Vec::new();
    for id in sealed {
        out.extend(spool.read_segment(id).unwrap().records);
    }
    out
}

/// The ack files in `dir`, sorted.
pub(super) fn ack_files(dir: &Path) -> Vec<PathBuf> {
    files_ending(dir, "ack")
}

pub(super) fn segment_files(dir: &Path) -> Vec<PathBuf> {
    files_ending(dir, "spool")
}

fn files_ending(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

/// A deterministic xorshift stream, so failures reproduce.
pub(super) fn noise(seed: u64, len: usize) -> Vec<u8> {
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
