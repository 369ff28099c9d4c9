//! The database of either kind behind one face, so that reading the world,
//! applying the plan and verifying call the same operations on SQLite and
//! on PostgreSQL: a `Database` is what a read or a transaction works on,
//! a `Store` is the open database (the SQLite connection, or the
//! PostgreSQL session that holds the advisory lock).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, MAIN_DB, TransactionBehavior};

use crate::config::{Config, PgTarget};
use crate::db::{self, Access, DbError, Expected, RowWrite, Schema, Snapshot};
use crate::error::Error;
use crate::postgres::{self, PgError, Session};
use crate::secret::Secret;

/// The steps of a read or of a write transaction.
pub trait Database {
    /// `None` when the database has no tables yet (a first boot).
    fn inspect(&mut self) -> Result<Option<Schema>, Error>;
    fn read_snapshot(
        &mut self,
        schema: Schema,
        id: &str,
        api_key: &Secret,
    ) -> Result<Snapshot, Error>;
    fn create_standalone_schema(&mut self) -> Result<(), Error>;
    fn add_columns(&mut self, names: &[&'static str]) -> Result<(), Error>;
    fn write_row(&mut self, write: &RowWrite) -> Result<(), Error>;
}

/// An open database.
pub enum Store {
    Sqlite { conn: Connection, path: PathBuf },
    Postgres(Box<Session>),
}

/// What a run found where the database should be.
pub enum Found {
    /// No SQLite file; `dir_exists` says whether its folder is there.
    Missing {
        dir_exists: bool,
    },
    /// A SQLite file, opened when the world is read.
    SqliteFile,
    Open(Store),
}

impl Store {
    /// Work on the database outside a transaction (reads).
    pub fn read<T>(
        &mut self,
        work: impl FnOnce(&mut dyn Database) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self {
            Self::Sqlite { conn, path } => work(&mut Sqlite { conn, path }),
            Self::Postgres(session) => work(session.as_mut()),
        }
    }

    /// Work in one transaction, committed when `work` succeeds and rolled
    /// back otherwise. SQLite's is `BEGIN IMMEDIATE`: the write lock from
    /// the start, so that what is read inside is what gets written over.
    /// PostgreSQL's runs under the advisory lock every run holds.
    pub fn transaction<T>(
        &mut self,
        work: impl FnOnce(&mut dyn Database) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self {
            Self::Sqlite { conn, path } => {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(DbError::sqlite(path, "transaction start"))?;
                let done = work(&mut Sqlite { conn: &tx, path })?;
                tx.commit().map_err(DbError::sqlite(path, "commit"))?;
                Ok(done)
            }
            Self::Postgres(session) => {
                session.begin()?;
                match work(session.as_mut()) {
                    Ok(done) => {
                        session.commit()?;
                        Ok(done)
                    }
                    Err(e) => {
                        session.rollback();
                        Err(e)
                    }
                }
            }
        }
    }

    /// The application's read of the row, compared with what was meant.
    pub fn verify(&mut self, expected: &Expected) -> Result<(), Error> {
        match self {
            Self::Sqlite { conn, path } => Ok(db::verify(conn, path, expected)?),
            Self::Postgres(session) => Ok(postgres::verify(session, expected)??),
        }
    }

    /// A SQLite file opened read-only cannot take the write: say why now.
    pub fn refuse_read_only(&self) -> Result<(), Error> {
        match self {
            Self::Sqlite { conn, path } if conn.is_readonly(MAIN_DB).unwrap_or(false) => {
                Err(DbError::read_only(path).into())
            }
            _ => Ok(()),
        }
    }
}

/// Find the database of a mode that touches it. PostgreSQL: connect and
/// take the advisory lock, both within `deadline`. SQLite: look at the
/// file (it is opened when the world is read).
pub fn find(
    config: &Config,
    file: Option<db::FileState>,
    deadline: Instant,
) -> Result<Found, Error> {
    if let Some(target) = &config.postgres {
        let mut session = connect(config, target, deadline)?;
        session.lock()?;
        return Ok(Found::Open(Store::Postgres(Box::new(session))));
    }
    Ok(match file {
        Some(db::FileState::Missing { dir_exists }) => Found::Missing { dir_exists },
        Some(db::FileState::Present) | None => Found::SqliteFile,
    })
}

/// The SQLite file, opened for `access`.
pub fn open_sqlite(config: &Config, access: Access, deadline: Instant) -> Result<Store, Error> {
    let path = &config.database_path;
    Ok(Store::Sqlite {
        conn: db::open(path, access, deadline)?,
        path: path.clone(),
    })
}

fn connect(config: &Config, target: &PgTarget, deadline: Instant) -> Result<Session, PgError> {
    Session::connect(
        target,
        &config.database_path.display().to_string(),
        deadline,
    )
}

/// One look for the application's schema, for `--wait-for-database`:
/// `Ok(None)` when it is there, `Ok(Some(why not))` to keep waiting.
pub fn schema_not_ready(config: &Config, timeout: Duration) -> Result<Option<String>, Error> {
    let deadline = Instant::now() + timeout;
    let mut store = match &config.postgres {
        Some(target) => match connect(config, target, deadline) {
            Ok(session) => Store::Postgres(Box::new(session)),
            // The server may come up after the application's pod does.
            Err(e @ (PgError::Unreachable { .. } | PgError::NotReady { .. })) => {
                return Ok(Some(e.to_string()));
            }
            Err(e) => return Err(e.into()),
        },
        None => match db::probe(&config.database_path)? {
            db::FileState::Missing { .. } => {
                return Ok(Some("the database does not exist yet".to_owned()));
            }
            db::FileState::Present => open_sqlite(config, Access::ReadOnly, deadline)?,
        },
    };
    match store.read(|db| db.inspect()) {
        Ok(Some(_)) => Ok(None),
        Ok(None) => Ok(Some("the database has no tables yet".to_owned())),
        Err(e) if is_missing_tables(&e) => Ok(Some(e.to_string())),
        Err(e) => Err(e),
    }
}

/// The application has begun to migrate but not yet made every table.
fn is_missing_tables(error: &Error) -> bool {
    match error {
        Error::Db(e) => matches!(e, DbError::MissingTables { .. }),
        Error::Postgres(e) => matches!(**e, PgError::Schema(DbError::MissingTables { .. })),
        _ => false,
    }
}

/// A SQLite connection (or transaction) and the file's path, for messages.
struct Sqlite<'a> {
    conn: &'a Connection,
    path: &'a Path,
}

impl Database for Sqlite<'_> {
    fn inspect(&mut self) -> Result<Option<Schema>, Error> {
        Ok(db::inspect(self.conn, self.path)?)
    }

