//! Why the database cannot be written, so that the advice fits: telling a
//! job that already runs as the file's owner to "run as the owner" sends
//! the operator in a circle.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOnlyCause {
    /// The file system is mounted read-only (EROFS): no user can write.
    FileSystem,
    /// This run is the file's owner, and the mode keeps the owner out.
    Mode { uid: u32, mode: u32 },
    /// Another user owns the file, and the mode keeps this user out.
    Owner { uid: u32, owner: u32 },
    /// Something else refuses the write (an ACL, an immutable flag, a
    /// security module).
    Unknown,
}

impl ReadOnlyCause {
    /// Ask the kernel: opening the file for writing (which changes
    /// nothing) fails with the reason SQLite met.
    pub fn of(path: &Path) -> Self {
        let refusal = match fs::OpenOptions::new().write(true).open(path) {
            Ok(_) => return Self::Unknown,
            Err(e) => e,
        };
        match refusal.kind() {
            io::ErrorKind::ReadOnlyFilesystem => Self::FileSystem,
            io::ErrorKind::PermissionDenied => match fs::metadata(path) {
                Ok(meta) => Self::from_owner(
                    meta.uid(),
                    meta.mode() & 0o7777,
                    crate::process::effective_uid(),
                ),
                Err(_) => Self::Unknown,
            },
            _ => Self::Unknown,
        }
    }

    fn from_owner(owner: u32, mode: u32, uid: u32) -> Self {
        if owner == uid {
            Self::Mode { uid, mode }
        } else {
            Self::Owner { uid, owner }
        }
    }
}

/// "<the file> {cause}": what is wrong, then what to do.
impl fmt::Display for ReadOnlyCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FileSystem => write!(
                f,
                "is on a read-only file system (EROFS), where not even its owner may write. Remount the data \
                 volume read-write (look for a `:ro` bind mount, or `readOnly: true` on the volume mount), then \
                 run again"
            ),
            Self::Mode { uid, mode } => write!(
                f,
                "is read-only for this user: its mode {mode:04o} keeps its owner, uid {uid}, from writing it, and \
                 this run already is uid {uid}. Make it writable again: fix the file's permissions (chmod u+w), \
                 then run again"
            ),
            Self::Owner { uid, owner } => write!(
                f,
                "is read-only for this user (uid {uid}). Run as the volume's owner (uid {owner}), or fix the \
                 file's permissions so that uid {uid} may write it"
            ),
            Self::Unknown => write!(
                f,
                "is read-only for this user, though its mode and file system allow writing (an ACL, an \
                 immutable flag or a security policy?). Check those, or fix the file's permissions, then run \
                 again"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_told_about_the_mode_and_others_about_the_owner() {
        assert_eq!(
            ReadOnlyCause::from_owner(0, 0o444, 0),
            ReadOnlyCause::Mode {
                uid: 0,
                mode: 0o444
            }
        );
        assert_eq!(
            ReadOnlyCause::from_owner(0, 0o644, 65532),
            ReadOnlyCause::Owner {
                uid: 65532,
                owner: 0
            }
        );
        let advice = ReadOnlyCause::Mode {
            uid: 0,
            mode: 0o444,
        }
        .to_string();
        assert!(
            advice.contains("0444") && !advice.contains("Run as"),
            "{advice}"
        );
    }

    #[test]
    fn a_writable_file_has_no_known_cause() {
        let file = tempfile::NamedTempFile::new().unwrap();
        assert_eq!(ReadOnlyCause::of(file.path()), ReadOnlyCause::Unknown);
    }
}
