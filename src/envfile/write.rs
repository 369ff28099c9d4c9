//! Atomic replacement of a small file: a temp file in the same directory,
//! created with the final mode, written and synced, then renamed over the
//! target, and the directory synced. A reader sees the old file or the new
//! one, never a part; a crash leaves at most a temp file, which the next run
//! removes.

use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::{Builder, NamedTempFile};

use super::readback::Misreading;
use crate::paths::dir_of;

use crate::signals::Interrupted;

/// Every temp file of ours ends so, which is how leftovers are recognised.
const TEMP_SUFFIX: &str = ".mai-provision.tmp";
/// An existing file larger than this is not a `.env`; refuse to load it.
const MAX_EXISTING_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("the directory of {} does not exist. Create it or mount the shared volume there.", path.display())]
    DirectoryMissing { path: PathBuf },
    #[error("{} is a directory, not a file. {}", path.display(), folder_advice(*empty))]
    IsDirectory {
        path: PathBuf,
        /// An empty folder is most likely Docker's doing.
        empty: bool,
    },
    #[error(
        "{} is a symbolic link to {}, outside its own directory; mai-provision writes only inside the folder it was given. \
         Point ENV_FILE at the real file.",
        path.display(), target.display()
    )]
    LinkLeavesFolder { path: PathBuf, target: PathBuf },
    #[error("{} is a symbolic link to a file that does not exist. Remove the link or point ENV_FILE at the real file.", path.display())]
    DanglingLink { path: PathBuf },
    #[error(
        "{} is not a regular file (a pipe, socket or device). mai-provision replaces the .env by renaming a new \
         file over it; point ENV_FILE at a regular file. Nothing was changed.",
        path.display()
    )]
    NotRegularFile { path: PathBuf },
    #[error("{} is not UTF-8 text, so it cannot be a .env the application reads. Fix or move it; nothing was changed.", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("{} is larger than {MAX_EXISTING_BYTES} bytes, which no .env is. Check the path; nothing was changed.", path.display())]
    TooLarge { path: PathBuf },
    /// The merged file would not read back as meant (see `readback`).
    #[error("{}, {misreading}", path.display())]
    Misread {
        path: PathBuf,
        misreading: Misreading,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot create a file in {}: {source}. Check that the directory is writable by this user.", dir.display())]
    Create { dir: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}{}", path.display(), write_advice(source))]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "{} cannot be replaced: it is immutable or append-only (chattr +i or +a). Remove the flag \
         (chattr -i -a {}) and run again; nothing was changed.",
        path.display(), path.display()
    )]
    Immutable { path: PathBuf },
    #[error(
        "cannot keep the owner {uid}:{gid} of {} for its replacement: {source}. Run the job as that \
         user, or with the right to give files away (root); nothing was changed.",
        path.display()
    )]
    KeepOwner {
        path: PathBuf,
        uid: u32,
        gid: u32,
        source: io::Error,
    },
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

fn folder_advice(empty: bool) -> &'static str {
    if empty {
        "Docker leaves an empty folder there when it mounts a file that does not exist yet (the application \
         was started before this job, e.g. with docker compose up --no-deps): remove the folder and run \
         again. Nothing was changed."
    } else {
        "Point ENV_FILE at the .env file, not at a folder. Nothing was changed."
    }
}

/// A folder at a file's place, with whether it is empty.
fn is_directory(path: &Path) -> FileError {
    let empty = fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none());
    FileError::IsDirectory {
        path: path.to_owned(),
        empty,
    }
}

/// What to do about a failed write; a full disk is the one an operator
/// most often meets, and the one whose fix is not obvious from errno text.
fn write_advice(source: &io::Error) -> &'static str {
    match source.kind() {
        io::ErrorKind::StorageFull => ". Free space on that file system and run again",
        _ => "",
    }
}

/// Where the previous version of the `.env` is kept when it changes.
pub fn backup_path(env_file: &Path) -> PathBuf {
    crate::paths::with_name_suffix(env_file, ".backup")
}

/// A file about to be replaced by a rename must be a regular file (or
/// missing, or a link, which the rename replaces): a rename over a folder
/// fails, and one over a device or pipe would replace it.
pub fn check_replaceable(path: &Path) -> Result<(), FileError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Err(is_directory(path)),
        Ok(meta) if !meta.is_file() && !meta.file_type().is_symlink() => {
            Err(FileError::NotRegularFile {
                path: path.to_owned(),
            })
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(read_error(path, e)),
    }
}

/// The owner a replacement of `path` must keep: the current file's.
pub fn owner_of(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| (m.uid(), m.gid()))
}

