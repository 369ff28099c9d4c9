//! Reading the world: the current `.env`, the stored secret key and the
//! database row. Reads only; the one side effect is the connection it opens,
//! which `apply` goes on to use.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::config::{Config, Mode};
use crate::db::{self, Access, FileState};
use crate::envfile;
use crate::error::Error;
use crate::identity::OrgId;
use crate::plan::{DatabaseState, World};
use crate::secret::Secret;

pub struct Reading {
    pub world: World,
    /// Open when the database exists and the mode touches it.
    pub connection: Option<Connection>,
}

pub fn read(
    config: &Config,
    mode: Mode,
    id: &OrgId,
    env_file: PathBuf,
    database_file: Option<FileState>,
    access: Access,
) -> Result<Reading, Error> {
    let env_text = envfile::read_existing(&env_file)?;
    let env_mode = env_text.as_ref().and_then(|_| permission_bits(&env_file));
    // A configured key makes the store irrelevant: a broken store must not
    // block a run that does not need it.
    let stored_secret = match config.webui_secret_key {
        Some(_) => None,
        None => read_stored_secret(config)?,
    };
    let (database, connection) = match (mode, database_file) {
        (Mode::Env, _) | (_, None) => (DatabaseState::NotInMode, None),
        (_, Some(FileState::Missing { dir_exists })) => {
            (DatabaseState::Missing { dir_exists }, None)
        }
        (_, Some(FileState::Present)) => {
            let (state, conn) = read_database(config, id, access)?;
            (state, Some(conn))
        }
    };
    Ok(Reading {
        world: World {
            env_file,
            env_text,
            env_mode,
            stored_secret,
            data_dir_exists: config.data_dir.is_dir(),
            database,
        },
        connection,
    })
}

fn read_database(
    config: &Config,
    id: &OrgId,
    access: Access,
) -> Result<(DatabaseState, Connection), Error> {
    let path = &config.database_path;
    let conn = db::open(path, access, config.lock_timeout)?;
    let state = match db::inspect(&conn, path)? {
        None => DatabaseState::Empty,
        Some(schema) => DatabaseState::Ready(Box::new(db::read_snapshot(
            &conn,
            path,
            schema,
            &id.value,
            &config.api_key,
        )?)),
    };
    Ok((state, conn))
}

fn read_stored_secret(config: &Config) -> Result<Option<Secret>, Error> {
    let text = envfile::read_existing(&config.secret_key_store())
        .map_err(|e| stored_secret_error(config, e))?;
    Ok(text
        .map(|t| t.trim_end_matches(['\n', '\r']).to_owned())
        .filter(|t| !t.is_empty())
        .map(Secret::new))
}

/// The store is read with the `.env` reader; say what went wrong in terms
/// of the store, and of DATA_DIR when that is not a directory at all.
fn stored_secret_error(config: &Config, error: envfile::OutputError) -> Error {
    use envfile::OutputError as E;
    let unusable = |path: PathBuf, problem: &str| Error::SecretKeyUnusable {
        path,
        problem: problem.to_owned(),
    };
    match error {
        E::Read { source, .. } if source.kind() == std::io::ErrorKind::NotADirectory => {
            db::DbError::DataDirNotDirectory {
                path: config.data_dir.clone(),
            }
            .into()
        }
        E::Read { path, source } => Error::SecretKeyRead { path, source },
        E::IsDirectory { path } => unusable(path, "is a directory, not a file"),
        E::NotRegularFile { path } => {
            unusable(path, "is not a regular file (a pipe, socket or device)")
        }
        E::NotUtf8 { path } => unusable(path, "is not UTF-8 text"),
        E::TooLarge { path } => unusable(path, "is far larger than any key"),
        other => other.into(),
    }
}

fn permission_bits(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}
