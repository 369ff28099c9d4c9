//! Carrying out a plan: the thin layer of effects. The order keeps every
//! crash recoverable: the new `.env` is complete on disk before the
//! database commits, and it replaces the old one only after the commit. A
//! run killed at any point leaves the old or the new state of each file,
//! and the next run converges.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, MAIN_DB, TransactionBehavior};

use crate::config::Config;
use crate::db::{self, Access, DbError};
use crate::envfile::{self, PreparedFile};
use crate::error::Error;
use crate::hooks::checkpoint;
use crate::plan::{self, DatabasePlan, DatabaseState, Plan};

const SECRET_KEY_MODE: u32 = 0o600;

/// What was done, which may differ from the plan when the database changed
/// between reading and writing (the write re-plans inside its transaction).
pub struct Applied {
    pub database: DatabasePlan,
    pub env_written: bool,
    pub secret_key_stored: bool,
    pub connection: Option<Connection>,
}

pub fn apply(
    plan: &Plan,
    config: &Config,
    connection: Option<Connection>,
    now: i64,
) -> Result<Applied, Error> {
    remove_leftovers(plan, config);
    let secret_key_stored = store_secret_key(plan)?;
    checkpoint("secret-stored")?;
    let prepared = match &plan.env.new_text {
        Some(text) => Some(PreparedFile::create(
            &plan.env.path,
            text.as_bytes(),
            config.env_file_mode,
        )?),
        None => None,
    };
    checkpoint("env-prepared")?;
    let (database, connection) = apply_database(plan, config, connection, now)?;
    checkpoint("database-committed")?;
    let env_written = prepared.is_some();
    if let Some(prepared) = prepared {
        if let Some(old) = &plan.env.old_text {
            PreparedFile::create(
                &backup_path(&plan.env.path),
                old.as_bytes(),
                config.env_file_mode,
            )?
            .commit()?;
            checkpoint("backup-written")?;
        }
        prepared.commit()?;
        checkpoint("env-committed")?;
    }
    Ok(Applied {
        database,
        env_written,
        secret_key_stored,
        connection,
    })
}

pub fn backup_path(env_file: &Path) -> PathBuf {
    crate::paths::with_name_suffix(env_file, ".backup")
}

/// Temp files of a run that was killed; we hold the lock, so no live run
/// is writing them.
fn remove_leftovers(plan: &Plan, config: &Config) {
    let mut removed = envfile::remove_leftovers(&plan.env.path);
    if config.data_dir.is_dir() {
        removed += envfile::remove_leftovers(&config.secret_key_store());
    }
    if removed > 0 {
        tracing::info!(removed, "removed temp files left by an interrupted run");
    }
}

fn store_secret_key(plan: &Plan) -> Result<bool, Error> {
    let Some(path) = &plan.secret_key.store_at else {
        return Ok(false);
    };
    PreparedFile::create(
        path,
        plan.secret_key.value.expose().as_bytes(),
        SECRET_KEY_MODE,
    )?
    .commit_new()?;
    tracing::info!(path = %path.display(), "stored a new WEBUI_SECRET_KEY");
    Ok(true)
}

fn apply_database(
    plan: &Plan,
    config: &Config,
    connection: Option<Connection>,
    now: i64,
) -> Result<(DatabasePlan, Option<Connection>), Error> {
    let DatabasePlan::Write { create_schema, .. } = &plan.database else {
        return Ok((plan.database.clone(), connection));
    };
    let path = &config.database_path;
    let mut conn = match connection {
        Some(conn) => conn,
        None => db::open(path, Access::Create, config.lock_timeout)?,
    };
    if conn.is_readonly(MAIN_DB).unwrap_or(false) {
        return Err(DbError::ReadOnly {
            path: path.clone(),
            owner: file_owner(path),
        }
        .into());
    }
    let done = write_in_transaction(&mut conn, plan, config, *create_schema, now)?;
    Ok((done, Some(conn)))
}

fn write_in_transaction(
    conn: &mut Connection,
    plan: &Plan,
    config: &Config,
    create_schema: bool,
    now: i64,
) -> Result<DatabasePlan, Error> {
    let path = &config.database_path;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(DbError::sqlite(path, "transaction start"))?;
    checkpoint("transaction-open")?;
    let mut schema = db::inspect(&tx, path)?;
    if schema.is_none() && create_schema {
        db::create_standalone_schema(&tx, path)?;
        checkpoint("schema-created")?;
        schema = db::inspect(&tx, path)?;
    }
    // Re-read inside the write lock: what the plan saw may have changed.
    let state = match schema {
        Some(schema) => DatabaseState::Ready(Box::new(db::read_snapshot(
            &tx,
            path,
            schema,
            &plan.id.value,
            &config.api_key,
        )?)),
        None => DatabaseState::Empty,
    };
    let fresh = plan::plan_database(config, &plan.id, &state, now)?;
    if let DatabasePlan::Write { write, .. } = &fresh {
        db::write_row(&tx, path, write)?;
    }
    checkpoint("before-commit")?;
    tx.commit().map_err(DbError::sqlite(path, "commit"))?;
    Ok(fresh)
}

fn file_owner(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.uid())
}
