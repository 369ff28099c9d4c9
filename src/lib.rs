//! mai-provision: make the `.env`, the organization row and the id that
//! links them agree, idempotently, in one run. Read the world, plan, apply:
//! see `plan` for the decisions and `apply` for the effects.

// Modules the binary and the tests use are public; the rest is private,
// so that the compiler sees what nothing calls.
mod apply;
mod checkpoint;
pub mod cli;
pub mod config;
mod db;
pub mod envfile;
mod error;
pub mod exit;
pub mod identity;
mod keyapply;
mod keyphase;
mod keyplan;
mod keyworld;
#[cfg(test)]
mod layers;
mod lock;
pub mod logging;
pub(crate) mod openrouter;
mod paths;
mod plan;
mod postgres;
mod process;
pub mod report;
pub mod secret;
pub mod signals;
mod store;
pub mod termination;
mod timestamp;
mod verify;
mod world;

pub use error::Error;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cli::Options;
use config::{Config, KeySource, Mode};
use db::{Access, FileState};
use identity::OrgId;
use keyphase::KeyPhase;
use lock::Lock;
use plan::ApiKey;
use report::{KeyReport, Outcome};
use secret::Secret;

/// The name of the lock file in the database's directory.
pub const LOCK_FILE_NAME: &str = ".mai-provision.lock";

/// One whole run, from reading the environment to the verified result.
pub fn run(options: &Options) -> Result<Outcome, Error> {
    let config = config::from_env()?;
    let mode = options.mode.or(config.mode).unwrap_or(Mode::Env);
    tracing::debug!(
        "configuration: mode {}, {}",
        mode.as_str(),
        config.describe()
    );
    // A DATA_DIR that names a file is a typo in every mode, even where the
    // run would not need the directory.
    if config.data_dir.exists() && !config.data_dir.is_dir() {
        return Err(db::DbError::DataDirNotDirectory {
            path: config.data_dir.clone(),
        }
        .into());
    }
    let env_file = envfile::resolve_target(&config.env_file)?;
    refuse_shared_paths(&config, &env_file)?;
    if options.sidecar && !mode.touches_database() {
        return Err(config::ConfigError::Invalid {
            var: "PROVISION_MODE",
            problem: "is env, but --sidecar is for writing the organization row".to_owned(),
            fix: "Use --sidecar with --production (or PROVISION_MODE=production).".to_owned(),
        }
        .into());
    }
    if options.rotate_key && config.key_source.minting().is_none() {
        return Err(config::ConfigError::Invalid {
            var: "--rotate-key",
            problem: "asks to rotate the OpenRouter key, but only a key the job mints can be rotated, and no \
                      management key is set"
                .to_owned(),
            fix: "Set OPENROUTER_MANAGEMENT_KEY (or OPENROUTER_MANAGEMENT_KEY_FILE), or rotate the key on \
                  OpenRouter and give the new one in OPENROUTER_API_KEY."
                .to_owned(),
        }
        .into());
    }
    // A sidecar starts beside the application, before its schema exists.
    let wait = options
        .wait_for_database
        .or(config.wait_for_database)
        .or(options.sidecar.then_some(config::DEFAULT_WAIT_FOR_DATABASE));
    if let (true, Some(timeout)) = (mode.touches_database(), wait) {
        wait_for_schema(&config, timeout)?;
    }
    // PostgreSQL has no file: its lock is the advisory lock (store::find).
    let database_file = match mode {
        Mode::Env => None,
        _ if config.postgres.is_some() => None,
        Mode::Database | Mode::Production => Some(db::probe(&config.database_path)?),
    };
    // LOCK_TIMEOUT bounds the run's waiting as a whole: the file locks and
    // every wait for a database another process keeps busy end here.
    let deadline = Instant::now() + config.lock_timeout;
    let _locks = take_locks(&config, &env_file, database_file, options.dry_run, deadline)?;
    let database = if mode.touches_database() {
        Some(store::find(&config, database_file, deadline)?)
    } else {
        None
    };
    tracing::debug!("locks taken");
    checkpoint::checkpoint("locked")?;
    let id = OrgId::resolve(config.external_user.as_deref(), &config.organization_name);
    let access = if options.dry_run {
        Access::Untouched
    } else {
        Access::ReadWrite
    };
    let now = timestamp::now();
    // Phase 1, with a management key: the key the .env and the row get.
    let (mut key_phase, api_key) = match &config.key_source {
        KeySource::Minted(minting) => {
            let phase = KeyPhase::run(&config, minting, &id, options, mode, now)?;
            let api_key = phase.outcome.api_key.clone();
            (Some(phase), api_key)
        }
        KeySource::Given(key) => (
            None,
            ApiKey {
                value: key.clone(),
                hash: None,
            },
        ),
    };
    // Phase 2: today's pipeline, with that key.
    let reading = world::read(
        &config,
        &id,
        &api_key.value,
        env_file,
        database,
        access,
        deadline,
    )?;
    tracing::debug!("found: {}", reading.world.describe());
    let mut plan = plan::build(
        &config,
        mode,
        id,
        &reading.world,
        api_key,
        now,
        new_secret_key,
    )?;
    if let Some(phase) = &mut key_phase {
        phase.plan_previous(mode, &reading.world, now);
        plan.warnings
            .splice(0..0, phase.outcome.warnings.iter().cloned());
    }
    tracing::debug!(
        "decided:\n{}",
        report::plan_text(
            &plan,
            &config.database_path,
            key_report(&key_phase).as_ref()
        )
        .trim_end()
    );
    for warning in &plan.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(phase) = &key_phase {
        phase.say_previous(mode);
    }
    if options.dry_run {
        return Ok(Outcome::planned(
            &plan,
            &config.database_path,
            final_key_report(&key_phase),
        ));
    }
    if let Some(phase) = &mut key_phase
        && matches!(plan.database, plan::DatabasePlan::Write { .. })
    {
        phase.note_row_write(now)?;
    }
    let mut applied = apply::apply(&plan, &config, reading.connection, now, deadline)?;
    if let Some(phase) = &mut key_phase {
        phase.delete_previous()?;
    }
    if let Some(signal) = signals::received() {
        // Stopping between the commit and the renames would have left the
        // database and the .env apart; the run finished them first.
        tracing::warn!(
            "{} arrived after the database commit: the run finished replacing its files first, so the .env \
             and the database agree; it was not verified",
            signals::signal_name(signal)
        );
        return Ok(Outcome::applied(
            &plan,
            &applied,
            &config.database_path,
            false,
            final_key_report(&key_phase),
        ));
    }
    if mode == Mode::Production {
        verify::verify(&plan, &config, &mut applied, deadline)?;
    }
    // `verified` promises that the application's lookup finds the row: a
    // skipped database step is never verified.
    let verified = mode == Mode::Production && applied.database.expected().is_some();
    Ok(Outcome::applied(
        &plan,
        &applied,
        &config.database_path,
        verified,
        final_key_report(&key_phase),
    ))
}

