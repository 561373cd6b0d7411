//! One owner per spool directory: the exclusive `flock` on `dir/LOCK`, waited for a little
//! and released by the kernel when its owner exits (see the [spool docs](super)).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::SpoolError;

/// How long [`Spool::open`](super::Spool::open) waits for the owner of a locked directory
/// to let go. [`Builder::build`](crate::Builder::build) does not wait at all (it may run on
/// an async runtime's thread): it takes the next free slot of
/// [`Spool::open_slot`](super::Spool::open_slot) at once.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

pub(super) const LOCK_FILE: &str = "LOCK";

/// Takes the exclusive lock of `dir/LOCK`, retrying for `wait`, and writes this process's
/// pid into it. Writing also proves early that the directory is writable, rather than on
/// the first append while the broker is already down.
pub(super) fn lock_dir(dir: &Path, wait: Duration) -> Result<File, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let mut options = fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
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
    use crate::spool::{Spool, SpoolLimits};

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
}
