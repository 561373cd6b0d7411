//! A record header whose length field is huge (damaged, or written by something else) must not
//! make the spool's reader allocate that much: the length is checked against the bytes the
//! segment really holds before anything is allocated for the record.
//!
//! This binary counts the largest single allocation, so it holds this one test only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing_omninode::spool::{SegmentRead, Spool, SpoolLimits, RECORD_OVERHEAD};

/// The system allocator, noting the largest block asked for.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// Spools `payloads`, sets the length field of record `damaged` to `u32::MAX` and reads the
/// segment back: what was read, the largest allocation while reading, the segment's size.
fn read_damaged(payloads: &[Vec<u8>], damaged: usize) -> (SegmentRead, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
    for p in payloads {
        spool.append(p).unwrap();
    }
    let id = spool.oldest_sealed().unwrap();
    let path = dir.path().join(id.to_string());
    let mut data = fs::read(&path).unwrap();
    let at: usize = payloads[..damaged]
        .iter()
        .map(|p| p.len() + RECORD_OVERHEAD as usize)
        .sum();
    data[at + 4..at + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(&path, &data).unwrap();

    LARGEST.store(0, Ordering::Relaxed);
    let read = spool.read_segment(id).unwrap();
    (read, LARGEST.load(Ordering::Relaxed), data.len())
}

#[test]
fn a_huge_length_field_allocates_nothing_for_it() {
    let payloads: Vec<Vec<u8>> = (0..3).map(|i| format!("record-{i}").into_bytes()).collect();

    // A record in the middle claims 4 GiB: it is skipped, its neighbours are read.
    let (read, largest, size) = read_damaged(&payloads, 1);
    assert!(largest <= size.max(1024), "allocated {largest} bytes");
    assert_eq!(read.records, [payloads[0].clone(), payloads[2].clone()]);
    assert_eq!(read.corrupt, 1);

    // The only record claims 4 GiB.
    let (read, largest, size) = read_damaged(&payloads[..1], 0);
    assert!(largest <= size.max(1024), "allocated {largest} bytes");
    assert!(read.records.is_empty());
    assert_eq!(read.corrupt, 1);
}
