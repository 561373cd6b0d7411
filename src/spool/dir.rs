//! The spool directory on disk: creating it private to its owner, the names of its segment
//! files, finding the segments it holds, and making new names in it durable.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::Path;

const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".spool";
const SEGMENT_DIGITS: usize = 20;

/// Identifies one segment file of a spool. Ordered by creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub(super) u64);

impl fmt::Display for SegmentId {
    /// Formats as the segment's file name, which is what an operator finds on disk.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SEGMENT_PREFIX}{:020}{SEGMENT_SUFFIX}", self.0)
    }
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

/// Creates `dir` (and its parents) if it is missing.
pub(super) fn create_dir(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        // Spooled events are sanitized, but they are still the service's private data:
        // a directory we create is readable by its owner only.
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
    }
    Ok(())
}

/// The segment files in `dir` and their sizes, by id.
pub(super) fn scan_segments(dir: &Path) -> io::Result<BTreeMap<u64, u64>> {
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

#[cfg(unix)]
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Other platforms cannot open a directory as a file; their file systems make new names
/// durable with the file's data.
#[cfg(not(unix))]
pub(super) fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn a_created_directory_is_private_to_its_owner() {
        use crate::spool::{Spool, SpoolLimits};
        use std::fs;
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a").join("spool");
        let _spool = Spool::open(&dir, SpoolLimits::default()).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