/// Where a write to `path` really goes: the file itself, or the target of a
/// symbolic link that stays in the same directory.
pub fn resolve_target(path: &Path) -> Result<PathBuf, FileError> {
    let dir = dir_of(path);
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = fs::canonicalize(path).map_err(|_| FileError::DanglingLink {
                path: path.to_owned(),
            })?;
            let home = fs::canonicalize(dir).map_err(|e| read_error(dir, e))?;
            if target.parent() != Some(home.as_path()) {
                return Err(FileError::LinkLeavesFolder {
                    path: path.to_owned(),
                    target,
                });
            }
            if target.is_dir() {
                return Err(is_directory(path));
            }
            if !target.is_file() {
                return Err(FileError::NotRegularFile { path: target });
            }
            Ok(target)
        }
        Ok(meta) if meta.is_dir() => Err(is_directory(path)),
        // A rename over a device node or a pipe would replace it (as root,
        // even /dev/null); reading a pipe would block forever.
        Ok(meta) if !meta.is_file() => Err(FileError::NotRegularFile {
            path: path.to_owned(),
        }),
        Ok(_) => Ok(path.to_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => Ok(path.to_owned()),
            _ => Err(FileError::DirectoryMissing {
                path: path.to_owned(),
            }),
        },
        Err(e) => Err(read_error(path, e)),
    }
}

/// The current content, or `None` when there is no file yet.
pub fn read_existing(path: &Path) -> Result<Option<String>, FileError> {
    // Look before opening: opening a pipe without a writer never returns,
    // not even for SIGTERM, and a device never ends.
    match fs::metadata(path) {
        Ok(meta) if !meta.is_file() && !meta.is_dir() => {
            return Err(FileError::NotRegularFile {
                path: path.to_owned(),
            });
        }
        _ => {}
    }
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(path, e)),
    };
    let meta = file.metadata().map_err(|e| read_error(path, e))?;
    if meta.is_dir() {
        return Err(is_directory(path));
    }
    let mut bytes = Vec::new();
    file.take(MAX_EXISTING_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(path, e))?;
    if bytes.len() as u64 > MAX_EXISTING_BYTES {
        return Err(FileError::TooLarge {
            path: path.to_owned(),
        });
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| FileError::NotUtf8 {
            path: path.to_owned(),
        })
}

fn read_error(path: &Path, source: io::Error) -> FileError {
    FileError::Read {
        path: path.to_owned(),
        source,
    }
}

/// New content, complete and on disk, waiting to replace `target`.
#[derive(Debug)]
pub struct PreparedFile {
    temp: NamedTempFile,
    target: PathBuf,
}

impl PreparedFile {
    /// A temp file beside `target` holding `content`, with `mode`, and with
    /// `owner` (uid, gid) when given: a replaced file keeps its owner.
    pub fn create(
        target: &Path,
        content: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<Self, FileError> {
        Self::prepare(target, content, mode, owner, true)
    }

    /// As `create`, for content that must reach the disk even after a
    /// termination signal arrived: a secret that exists nowhere else (the
    /// OpenRouter key just minted).
    pub fn create_despite_signals(
        target: &Path,
        content: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<Self, FileError> {
        Self::prepare(target, content, mode, owner, false)
    }

    fn prepare(
        target: &Path,
        content: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
        stoppable: bool,
    ) -> Result<Self, FileError> {
        refuse_immutable(target)?;
        let dir = dir_of(target);
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let mut temp = Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(TEMP_SUFFIX)
            .permissions(Permissions::from_mode(mode))
            .tempfile_in(dir)
            .map_err(|source| FileError::Create {
                dir: dir.to_owned(),
                source,
            })?;
        // A pause point for the file-mode tests: the temp file exists, still
        // empty, with at most the final mode (the umask can only narrow it).
        // A stop request here drops `temp`, which removes it.
        let step = format!("temp-created:{name}");
        if stoppable {
            crate::checkpoint::checkpoint(&step)?;
        } else {
            crate::checkpoint::checkpoint_committed(&step);
        }
        if let Some((uid, gid)) = owner {
            keep_owner(temp.as_file(), target, uid, gid)?;
        }
        // The umask may have narrowed the mode at creation; set it exactly.
        let written = temp
            .as_file()
            .set_permissions(Permissions::from_mode(mode))
            .and_then(|()| temp.write_all(content))
            .and_then(|()| temp.as_file().sync_all());
        // Name the file being replaced: the temp file is gone once dropped,
        // and the error from tempfile names it already.
        written.map_err(|source| FileError::Write {
            path: target.to_owned(),
            source,
        })?;
        Ok(Self {
            temp,
            target: target.to_owned(),
        })
    }

    /// Rename over the target and make the rename durable.
    pub fn commit(self) -> Result<(), FileError> {
        let target = self.target;
        self.temp.persist(&target).map_err(|e| FileError::Write {
            path: target.clone(),
            source: e.error,
        })?;
        sync_dir(&target)
    }
}

/// A rename over an immutable or append-only file fails with EPERM; find
/// out before anything is committed. Opening for writing changes nothing.
fn refuse_immutable(target: &Path) -> Result<(), FileError> {
    if !fs::symlink_metadata(target).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    match fs::OpenOptions::new().write(true).open(target) {
        // EPERM, even for root; a plain permission problem is EACCES, and a
        // rename over such a file still works.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(FileError::Immutable {
            path: target.to_owned(),
        }),
        _ => Ok(()),
    }
}

