//! Several instances on one configured directory: each takes the first free slot of `base`,
//! `base.1`, `base.2`, ..., and the segments of slots nobody holds any more are adopted
//! (moved into the opened spool) so they are replayed too.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::dir::{ack_name, check_private, scan};
use super::lock::lock_dir;
use super::{Segment, SegmentId, Spool, SpoolError, SpoolLimits};

/// How many directories [`Spool::open_slot`] tries: the configured one and 15 siblings.
pub const SPOOL_SLOTS: u32 = 16;

impl Spool {
    /// Opens the first free of `base`, `base.1`, ... `base.<slots - 1>`: several instances of
    /// a service on one host can share one configured directory. `base` gets `wait` (it is
    /// where a restarted single instance finds its spool; [`LOCK_WAIT`](super::LOCK_WAIT) is
    /// a good value), the others none. The segments of every other slot that nobody holds
    /// (an instance that crashed, or is no longer started) are moved into the opened spool,
    /// as far as its size limit allows, so they are replayed too.
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
        // be used (not a directory, no permission, not private) only means trying the next.
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

    /// Moves the segments of another spool directory into this one, if nobody holds it and
    /// it is private to this user (best effort: a segment that cannot be moved stays where
    /// it is).
    fn adopt(&mut self, other: &Path) {
        // Records from a directory others may write to could be theirs, not ours.
        if check_private(other).is_err() {
            return;
        }
        let Ok(_lock) = lock_dir(other, Duration::ZERO) else {
            return;
        };
        let Ok(found) = scan(other) else {
            return;
        };
        for (id, len) in found.segments {
            let from = other.join(SegmentId(id).to_string());
            // Only what fits: the rest waits in the sibling for a later owner, rather than
            // filling this spool and refusing the events of the next outage.
            if self.total + len > self.limits.max_bytes {
                break;
            }
            let to = self.next_id;
            if fs::rename(&from, self.segment_path(to)).is_err() {
                continue;
            }
            // Its acks go with it, after it: a crash in between leaves the acks behind
            // (an orphan the sibling's next owner deletes) and costs duplicates, never a
            // record. Offsets in the entries stay true under the new number.
            if found.acks.contains(&id) {
                let _ = fs::rename(other.join(ack_name(id)), self.ack_path(to));
            }
            self.segments.insert(to, Segment::found(len));
            self.total += len;
            self.next_id += 1;
            self.dir_dirty = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::lock::LOCK_FILE;
    use crate::spool::testutil::*;

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
            b.seal_active();
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

    #[cfg(unix)]
    #[test]
    fn a_sibling_others_may_write_to_is_neither_used_nor_adopted() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let base = root.path().join("svc");
        let open = || Spool::open_slot(&base, SpoolLimits::default(), 3, Duration::ZERO);
        let a = open().unwrap();
        let mut b = open().unwrap();
        assert_eq!(b.dir(), root.path().join("svc.1"));
        b.append(&payload(1)).unwrap();
        drop(b);
        let open_to_all = fs::Permissions::from_mode(0o777);
        fs::set_permissions(root.path().join("svc.1"), open_to_all).unwrap();

        // Not taken as a free slot: the next one is.
        let c = open().unwrap();
        assert_eq!(c.dir(), root.path().join("svc.2"));
        drop(c);
        drop(a);
        // Not adopted: its records could be anybody's.
        let mut d = open().unwrap();
        assert_eq!(d.dir(), base);
        assert!(drain(&mut d).is_empty());
        assert_eq!(segment_files(&root.path().join("svc.1")).len(), 1);
    }
}
