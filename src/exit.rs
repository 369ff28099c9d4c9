//! The one place that turns an outcome into an exit code. The codes follow
//! BSD's sysexits.h, which orchestrators and shell scripts already know.

use std::io::ErrorKind;

use rusqlite::ErrorCode;

use crate::db::{DbError, VerifyError};
use crate::envfile::FileError;
use crate::error::Error;
use crate::lock::LockError;
use crate::openrouter::{ApiError, StoreError};
use crate::postgres::PgError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Ok = 0,
    /// `--check`: a run would change something.
    Drift = 1,
    Usage = 64,
    DataError = 65,
    /// The database is required but missing.
    NoInput = 66,
    Internal = 70,
    CannotCreate = 73,
    Io = 74,
    TempFail = 75,
    NoPermission = 77,
    Config = 78,
    Sigint = 130,
    Sigterm = 143,
}

/// Every code, for `--help` and the README check.
pub const TABLE: &[(ExitCode, &str)] = &[
    (ExitCode::Ok, "done, or nothing to do"),
    (
        ExitCode::Drift,
        "--check: the .env or the database differs from the configuration",
    ),
    (
        ExitCode::Usage,
        "usage error: unknown flag, or two modes at once",
    ),
    (
        ExitCode::DataError,
        "data error: schema, key conflict, bad data in the row, corrupt file, identity mismatch, a .env line python-dotenv would misread",
    ),
    (
        ExitCode::NoInput,
        "REQUIRE_DATABASE=true and the database is missing; PostgreSQL: the database does not exist",
    ),
    (
        ExitCode::Internal,
        "internal error, or verification found a difference",
    ),
    (
        ExitCode::CannotCreate,
        "cannot create the output file (missing directory, link out of folder, not a regular file)",
    ),
    (ExitCode::Io, "I/O error (disk full, unreadable file)"),
    (
        ExitCode::TempFail,
        "temporary failure: lock timeout, database busy, PostgreSQL unreachable, starting or shutting down, OpenRouter unreachable with no key yet, a create's answer lost; run again",
    ),
    (
        ExitCode::NoPermission,
        "permission denied, read-only file or file system; PostgreSQL: login refused, TLS not offered or not trusted; OpenRouter refused the management key",
    ),
    (
        ExitCode::Config,
        "configuration error: a variable is missing or invalid, or OpenRouter refused a request as invalid",
    ),
    (ExitCode::Sigint, "interrupted by SIGINT"),
    (ExitCode::Sigterm, "interrupted by SIGTERM"),
];

impl ExitCode {
    pub fn code(self) -> u8 {
        self as u8
    }
}

pub(crate) fn for_error(error: &Error) -> ExitCode {
    match error {
        Error::Config(e) => match e {
            crate::config::ConfigError::SecretFile {
                source: Some(s), ..
            } if is_permission(s.kind()) => ExitCode::NoPermission,
            _ => ExitCode::Config,
        },
        Error::Identity(_) => ExitCode::DataError,
        Error::Db(e) => for_db(e),
        Error::Postgres(e) => for_postgres(e),
        Error::Output(e) => for_output(e),
        Error::Lock(LockError::Timeout { .. }) => ExitCode::TempFail,
        Error::Lock(LockError::Open { source, .. }) => {
            for_io(source.kind(), ExitCode::CannotCreate)
        }
        Error::Lock(LockError::IsLink { .. }) => ExitCode::CannotCreate,
        Error::Lock(LockError::Interrupted(i)) | Error::Interrupted(i) => for_signal(i.signal),
        Error::Verify(VerifyError::Db(e)) => for_db(e),
        Error::Verify(_) | Error::Render(_) => ExitCode::Internal,
        Error::SecretKeyHome { .. } => ExitCode::CannotCreate,
        Error::SecretKeyRead { source, .. } => for_io(source.kind(), ExitCode::Io),
        Error::SecretKeyUnusable { .. } => ExitCode::DataError,
        Error::Random(_) => ExitCode::Io,
        Error::SchemaWait { .. } => ExitCode::TempFail,
        // The part that failed decides: the operator fixes that, and reruns.
        Error::PartlyApplied { source, .. } => for_error(source),
        Error::Api(e) => for_api(e),
        Error::KeyStore(e) => match e {
            StoreError::Damaged { .. } | StoreError::OtherOrganization { .. } => {
                ExitCode::DataError
            }
            StoreError::NoFolder { .. } => ExitCode::CannotCreate,
            StoreError::File(e) => for_output(e),
        },
    }
}