fn keep_owner(file: &File, target: &Path, uid: u32, gid: u32) -> Result<(), FileError> {
    use std::os::unix::fs::MetadataExt;
    let current = file.metadata().map_err(|e| read_error(target, e))?;
    if (current.uid(), current.gid()) == (uid, gid) {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, Some(uid), Some(gid)).map_err(|source| FileError::KeepOwner {
        path: target.to_owned(),
        uid,
        gid,
        source,
    })
}

fn sync_dir(target: &Path) -> Result<(), FileError> {
    let dir = dir_of(target);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| FileError::Write {
            path: dir.to_owned(),
            source,
        })
}

/// Remove temp files that a killed run of ours left beside `target`.
/// Only called under the lock, so none of them is still being written.
pub fn remove_leftovers(target: &Path) -> usize {
    let dir = dir_of(target);
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return 0;
    };
    let prefix = format!(".{name}.");
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let file = e.file_name();
            let file = file.to_string_lossy();
            file.starts_with(&prefix) && file.ends_with(TEMP_SUFFIX)
        })
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn commit_replaces_the_file_with_the_exact_mode() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(".env");
        fs::write(&target, "old").unwrap();
        let prepared = PreparedFile::create(&target, b"new", 0o640, None).unwrap();
        let temp_mode = fs::metadata(prepared.temp.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(temp_mode & 0o777, 0o640);
        prepared.commit().unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[test]
    fn a_dropped_preparation_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(".env");
        drop(PreparedFile::create(&target, b"x", 0o600, None).unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn leftovers_of_our_kind_only_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(".env");
        fs::write(dir.path().join(format!("..env.abc{TEMP_SUFFIX}")), "x").unwrap();
        fs::write(
            dir.path().join(format!("..env.backup.abc{TEMP_SUFFIX}")),
            "x",
        )
        .unwrap();
        fs::write(dir.path().join(".env.keep"), "x").unwrap();
        assert_eq!(remove_leftovers(&target), 2);
        assert!(dir.path().join(".env.keep").exists());
    }

    #[test]
    fn links_inside_the_folder_are_followed_and_others_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("real.env"), "").unwrap();
        fs::write(outside.path().join("other.env"), "").unwrap();
        symlink("real.env", dir.path().join(".env")).unwrap();
        symlink(outside.path().join("other.env"), dir.path().join("out.env")).unwrap();
        symlink("missing.env", dir.path().join("dangling.env")).unwrap();
        let inside = resolve_target(&dir.path().join(".env")).unwrap();
        assert_eq!(inside.file_name().unwrap(), "real.env");
        assert!(matches!(
            resolve_target(&dir.path().join("out.env")),
            Err(FileError::LinkLeavesFolder { .. })
        ));
        assert!(matches!(
            resolve_target(&dir.path().join("dangling.env")),
            Err(FileError::DanglingLink { .. })
        ));
        assert!(matches!(
            resolve_target(&dir.path().join("nowhere/.env")),
            Err(FileError::DirectoryMissing { .. })
        ));
        assert!(matches!(
            resolve_target(dir.path()),
            Err(FileError::IsDirectory { .. })
        ));
    }

    #[test]
    fn pipes_are_refused_without_being_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join(".env");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert!(matches!(
            resolve_target(&fifo),
            Err(FileError::NotRegularFile { .. })
        ));
        assert!(matches!(
            read_existing(&fifo),
            Err(FileError::NotRegularFile { .. })
        ));
        symlink(".env", dir.path().join("link.env")).unwrap();
        assert!(matches!(
            resolve_target(&dir.path().join("link.env")),
            Err(FileError::NotRegularFile { .. })
        ));
    }

    #[test]
    fn existing_files_are_read_with_limits() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_existing(&dir.path().join("none")).unwrap(), None);
        fs::write(dir.path().join("bin"), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_existing(&dir.path().join("bin")),
            Err(FileError::NotUtf8 { .. })
        ));
        assert!(matches!(
            read_existing(dir.path()),
            Err(FileError::IsDirectory { .. })
        ));
    }
}
