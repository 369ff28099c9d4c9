//! The application's SQLite database: find out what state it is in, read the
//! organization row, write the planned change in one transaction, and read
//! it back. Nothing here decides what to change; `plan` does.

mod open;
mod permission;
mod row;
mod schema;
mod upsert;
mod verify;

use std::path::PathBuf;

pub use open::{Access, FileState, open, probe};
pub use permission::ReadOnlyCause;
pub use row::{OrgRow, OtherOrg, Snapshot, read_snapshot};
pub use schema::{
    ORG_TABLE, ORM_COLUMNS, REQUIRED_TABLES, Schema, add_columns, create_standalone_schema,
    inspect, missing_orm_columns, missing_required_columns, missing_tables, orm_select_list,
    repair_statements,
};
pub use upsert::{DEFAULT_TIMEZONE, INSERT_COLUMNS, RowWrite, UPDATABLE_COLUMNS, write_row};
pub use verify::{AppRow, Expected, VerifyError, compare, verify};

use crate::signals::{self, Interrupted};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "the database {} {} and REQUIRE_DATABASE=true. Start the application once so that it creates \
         its schema, check that the data volume is mounted at DATA_DIR, or unset REQUIRE_DATABASE.",
        path.display(),
        if *empty { "has no tables yet" } else { "does not exist yet" }
    )]
    Required {
        path: PathBuf,
        /// The file exists but is empty (zero bytes, or no tables).
        empty: bool,
    },
    #[error("DATA_DIR {} is not a directory. Point DATA_DIR at the application's data volume.", path.display())]
    DataDirNotDirectory { path: PathBuf },
    #[error("the database path {} is a directory, not a file. Point DATA_DIR or DATABASE_URL at the database file's folder.", path.display())]
    IsDirectory { path: PathBuf },
    #[error(
        "the database path {} is not a regular file (a pipe, socket or device), so it is not a database. \
         Point DATA_DIR or DATABASE_URL at the database file; it was left as it was.",
        path.display()
    )]
    NotRegularFile { path: PathBuf },
    #[error(
        "the database path {} is a symbolic link that cannot be followed ({source}), so it is not a database file. \
         Point DATA_DIR or DATABASE_URL at the real database file, or fix the link; it was left as it was.",
        path.display()
    )]
    UnfollowableLink {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a SQLite database (or is encrypted). Check DATA_DIR/DATABASE_URL; the file was left as it was.", path.display())]
    NotADatabase { path: PathBuf },
    #[error("the database {} is corrupt ({detail}). Restore it from a backup; the file was left as it was.", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "the database {} has no table {}. Let the mAI application run its migrations first (start it once), \
         or use CREATE_SCHEMA=true on an empty database for a standalone schema; the file was left as it was.",
        path.display(), tables.join(", ")
    )]
    MissingTables {
        path: PathBuf,
        tables: Vec<&'static str>,
    },
    #[error(
        "the table {table} in {} has no column {}. This is not a schema the mAI application creates; \
         upgrade the application or fix the table. The file was left as it was.",
        path.display(), columns.join(", ")
    )]
    MissingColumns {
        path: PathBuf,
        table: &'static str,
        columns: Vec<&'static str>,
    },
    #[error(
        "the column {table}.{column} in {} is declared {declared}, {problem}. The file was left as it was.",
        path.display()
    )]
    WrongColumn {
        path: PathBuf,
        table: &'static str,
        column: &'static str,
        declared: String,
        problem: &'static str,
    },
    #[error(
        "the row {row:?} of {table} in {} holds text that is not valid UTF-8 in its column {column}, which the \
         application cannot read. Correct that value (or clear it, where the column allows NULL), for example \
         with the sqlite3 shell; the file was left as it was.",
        path.display()
    )]
    NotUtf8 {
        path: PathBuf,
        table: &'static str,
        column: String,
        /// The row's id (ours: the id this run provisions).
        row: String,
    },
    #[error(
        "the row {row:?} of {table} in {} holds {found} in its column {column}, which the application cannot \
         use. {fix}; nothing was changed.",
        path.display()
    )]
    BadValue {
        path: PathBuf,
        table: &'static str,
        column: &'static str,
        row: String,
        /// The value, described (never a secret column's).
        found: String,
        fix: &'static str,
    },
    #[error(
        "{name} in the database {} is {kind}, not a table. The mAI application's migrations create it as a \
         table; this is not the application's schema. Fix the database (or restore it from a backup); the file \
         was left as it was.",
        path.display()
    )]
    NotATable {
        path: PathBuf,
        name: &'static str,
        /// "a view", "a virtual table", …
        kind: &'static str,
    },
    #[error(
        "the database {} refused {doing}: {detail}.{hint} The mAI application's schema has no such \
         constraint or trigger: fix or drop what refuses the write. The file was left as it was.",
        path.display()
    )]
    WriteRefused {
        path: PathBuf,
        /// What was written: the table, and the row or the column.
        doing: String,
        /// SQLite's own words, which name the constraint, column or table.
        detail: String,
        /// The triggers and foreign keys of the table.
        hint: String,
    },
    #[error(
        "the database {} ignored the write of organization {row:?} to {table}: no row changed, which only a \
         trigger's RAISE(IGNORE) does.{hint} The mAI application's schema has no such trigger: fix or drop it. \
         The file was left as it was.",
        path.display()
    )]
    WriteIgnored {
        path: PathBuf,
        table: &'static str,
        row: String,
        hint: String,
    },
    #[error("the database {} {cause}; nothing was changed.", path.display())]
    ReadOnly { path: PathBuf, cause: ReadOnlyCause },
    #[error(
        "the database {} has a hot journal, left by a writer that stopped in the middle of a transaction: it must \
         be rolled back before anyone can read the database, as the application's next start would, and that \
         takes writing. The database {cause}; or start the application once. Nothing was changed.",
        path.display()
    )]
    HotJournal { path: PathBuf, cause: ReadOnlyCause },
    #[error("cannot read the database path {}: {source}", path.display())]
    Stat {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the database {} {doing} failed: {}{}", path.display(), shown(&source.to_string()), advice(source))]
    Sqlite {
        path: PathBuf,
        doing: &'static str,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl DbError {
    pub(crate) fn not_utf8(path: &std::path::Path, column: &str, row: &str) -> Self {
        Self::NotUtf8 {
            path: path.to_owned(),
            table: ORG_TABLE,
            column: column.to_owned(),
            row: row.to_owned(),
        }
    }

    /// The database opened read-only: say why, so that the advice fits.
    pub fn read_only(path: &std::path::Path) -> Self {
        Self::ReadOnly {
            path: path.to_owned(),
            cause: ReadOnlyCause::of(path),
        }
    }

    pub(crate) fn sqlite(
        path: &std::path::Path,
        doing: &'static str,
    ) -> impl FnOnce(rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        move |source| match (sqlite_code(&source), signals::received()) {
            // Our busy handler gives up at once on SIGTERM/SIGINT, so a busy
            // error after one is the stop request, not a timeout.
            (Some(C::DatabaseBusy | C::DatabaseLocked), Some(signal)) => {
                Self::Interrupted(Interrupted { signal })
            }
            // A read-only connection met a hot journal: whoever may write
            // the file can roll it back, this user cannot.
            _ if source.sqlite_extended_error_code()
                == Some(rusqlite::ffi::SQLITE_READONLY_ROLLBACK) =>
            {
                Self::HotJournal {
                    path: path.to_owned(),
                    cause: ReadOnlyCause::of(path),
                }
            }
            (Some(C::NotADatabase), _) => Self::NotADatabase {
                path: path.to_owned(),
            },
            (Some(C::DatabaseCorrupt), _) => Self::Corrupt {
                path: path.to_owned(),
                detail: shown(&source.to_string()),
            },
            _ => Self::Sqlite {
                path: path.to_owned(),
                doing,
                source,
            },
        }
    }

    /// SQLite's primary result code, for the exit code.
    pub fn sqlite_code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            Self::Sqlite { source, .. } => sqlite_code(source),
            _ => None,
        }
    }
}

/// Text from the database for a message (SQLite's messages quote the
/// schema's names, a trigger's RAISE its author's words): control
/// characters escaped, so that none forges a log line or reaches the
/// terminal as an escape sequence.
pub(crate) fn shown(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn sqlite_code(error: &rusqlite::Error) -> Option<rusqlite::ErrorCode> {
    match error {
        rusqlite::Error::SqliteFailure(e, _) => Some(e.code),
        _ => None,
    }
}

fn advice(error: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode as C;
    match sqlite_code(error) {
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            ". Another process kept the database busy past LOCK_TIMEOUT; run again, or raise LOCK_TIMEOUT"
        }
        Some(C::DiskFull) => ". The disk is full; free space and run again",
        Some(C::ReadOnly)
            if error.sqlite_extended_error_code()
                == Some(rusqlite::ffi::SQLITE_READONLY_DIRECTORY) =>
        {
            ". SQLite writes its journal beside the database, and this user may not create files in that \
             folder: fix the folder's permissions, or remount its file system read-write"
        }
        Some(C::ReadOnly | C::PermissionDenied) => ". Check the file's owner and permissions",
        Some(C::CannotOpen) => ". Check that the directory exists and is writable",
        _ => "",
    }
}
