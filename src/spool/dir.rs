//! The spool directory on disk: creating it private to its owner and refusing one that is
//! not, the names of its segment and ack files, finding the segments it holds, and making
//! new names in it durable.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::Path;

use super::SpoolError;

const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".spool";
const ACK_SUFFIX: &str = ".ack";
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

/// Identifies one record of a spool: the segment it is in and the byte offset of its frame
/// there. Ordered by segment, then offset, which is append order.
///
/// Handed out by [`Spool::append`](super::Spool::append) and
/// [`Spool::read_segment`](super::Spool::read_segment); what
/// [`Spool::ack`](super::Spool::ack) takes. Ids stay valid across restarts of a spool in
/// the same directory, but [`open_slot`](super::Spool::open_slot) renumbers the segments it
/// adopts from another directory: ids handed out there mean nothing here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId {
    /// The segment the record is in.
    pub segment: SegmentId,
    /// Byte offset of the record's frame (its header) in the segment file.
    pub offset: u64,
}

impl fmt::Display for RecordId {
    /// `segment-….spool@offset`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.segment, self.offset)
    }
}

/// The name of the ack file of segment `id` (see [the format](super#ack-files)).
pub(super) fn ack_name(id: u64) -> String {
    format!("{SEGMENT_PREFIX}{id:020}{ACK_SUFFIX}")
}

/// What a directory entry's name says it is.
enum Name {
    Segment(u64),
    Ack(u64),
}

fn parse_name(name: &str) -> Option<Name> {
    let rest = name.strip_prefix(SEGMENT_PREFIX)?;
    let (digits, kind): (_, fn(u64) -> Name) = if let Some(d) = rest.strip_suffix(SEGMENT_SUFFIX) {
        (d, Name::Segment)
    } else {
        (rest.strip_suffix(ACK_SUFFIX)?, Name::Ack)
    };
    if digits.len() != SEGMENT_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(kind)
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

/// Refuses a directory another user owns or may write to: they could read the spooled
/// records, replace or inject some, or plant a link the spool would write through.
#[cfg(unix)]
pub(super) fn check_private(dir: &Path) -> Result<(), SpoolError> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(dir)?;
    let (owner, user, mode) = (meta.uid(), effective_uid(), meta.mode() & 0o7777);
    // Not a directory: opening its lock file says so.
    if meta.is_dir() && (owner != user || mode & 0o022 != 0) {
        return Err(SpoolError::NotPrivate {
            dir: dir.to_owned(),
            owner,
            user,
            mode,
        });
    }
    Ok(())
}

/// Other platforms have no owner and mode bits to check.
#[cfg(not(unix))]
pub(super) fn check_private(_dir: &Path) -> Result<(), SpoolError> {
    Ok(())
}

#[cfg(unix)]
fn effective_uid() -> u32 {
    extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: `geteuid` takes no arguments, always succeeds and touches no memory.
    unsafe { geteuid() }
}

/// The message of [`SpoolError::NotPrivate`]: what is wrong and how to fix it.
pub(super) fn not_private_advice(dir: &Path, owner: u32, user: u32, mode: u32) -> String {
    let dir = dir.display();
    if owner != user {
        return format!(
            "{dir} belongs to uid {owner}, not to this process's user (uid {user}), so spooled events would not be private: use a directory of your own (OMNINODE_SPOOL_DIR), or make this one yours with `chown {user} {dir} && chmod 700 {dir}`"
        );
    }
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "its group and others",
        (true, false) => "its group",
        _ => "others",
    };
    format!(
        "{dir} is writable by {who} (mode {mode:04o}), so spooled events would not be private: run `chmod 700 {dir}` or use a directory of your own (OMNINODE_SPOOL_DIR)"
    )
}

/// What a spool directory holds: its segment files and their sizes, and the ack files.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// Size of each segment file, by id.
    pub(super) segments: BTreeMap<u64, u64>,
    /// Ids of the ack files, whether or not their segment is there.
    pub(super) acks: BTreeSet<u64>,
}

