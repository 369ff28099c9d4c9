//! The job's one error type: each concern keeps its own, and this gathers
//! them so that `exit` can map every failure to an exit code in one place.

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::db::{DbError, VerifyError};
use crate::envfile::{FileError, RenderError};
use crate::identity::IdentityError;
use crate::lock::LockError;
use crate::openrouter::{ApiError, StoreError};
use crate::postgres::PgError;
use crate::signals::Interrupted;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Output(#[from] FileError),
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Boxed: PostgreSQL's errors carry the server's words, and would make
    /// every `Result` of the run as large as they are.
    #[error(transparent)]
    Postgres(Box<PgError>),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
    /// OpenRouter's key-management API (with a management key).
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    KeyStore(#[from] StoreError),
    /// Config validation renders every value first, so this means a bug.
    #[error("internal error: a managed value could not be rendered ({0}); please report this")]
    Render(RenderError),
    #[error(
        "no WEBUI_SECRET_KEY is configured, none is in the .env, and {} cannot hold a new one because DATA_DIR does not exist. \
         Mount the data volume at DATA_DIR, or set WEBUI_SECRET_KEY (or WEBUI_SECRET_KEY_FILE).",
        path.display()
    )]
    SecretKeyHome { path: PathBuf },
    /// A key read from the `.env` or from the store that cannot be used:
    /// not text, or not writable back so that every reader agrees.
    #[error(
        "{}, where WEBUI_SECRET_KEY is kept, {problem}. Set WEBUI_SECRET_KEY (or WEBUI_SECRET_KEY_FILE) to the key \
         to keep (the same key keeps users signed in), or correct the file; nothing was changed.",
        path.display()
    )]
    SecretKeyUnusable { path: PathBuf, problem: String },
    #[error("cannot read {}: {source}", path.display())]
    SecretKeyRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "waited {:.0} s for the application to create its schema in {}, but {last}. \
         Check that the application started and uses the same data volume, or wait longer (--wait-for-database=SECONDS).",
        waited.as_secs_f64(), path.display()
    )]
    SchemaWait {
        path: PathBuf,
        waited: std::time::Duration,
        last: String,
    },
    #[error(
        "cannot get random bytes from the operating system for a new WEBUI_SECRET_KEY: {0}. Set WEBUI_SECRET_KEY instead."
    )]
    Random(String),
    /// A failure after the database committed: some files were replaced,
    /// others not. The message says exactly which, so that nobody takes
    /// the deployment for either the old state or the new one.
    #[error(
        "the run was only partly applied: done: {}; NOT done: {}, because {source}. Until this is fixed, \
         the application reads the old files with the new database row. Fix the cause and run again: \
         the next run finishes the change.",
        done.join(", "), not_done.join(", ")
    )]
    PartlyApplied {
        done: Vec<&'static str>,
        not_done: Vec<&'static str>,
        source: Box<Error>,
    },
}

impl From<PgError> for Error {
    fn from(error: PgError) -> Self {
        Self::Postgres(Box::new(error))
    }
}