    fn read_snapshot(
        &mut self,
        schema: Schema,
        id: &str,
        api_key: &Secret,
    ) -> Result<Snapshot, Error> {
        Ok(db::read_snapshot(
            self.conn, self.path, schema, id, api_key,
        )?)
    }

    fn create_standalone_schema(&mut self) -> Result<(), Error> {
        Ok(db::create_standalone_schema(self.conn, self.path)?)
    }

    fn add_columns(&mut self, names: &[&'static str]) -> Result<(), Error> {
        Ok(db::add_columns(self.conn, self.path, names)?)
    }

    fn write_row(&mut self, write: &RowWrite) -> Result<(), Error> {
        Ok(db::write_row(self.conn, self.path, write)?)
    }
}

impl Database for Session {
    fn inspect(&mut self) -> Result<Option<Schema>, Error> {
        Ok(postgres::inspect(self)?)
    }

    fn read_snapshot(
        &mut self,
        schema: Schema,
        id: &str,
        api_key: &Secret,
    ) -> Result<Snapshot, Error> {
        Ok(postgres::read_snapshot(self, schema, id, api_key)?)
    }

    /// The configuration refuses CREATE_SCHEMA with PostgreSQL, so a plan
    /// never asks for this.
    fn create_standalone_schema(&mut self) -> Result<(), Error> {
        Err(crate::config::ConfigError::Invalid {
            var: "CREATE_SCHEMA",
            problem: "is true, but the database is PostgreSQL".to_owned(),
            fix: "Let the mAI application create its schema, then run the job.".to_owned(),
        }
        .into())
    }

    fn add_columns(&mut self, names: &[&'static str]) -> Result<(), Error> {
        Ok(postgres::add_columns(self, names)?)
    }

    fn write_row(&mut self, write: &RowWrite) -> Result<(), Error> {
        Ok(postgres::write_row(self, write)?)
    }
}