impl Scan {
    /// The highest id any segment or ack file has.
    pub(super) fn max_id(&self) -> Option<u64> {
        let segments = self.segments.keys().next_back();
        segments.into_iter().chain(self.acks.last()).max().copied()
    }

    /// Ack files without their segment: left by a crash between deleting a segment and
    /// deleting its ack file, or between moving the two to another directory.
    pub(super) fn orphan_acks(&self) -> impl Iterator<Item = u64> + '_ {
        self.acks
            .iter()
            .copied()
            .filter(|id| !self.segments.contains_key(id))
    }
}

/// Lists the segment and ack files in `dir` (names only, and the segments' sizes: nothing
/// is read).
pub(super) fn scan(dir: &Path) -> io::Result<Scan> {
    let mut scan = Scan::default();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().and_then(parse_name) else {
            continue;
        };
        let meta = fs::metadata(entry.path())?;
        if !meta.is_file() {
            continue;
        }
        match name {
            Name::Segment(id) => {
                scan.segments.insert(id, meta.len());
            }
            Name::Ack(id) => {
                scan.acks.insert(id);
            }
        }
    }
    Ok(scan)
}

/// Removes a file that may already be gone.
pub(super) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Options that create a file readable by the spool's user only, like its directory.
pub(super) fn private_file_options() -> fs::OpenOptions {
    #[cfg_attr(not(unix), allow(unused_mut))]
    let mut options = File::options();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
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

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::spool::lock::LOCK_FILE;
    use crate::spool::testutil::*;
    use crate::spool::{Spool, SpoolLimits};

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_created_directory_is_private_to_its_owner() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a").join("spool");
        let _spool = Spool::open(&dir, SpoolLimits::default()).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn segment_and_lock_files_are_private_to_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool_with(dir.path(), SpoolLimits::default(), 1);
        assert_eq!(mode(&spool.dir().join(LOCK_FILE)), 0o600);
        let segments = segment_files(spool.dir());
        assert_eq!(segments.len(), 1);
        assert_eq!(mode(&segments[0]), 0o600);
    }

    #[test]
    fn a_directory_others_may_write_to_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("spool");
        fs::create_dir(&dir).unwrap();
        for (bits, who) in [
            (0o777, "its group and others (mode 0777)"),
            (0o770, "its group (mode 0770)"),
            (0o1703, "others (mode 1703)"),
        ] {
            chmod(&dir, bits);
            let err = Spool::open(&dir, SpoolLimits::default()).unwrap_err();
            assert!(
                matches!(&err, SpoolError::NotPrivate { mode, .. } if *mode == bits),
                "{err:?}"
            );
            let message = err.to_string();
            assert!(message.contains(who), "{message}");
            assert!(
                message.contains(&format!("run `chmod 700 {}`", dir.display())),
                "{message}"
            );
            assert!(!dir.join(LOCK_FILE).exists(), "nothing written to it");
        }
        // Readable by others is not writable by them: the files in it are 0600.
        chmod(&dir, 0o755);
        drop(Spool::open(&dir, SpoolLimits::default()).unwrap());
        chmod(&dir, 0o700);
        Spool::open(&dir, SpoolLimits::default()).unwrap();
    }

    /// Only root can give a directory to another user: elsewhere this checks the message.
    #[test]
    fn a_directory_of_another_user_is_refused() {
        let user = effective_uid();
        let message = not_private_advice(Path::new("/s"), user + 1, user, 0o700);
        assert!(
            message.contains(&format!("uid {}, not to this process's user", user + 1)),
            "{message}"
        );
        assert!(message.contains("use a directory of your own"), "{message}");
        assert!(
            message.contains(&format!("`chown {user} /s && chmod 700 /s`")),
            "{message}"
        );
        if user != 0 {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("spool");
        fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o700);
        std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
        let err = Spool::open(&dir, SpoolLimits::default()).unwrap_err();
        assert!(
            matches!(
                err,
                SpoolError::NotPrivate {
                    owner: 65534,
                    user: 0,
                    mode: 0o700,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!dir.join(LOCK_FILE).exists(), "nothing written to it");
    }
}