/// 400 is 78: the request is built from the configuration (the limit, the
/// name), so the operator fixes a variable. An outage, a lost answer or a
/// key that vanished mid-run is 75: the next run finishes the work.
fn for_api(error: &ApiError) -> ExitCode {
    match error {
        ApiError::Unauthorized { .. } => ExitCode::NoPermission,
        ApiError::Invalid { .. } | ApiError::Setup { .. } => ExitCode::Config,
        ApiError::NotFound { .. }
        | ApiError::Unreachable { .. }
        | ApiError::OutcomeUnknown { .. }
        | ApiError::Protocol { .. } => ExitCode::TempFail,
        ApiError::Interrupted(i) => for_signal(i.signal),
    }
}

pub(crate) fn for_signal(signal: i32) -> ExitCode {
    if signal == signal_hook::consts::SIGINT {
        ExitCode::Sigint
    } else {
        ExitCode::Sigterm
    }
}

fn for_db(error: &DbError) -> ExitCode {
    match error {
        DbError::Required { .. } => ExitCode::NoInput,
        DbError::DataDirNotDirectory { .. } => ExitCode::Config,
        DbError::IsDirectory { .. }
        | DbError::UnfollowableLink { .. }
        | DbError::NotRegularFile { .. }
        | DbError::NotADatabase { .. }
        | DbError::Corrupt { .. }
        | DbError::MissingTables { .. }
        | DbError::MissingColumns { .. }
        | DbError::WrongColumn { .. }
        | DbError::NotUtf8 { .. }
        | DbError::BadValue { .. }
        | DbError::NotATable { .. }
        | DbError::WriteRefused { .. }
        | DbError::WriteIgnored { .. } => ExitCode::DataError,
        DbError::ReadOnly { .. } | DbError::HotJournal { .. } => ExitCode::NoPermission,
        DbError::Stat { source, .. } => for_io(source.kind(), ExitCode::Io),
        DbError::CreateDir { source, .. } => for_io(source.kind(), ExitCode::CannotCreate),
        DbError::Interrupted(i) => for_signal(i.signal),
        DbError::Sqlite { .. } => match error.sqlite_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => ExitCode::TempFail,
            Some(
                ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied
                | ErrorCode::AuthorizationForStatementDenied,
            ) => ExitCode::NoPermission,
            Some(
                ErrorCode::DatabaseCorrupt
                | ErrorCode::NotADatabase
                | ErrorCode::ConstraintViolation,
            ) => ExitCode::DataError,
            Some(ErrorCode::SystemIoFailure | ErrorCode::DiskFull) => ExitCode::Io,
            Some(ErrorCode::CannotOpen) => ExitCode::CannotCreate,
            _ => ExitCode::Internal,
        },
    }
}

fn for_postgres(error: &PgError) -> ExitCode {
    match error {
        PgError::Unreachable { .. }
        | PgError::NotReady { .. }
        | PgError::Timeout { .. }
        | PgError::LockTimeout { .. } => ExitCode::TempFail,
        PgError::Authentication { .. }
        | PgError::Tls { .. }
        | PgError::Permission { .. }
        | PgError::ReadOnly { .. } => ExitCode::NoPermission,
        PgError::NoDatabase { .. } => ExitCode::NoInput,
        PgError::Roots { .. } => ExitCode::Config,
        PgError::WriteRefused { .. } => ExitCode::DataError,
        PgError::Schema(e) => for_db(e),
        PgError::Failed { .. } => ExitCode::Internal,
        PgError::Interrupted(i) => for_signal(i.signal),
    }
}

fn for_output(error: &FileError) -> ExitCode {
    match error {
        FileError::DirectoryMissing { .. }
        | FileError::IsDirectory { .. }
        | FileError::LinkLeavesFolder { .. }
        | FileError::DanglingLink { .. }
        | FileError::NotRegularFile { .. } => ExitCode::CannotCreate,
        FileError::NotUtf8 { .. } | FileError::TooLarge { .. } | FileError::Misread { .. } => {
            ExitCode::DataError
        }
        FileError::Immutable { .. } | FileError::KeepOwner { .. } => ExitCode::NoPermission,
        FileError::Interrupted(i) => for_signal(i.signal),
        FileError::Create { source, .. } => for_io(source.kind(), ExitCode::CannotCreate),
        FileError::Read { source, .. } | FileError::Write { source, .. } => {
            for_io(source.kind(), ExitCode::Io)
        }
    }
}

fn for_io(kind: ErrorKind, otherwise: ExitCode) -> ExitCode {
    if is_permission(kind) {
        ExitCode::NoPermission
    } else if kind == ErrorKind::StorageFull {
        ExitCode::Io
    } else {
        otherwise
    }
}

fn is_permission(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
    )
}