fn key_report(phase: &Option<KeyPhase>) -> Option<KeyReport> {
    phase.as_ref().map(|phase| {
        KeyReport::new(
            &phase.outcome,
            &phase.previous,
            phase.previous_deleted.as_deref(),
            phase.api.requests(),
        )
    })
}

/// The key's report in the run's outcome, once the run sends no more
/// requests: the one place that logs how many it sent.
fn final_key_report(phase: &Option<KeyPhase>) -> Option<KeyReport> {
    if let Some(phase) = phase {
        tracing::debug!(
            "OpenRouter: {} request(s) in this run",
            phase.api.requests()
        );
    }
    key_report(phase)
}

/// First boot with `--wait-for-database`: poll until the application has
/// created its schema, so that the configured markup reaches the row on the
/// very first start. A half-migrated database counts as not ready yet.
fn wait_for_schema(config: &Config, timeout: Duration) -> Result<(), Error> {
    const POLL: Duration = Duration::from_millis(500);
    let path = &config.database_path;
    let started = Instant::now();
    let mut said = false;
    loop {
        let Some(not_ready) = store::schema_not_ready(config, config.lock_timeout)? else {
            return Ok(());
        };
        if !said {
            // Only a run that really waits says so.
            tracing::info!(path = %path.display(), "waiting up to {} s for the application's schema", timeout.as_secs());
            said = true;
        }
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(Error::SchemaWait {
                path: path.clone(),
                waited,
                last: not_ready,
            });
        }
        signals::sleep(POLL.min(timeout - waited))?;
    }
}

