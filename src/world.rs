//! Reading the world: the current `.env`, the stored secret key and the
//! database row. Reads only; the one side effect is the connection it opens,
//! which `apply` goes on to use.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::Config;
use crate::db::{self, Access, Schema, Snapshot};
use crate::envfile;
use crate::error::Error;
use crate::identity::OrgId;
use crate::secret::Secret;
use crate::store::{self, Database, Found, Store};

/// The world as read at the start of a run.
#[derive(Debug, Clone)]
pub struct World {
    /// Where the `.env` really is (a link inside its folder is followed).
    pub env_file: PathBuf,
    pub env_text: Option<String>,
    /// Its permission bits, which must match ENV_FILE_MODE.
    pub env_mode: Option<u32>,
    /// What the key store (WEBUI_SECRET_KEY_STORE) holds.
    pub stored_secret: StoredKey,
    /// Whether the key store's folder exists, so that it can be written.
    pub store_dir_exists: bool,
    pub database: DatabaseState,
}

/// The key store as read, the way the start script's `$(cat file)` reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredKey {
    /// No file, or nothing in it.
    Absent,
    Key(Secret),
    /// A file that holds no usable key (not text, far too large).
    Unusable {
        problem: String,
    },
}

impl StoredKey {
    pub fn key(&self) -> Option<&Secret> {
        match self {
            Self::Key(key) => Some(key),
            Self::Absent | Self::Unusable { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum DatabaseState {
    /// `--production`/`--init-database` not asked for.
    NotInMode,
    /// No database file; `dir_exists` says whether the volume is there.
    Missing {
        dir_exists: bool,
    },
    /// A database with no tables: the application has not started yet.
    Empty,
    Ready(Box<Snapshot>),
}

impl World {
    /// What was found, for the debug log; no value is shown.
    pub fn describe(&self) -> String {
        let env = match (&self.env_text, self.env_mode) {
            (None, _) => "no .env yet".to_owned(),
            (Some(text), mode) => format!(
                ".env of {} bytes, mode {}",
                text.len(),
                mode.map_or_else(|| "?".to_owned(), |m| format!("{m:04o}"))
            ),
        };
        let store = match &self.stored_secret {
            StoredKey::Absent => "empty or missing".to_owned(),
            StoredKey::Key(key) => format!("holds {}", key.fingerprint()),
            StoredKey::Unusable { problem } => problem.clone(),
        };
        let database = match &self.database {
            DatabaseState::NotInMode => "not read in this mode".to_owned(),
            DatabaseState::Missing { dir_exists } => format!(
                "missing ({})",
                if *dir_exists {
                    "its folder exists"
                } else {
                    "its folder is missing too"
                }
            ),
            DatabaseState::Empty => "no tables yet".to_owned(),
            DatabaseState::Ready(snapshot) => snapshot.describe(),
        };
        format!("{env}; key store {store}; database: {database}")
    }
}

pub struct Reading {
    pub world: World,
    /// Open when the database exists and the mode touches it.
    pub connection: Option<Store>,
}

/// `database` is `None` when the mode does not touch the database;
/// `api_key` is the key the run will write: the database is asked which
/// other organization holds it.
pub fn read(
    config: &Config,
    id: &OrgId,
    api_key: &Secret,
    env_file: PathBuf,
    database: Option<Found>,
    access: Access,
    deadline: Instant,
) -> Result<Reading, Error> {
    let env_text = envfile::read_existing(&env_file)?;
    // Checked now, so that a folder there refuses the run before anything
    // is written, instead of failing after the database committed.
    envfile::check_replaceable(&envfile::backup_path(&env_file))?;
    let env_mode = env_text.as_ref().and_then(|_| permission_bits(&env_file));
    let stored_secret = read_stored_secret(config)?;
    let (database, connection) = match database {
        None => (DatabaseState::NotInMode, None),
        Some(Found::Missing { dir_exists }) => (DatabaseState::Missing { dir_exists }, None),
        Some(Found::SqliteFile) => {
            let mut store = store::open_sqlite(config, access, deadline)?;
            (read_database(&mut store, id, api_key)?, Some(store))
        }
        Some(Found::Open(mut store)) => (read_database(&mut store, id, api_key)?, Some(store)),
    };
    Ok(Reading {
        world: World {
            env_file,
            env_text,
            env_mode,
            stored_secret,
            store_dir_exists: crate::paths::dir_of(&config.secret_key_store).is_dir(),
            database,
        },
        connection,
    })
}

fn read_database(store: &mut Store, id: &OrgId, api_key: &Secret) -> Result<DatabaseState, Error> {
    store.read(|db| {
        let schema = db.inspect()?;
        database_state(db, schema, id, api_key)
    })
}

/// The database's state given what `inspect` found: no tables, or the
/// snapshot of the row and its neighbours. `apply` re-reads it this way
/// inside its transaction.
pub fn database_state(
    db: &mut dyn Database,
    schema: Option<Schema>,
    id: &OrgId,
    api_key: &Secret,
) -> Result<DatabaseState, Error> {
    Ok(match schema {
        None => DatabaseState::Empty,
        Some(schema) => {
            DatabaseState::Ready(Box::new(db.read_snapshot(schema, &id.value, api_key)?))
        }
    })
}

/// The store as the start script reads it (`$(cat file)` drops trailing
/// line breaks). A store that holds no usable key is reported, not fatal:
/// it only matters when no other key is at hand, and is rewritten otherwise.
fn read_stored_secret(config: &Config) -> Result<StoredKey, Error> {
    use envfile::FileError as E;
    let unusable = |problem: &str| {
        Ok(StoredKey::Unusable {
            problem: problem.to_owned(),
        })
    };
    match envfile::read_existing(&config.secret_key_store) {
        Ok(None) => Ok(StoredKey::Absent),
        Ok(Some(text)) => match text.trim_end_matches('\n') {
            "" => Ok(StoredKey::Absent),
            key => Ok(StoredKey::Key(Secret::new(key))),
        },
        Err(E::NotUtf8 { .. }) => unusable("is not UTF-8 text"),
        Err(E::TooLarge { .. }) => unusable("is far larger than any key"),
        Err(e) => Err(stored_secret_error(config, e)),
    }
}

/// The store is read with the `.env` reader; say what went wrong in terms
/// of the store, and of DATA_DIR when that is not a directory at all.
fn stored_secret_error(config: &Config, error: envfile::FileError) -> Error {
    use envfile::FileError as E;
    let unusable = |path: PathBuf, problem: &str| Error::SecretKeyUnusable {
        path,
        problem: problem.to_owned(),
    };
    match error {
        E::Read { path, source } if source.kind() == std::io::ErrorKind::NotADirectory => {
            let dir = crate::paths::dir_of(&config.secret_key_store);
            if dir == config.data_dir {
                db::DbError::DataDirNotDirectory {
                    path: config.data_dir.clone(),
                }
                .into()
            } else {
                unusable(path, "lies in a folder that is not a directory")
            }
        }
        E::Read { path, source } => Error::SecretKeyRead { path, source },
        E::IsDirectory { path, .. } => unusable(
            path,
            "is a directory, not a file (Docker makes one when it mounts a file that does not exist yet; remove it)",
        ),
        E::NotRegularFile { path } => {
            unusable(path, "is not a regular file (a pipe, socket or device)")
        }
        other => other.into(),
    }
}

fn permission_bits(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}
