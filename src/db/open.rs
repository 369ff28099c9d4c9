//! Finding and opening the database without ever creating one by accident:
//! a missing file is a state to report, not something to make.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::DbError;
use crate::signals;

/// How long one wait for a busy database lasts before SQLite retries; short,
/// so that a signal is noticed quickly.
const BUSY_SLICE: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// No database file. `dir_exists` is false when its directory (the data
    /// volume) is missing too.
    Missing { dir_exists: bool },
    /// A file exists; whether it is a database is for `inspect` to say.
    Present,
}

pub fn probe(path: &Path) -> Result<FileState, DbError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(DbError::IsDirectory {
            path: path.to_owned(),
        }),
        // SQLite would read a device as an empty database (a first boot, as
        // far as it can tell) and block on a pipe.
        Ok(meta) if !meta.is_file() => Err(DbError::NotRegularFile {
            path: path.to_owned(),
        }),
        Ok(_) => Ok(FileState::Present),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => Ok(FileState::Missing { dir_exists: true }),
            Ok(_) => Err(DbError::DataDirNotDirectory {
                path: dir.to_owned(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Ok(FileState::Missing { dir_exists: false })
            }
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                Err(DbError::DataDirNotDirectory {
                    path: dir.to_owned(),
                })
            }
            Err(source) => Err(DbError::Stat {
                path: dir.to_owned(),
                source,
            }),
        },
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => Err(DbError::DataDirNotDirectory {
            path: dir.to_owned(),
        }),
        // A link that loops (or is otherwise unresolvable) names no file;
        // said plainly, it is a layout mistake, not a passing I/O failure.
        Err(source) if is_link(path) => Err(DbError::UnfollowableLink {
            path: path.to_owned(),
            source,
        }),
        Err(source) => Err(DbError::Stat {
            path: path.to_owned(),
            source,
        }),
    }
}

fn is_link(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Plans and checks: never writes, never creates.
    ReadOnly,
    /// The normal run: the file must exist.
    ReadWrite,
    /// CREATE_SCHEMA=true: the file and its directory may be created.
    Create,
}

pub fn open(path: &Path, access: Access, busy_timeout: Duration) -> Result<Connection, DbError> {
    let flags = match access {
        Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
        Access::Create => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?;
            }
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        }
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn =
        Connection::open_with_flags(path, flags).map_err(DbError::sqlite(path, "open"))?;
    conn.busy_handler(Some(busy_handler(busy_timeout)))
        .map_err(DbError::sqlite(path, "setup"))?;
    Ok(conn)
}

/// Like SQLite's busy timeout, but it gives up at once when a termination
/// signal arrives, so that a stop request is never stuck behind a writer.
fn busy_handler(timeout: Duration) -> impl FnMut(i32) -> bool + Send + 'static {
    let mut started = Instant::now();
    move |attempt| {
        if attempt == 0 {
            started = Instant::now();
        }
        if signals::received().is_some() || started.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(BUSY_SLICE);
        true
    }
}