/// The folder locks serialise replicas on a shared volume: the database's
/// folder, and the key store's (the same one by default), which env-only
/// runs need too. The `.env` lock also covers runs writing the same file.
/// Every run takes its folder locks in one order (by path) and the `.env`
/// lock last, so that no two runs ever wait for each other in a circle.
/// LOCK_TIMEOUT bounds the wait for all of them together: one deadline, not
/// one per lock, so that two holders in turn cannot double it.
fn take_locks(
    config: &Config,
    env_file: &Path,
    database: Option<FileState>,
    dry_run: bool,
    deadline: Instant,
) -> Result<Vec<Lock>, Error> {
    let started = Instant::now();
    let database_dir = config.database_dir();
    let dir_exists = !matches!(database, Some(FileState::Missing { dir_exists: false }));
    if database.is_some() && !dir_exists && config.create_schema && !dry_run {
        std::fs::create_dir_all(database_dir).map_err(|source| db::DbError::CreateDir {
            path: database_dir.to_owned(),
            source,
        })?;
    }
    let mut folders: Vec<PathBuf> = Vec::new();
    if database.is_some() {
        folders.push(database_dir.to_owned());
    }
    folders.push(paths::dir_of(&config.secret_key_store).to_owned());
    // The OpenRouter key store's folder: replicas that mint take turns, and
    // the second finds the first one's key.
    if let Some(minting) = config.key_source.minting() {
        folders.push(paths::dir_of(&minting.key_store).to_owned());
    }
    // The same folder may be named two ways; its lock is taken once.
    let mut folders: Vec<PathBuf> = folders
        .iter()
        .filter(|dir| dir.is_dir())
        .map(|dir| std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()))
        .collect();
    folders.sort();
    folders.dedup();
    let mut locks = Vec::new();
    for folder in folders {
        locks.push(lock::acquire_within(
            &folder.join(LOCK_FILE_NAME),
            started,
            deadline,
        )?);
    }
    locks.push(lock::acquire_within(
        &env_lock_path(env_file),
        started,
        deadline,
    )?);
    Ok(locks)
}

/// Each file has one job: a `.env` written over a key store, the database
/// or a lock file would destroy it, and a key store on the database too.
fn refuse_shared_paths(config: &Config, env_file: &Path) -> Result<(), config::ConfigError> {
    let store_dir = paths::dir_of(&config.secret_key_store);
    let database_lock = config.database_dir().join(LOCK_FILE_NAME);
    let store_lock = store_dir.join(LOCK_FILE_NAME);
    // Each path with the variable that names it, if any: a file is never
    // checked against itself.
    let mut taken: Vec<(Option<&str>, &Path, &str)> = vec![
        (None, &config.database_path, "the database"),
        (None, &database_lock, "a lock file of this job"),
        (None, &store_lock, "a lock file of this job"),
        (
            Some("WEBUI_SECRET_KEY_STORE"),
            &config.secret_key_store,
            "the key store (WEBUI_SECRET_KEY_STORE)",
        ),
    ];
    let key_store = config.key_source.minting().map(|m| m.key_store.as_path());
    let key_store_lock = key_store.map(|path| paths::dir_of(path).join(LOCK_FILE_NAME));
    if let (Some(path), Some(lock)) = (key_store, &key_store_lock) {
        taken.push((None, lock, "a lock file of this job"));
        taken.push((
            Some("OPENROUTER_KEY_STORE"),
            path,
            "the OpenRouter key store (OPENROUTER_KEY_STORE)",
        ));
    }
    let mut checks: Vec<(&'static str, &Path)> = vec![
        ("ENV_FILE", env_file),
        ("WEBUI_SECRET_KEY_STORE", &config.secret_key_store),
    ];
    if let Some(path) = key_store {
        checks.push(("OPENROUTER_KEY_STORE", path));
    }
    for (var, path) in checks {
        let found = taken
            .iter()
            .filter(|(owner, ..)| *owner != Some(var))
            .find(|(_, other, _)| paths::same_location(path, other))
            .map(|(_, other, what)| (other, what));
        if let Some((other, what)) = found {
            return Err(config::ConfigError::Invalid {
                var,
                problem: format!("names {what}, {}", other.display()),
                fix: "Give each file its own path: ENV_FILE is the .env the application loads."
                    .to_owned(),
            });
        }
    }
    Ok(())
}

fn env_lock_path(env_file: &Path) -> PathBuf {
    paths::with_name_suffix(env_file, ".lock")
}

/// 32 bytes from the OS random source, hex-encoded.
fn new_secret_key() -> Result<Secret, Error> {
    use rand::TryRng;
    let mut bytes = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| Error::Random(e.to_string()))?;
    Ok(Secret::new(secret::to_hex(&bytes)))
}
