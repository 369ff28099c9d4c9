//! One run at a time per volume: an exclusive `flock` on a file beside the
//! database (or beside the `.env`), waited for with jittered backoff so that
//! replicas starting together do not retry in lockstep.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use fs2::FileExt;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::signals::{self, Interrupted};

const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// Held until dropped; closing the file releases the lock, also when the
/// process is killed.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another mai-provision run has held {} for {:.1} s, past LOCK_TIMEOUT. \
         Wait for it to finish and run again, or raise LOCK_TIMEOUT; nothing was changed.",
        path.display(), waited.as_secs_f64()
    )]
    Timeout { path: PathBuf, waited: Duration },
    #[error("cannot open the lock file {}: {source}. Check that the directory is writable by this user.", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error(
        "the lock file {} is a symbolic link. mai-provision never follows links for its lock files, \
         which anyone who can write the folder could point elsewhere. Remove the link and run again; \
         nothing was changed.",
        path.display()
    )]
    IsLink { path: PathBuf },
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// `acquire` for one of several locks taken under one timeout: the wait
/// began at `started` and ends at `deadline`, whatever earlier locks took.
pub fn acquire_within(path: &Path, started: Instant, deadline: Instant) -> Result<Lock, LockError> {
    let file = open(path)?;
    let mut backoff = Backoff::new();
    loop {
        signals::check()?;
        match file.try_lock_exclusive() {
            Ok(()) => {
                tracing::debug!(
                    path = %path.display(),
                    "took the lock after {} ms",
                    started.elapsed().as_millis()
                );
                return Ok(Lock { _file: file });
            }
            Err(e) if e.kind() == fs2::lock_contended_error().kind() => {
                if backoff.is_first() {
                    // Once per wait: replicas starting together say why they pause.
                    tracing::info!(
                        path = %path.display(),
                        "another run holds the lock; waiting up to {:.1} s",
                        deadline.saturating_duration_since(Instant::now()).as_secs_f64()
                    );
                }
            }
            Err(source) => {
                return Err(LockError::Open {
                    path: path.to_owned(),
                    source,
                });
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LockError::Timeout {
                path: path.to_owned(),
                waited: started.elapsed(),
            });
        }
        signals::sleep(backoff.next_pause().min(left))?;
    }
}

/// The pauses between tries at a lock held elsewhere: doubling from
/// `FIRST_BACKOFF` up to `MAX_BACKOFF`, each jittered by ±50%, so that
/// replicas starting together do not retry in lockstep. Also the wait for
/// PostgreSQL's advisory lock.
pub(crate) struct Backoff {
    next: Duration,
    rng: SmallRng,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self {
            next: FIRST_BACKOFF,
            rng: jitter_source(),
        }
    }

    /// No pause has been taken yet: the first wait, worth saying once.
    pub(crate) fn is_first(&self) -> bool {
        self.next == FIRST_BACKOFF
    }

    /// How long to pause before the next try.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let pause = self.next.mul_f64(self.rng.random_range(0.5..1.5));
        self.next = (self.next * 2).min(MAX_BACKOFF);
        pause
    }
}

/// A read-only directory still allows locking a lock file that exists.
/// Links are never followed: creating or opening the lock file through one
/// would create or touch a file wherever the link points.
fn open(path: &Path) -> Result<File, LockError> {
    let created = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    created
        .or_else(|e| {
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(|_| e)
        })
        .map_err(|source| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                LockError::IsLink {
                    path: path.to_owned(),
                }
            } else {
                LockError::Open {
                    path: path.to_owned(),
                    source,
                }
            }
        })
}

/// Jitter needs no cryptographic randomness, only a different seed per
/// process, so it works even where the OS random source is missing.
fn jitter_source() -> SmallRng {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    SmallRng::seed_from_u64(nanos ^ u64::from(std::process::id()).rotate_left(32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acquire(path: &Path, timeout: Duration) -> Result<Lock, LockError> {
        let started = Instant::now();
        acquire_within(path, started, started + timeout)
    }

    #[test]
    fn a_held_lock_times_out_and_a_released_one_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = acquire(&path, Duration::ZERO).unwrap();
        let started = Instant::now();
        let err = acquire(&path, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, LockError::Timeout { .. }), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(200));
        drop(held);
        assert!(acquire(&path, Duration::ZERO).is_ok());
    }

    #[test]
    fn a_passed_deadline_still_takes_a_free_lock_and_reports_the_whole_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let started = Instant::now().checked_sub(Duration::from_secs(5)).unwrap();
        let held = acquire_within(&path, started, started).unwrap();
        let err = acquire_within(&path, started, started).unwrap_err();
        match err {
            LockError::Timeout { waited, .. } => assert!(waited >= Duration::from_secs(5)),
            other => panic!("{other}"),
        }
        drop(held);
    }

    #[test]
    fn a_link_is_never_followed_not_even_a_dangling_one() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        let link = dir.path().join("x.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = acquire(&link, Duration::ZERO).unwrap_err();
        assert!(matches!(err, LockError::IsLink { .. }), "{err}");
        assert!(!target.exists(), "the link's target was created");
        std::fs::write(&target, "").unwrap();
        let err = acquire(&link, Duration::ZERO).unwrap_err();
        assert!(matches!(err, LockError::IsLink { .. }), "{err}");
    }

    #[test]
    fn a_missing_directory_is_an_open_error_naming_the_path() {
        let err = acquire(Path::new("/nonexistent/dir/x.lock"), Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/dir/x.lock"), "{err}");
    }
}
