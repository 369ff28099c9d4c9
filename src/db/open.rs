//! Finding and opening the database without ever creating one by accident:
//! a missing file is a state to report, not something to make.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, MAIN_DB, OpenFlags};

use super::{DbError, ReadOnlyCause};
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
    let dir = crate::paths::dir_of(path);
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
        // A dangling link is not a first boot: creating the database would
        // put it wherever the link points, perhaps outside the volume.
        Err(source) if source.kind() == io::ErrorKind::NotFound && is_link(path) => {
            Err(DbError::UnfollowableLink {
                path: path.to_owned(),
                source,
            })
        }
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
    /// Plans and checks: never creates a file, not even the side files of
    /// a WAL database, and never writes, except to roll back a hot journal
    /// (see `open_read_only`), which every reader must do first.
    Untouched,
    /// Reads under SQLite's normal locking, while another process may be
    /// writing (waiting for the application's schema, verifying).
    ReadOnly,
    /// The normal run: the file must exist.
    ReadWrite,
    /// CREATE_SCHEMA=true: the file and its directory may be created.
    Create,
}

/// `deadline` ends every wait for a database that another connection keeps
/// busy: the run's LOCK_TIMEOUT, one deadline for all its waits together.
pub fn open(path: &Path, access: Access, deadline: Instant) -> Result<Connection, DbError> {
    match access {
        Access::Untouched if !has_side_file(path, "-wal") && !has_side_file(path, "-journal") => {
            open_untouched(path)
        }
        Access::Untouched if has_side_file(path, "-wal") && !has_side_file(path, "-shm") => {
            open_wal_without_index(path, deadline)
        }
        Access::Untouched | Access::ReadOnly => open_read_only(path, deadline),
        Access::ReadWrite => open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE, deadline),
        Access::Create => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?;
            }
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
            open_with(path, flags, deadline)
        }
    }
}

fn open_with(path: &Path, flags: OpenFlags, deadline: Instant) -> Result<Connection, DbError> {
    let flags = flags | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn =
        Connection::open_with_flags(path, flags).map_err(DbError::sqlite(path, "open"))?;
    conn.busy_handler(Some(busy_handler(deadline)))
        .map_err(DbError::sqlite(path, "setup"))?;
    Ok(conn)
}

/// Whether `<database><suffix>` exists: a `-wal` in use (the application
/// is running, or crashed with unmerged pages), its index `-shm`, or a
/// rollback `-journal`, hot when a writer stopped mid-transaction.
fn has_side_file(path: &Path, suffix: &str) -> bool {
    let mut side = path.as_os_str().to_owned();
    side.push(suffix);
    Path::new(&side).exists()
}

/// A read-only connection that sees what the application's next open would
/// see. A rollback journal that a crashed writer left (a hot journal) must
/// be rolled back before anyone reads, and a read-only connection cannot do
/// that ("attempt to write a readonly database"); so it is rolled back here,
/// as every SQLite connection that can write does on its first read. The
/// job holds the database folder's lock, also in a dry run, so no other run
/// is reading meanwhile; SQLite's own locks guard against the application.
fn open_read_only(path: &Path, deadline: Instant) -> Result<Connection, DbError> {
    let conn = open_with(path, OpenFlags::SQLITE_OPEN_READ_ONLY, deadline)?;
    match first_read(&conn) {
        Ok(()) => Ok(conn),
        Err(e) if needs_rollback(&e) => {
            drop(conn);
            roll_back_hot_journal(path, deadline)?;
            let conn = open_with(path, OpenFlags::SQLITE_OPEN_READ_ONLY, deadline)?;
            first_read(&conn).map_err(DbError::sqlite(path, "read"))?;
            Ok(conn)
        }
        Err(e) => Err(DbError::sqlite(path, "read")(e)),
    }
}

/// Read the database header: the moment SQLite takes its shared lock and
/// finds a hot journal, if there is one.
fn first_read(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA schema_version", [], |_| Ok(()))
}

fn needs_rollback(error: &rusqlite::Error) -> bool {
    error.sqlite_extended_error_code() == Some(rusqlite::ffi::SQLITE_READONLY_ROLLBACK)
}

fn roll_back_hot_journal(path: &Path, deadline: Instant) -> Result<(), DbError> {
    // Read-write, but never create: the file exists, and a rollback journal
    // database gets no side file from a read.
    let conn = open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE, deadline)?;
    if conn.is_readonly(MAIN_DB).unwrap_or(true) {
        return Err(DbError::HotJournal {
            path: path.to_owned(),
            cause: ReadOnlyCause::of(path),
        });
    }
    first_read(&conn).map_err(DbError::sqlite(path, "hot journal rollback"))?;
    tracing::info!(
        path = %path.display(),
        "rolled back the hot journal that a writer stopped mid-transaction left, as the application's next open would"
    );
    Ok(())
}

/// A WAL database whose index (`-shm`) is gone, as after a restore that
/// copied only the database and its `-wal`: a normal connection, even a
/// read-only one, would create the `-shm`, which a dry run must not. A
/// connection in exclusive locking mode keeps the index in its own memory
/// (SQLite's WAL documentation, "Use of WAL Without Shared-Memory"); it
/// needs to open the file for writing for that, but never writes: queries
/// are refused (`query_only`), and it does not checkpoint when it closes,
/// which would merge the `-wal` into the database and remove it. With
/// `-shm` missing no other connection has the database open, so the
/// exclusive lock, held for the dry run's few milliseconds, keeps nobody
/// waiting long.
fn open_wal_without_index(path: &Path, deadline: Instant) -> Result<Connection, DbError> {
    let conn = open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE, deadline)?;
    if conn.is_readonly(MAIN_DB).unwrap_or(true) {
        // Not ours to write: SQLite's read-only path is all there is.
        drop(conn);
        return open_read_only(path, deadline);
    }
    let setup = || -> rusqlite::Result<()> {
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE; PRAGMA query_only = 1;")
    };
    setup().map_err(DbError::sqlite(path, "setup"))?;
    first_read(&conn).map_err(DbError::sqlite(path, "read"))?;
    Ok(conn)
}

/// A read-only connection that creates nothing: even a read-only connection
/// to a WAL database creates `-wal` and `-shm` files it cannot remove, which
/// a dry run must not leave behind. Without side files the database file is
/// the whole state, so SQLite may read it as immutable. (A writer starting
/// during the read could show a torn state; acceptable for a plan, which is
/// why waiting and verifying use `ReadOnly`.)
fn open_untouched(path: &Path) -> Result<Connection, DbError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(immutable_uri(path), flags).map_err(DbError::sqlite(path, "open"))
}

/// `file:` URI for `path` with `immutable=1`, percent-encoding what a URI
/// path cannot hold as is.
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Like SQLite's busy timeout, but it gives up at once when a termination
/// signal arrives, so that a stop request is never stuck behind a writer.
/// Every wait ends at the same `deadline`: a timeout that restarted with
/// each statement would let an application that keeps re-taking its lock
/// stretch LOCK_TIMEOUT to a multiple of itself.
fn busy_handler(deadline: Instant) -> impl FnMut(i32) -> bool + Send + 'static {
    move |attempt| {
        let left = deadline.saturating_duration_since(Instant::now());
        if attempt == 0 {
            tracing::debug!(
                "another connection is using the database; waiting up to {:.1} s",
                left.as_secs_f64()
            );
        }
        if signals::received().is_some() || left.is_zero() {
            return false;
        }
        std::thread::sleep(BUSY_SLICE.min(left));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_escape_what_a_path_may_hold() {
        assert_eq!(
            immutable_uri(Path::new("/data/webui.db")),
            "file:/data/webui.db?immutable=1"
        );
        assert_eq!(
            immutable_uri(Path::new("./a b/%?#.db")),
            "file:./a%20b/%25%3F%23.db?immutable=1"
        );
    }

    #[test]
    fn a_read_only_open_of_a_wal_database_leaves_no_side_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd name %.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);",
        )
        .unwrap();
        drop(conn);
        let reader = open(&path, Access::Untouched, Instant::now()).unwrap();
        let x: i64 = reader
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, 1);
        drop(reader);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("odd name %.db")]);
    }
}
