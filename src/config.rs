//! The environment contract: which variables the job reads, their defaults,
//! and the rules a value must meet. Everything here is checked before any
//! file is touched, so a typo never leaves half a deployment behind.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::envfile;
use crate::openrouter::url_host;
use crate::secret::Secret;

mod database;
mod minting;
pub(crate) mod vars;

pub use database::{PgHost, PgTarget, SslMode};
pub use minting::{KeySource, Minting};
pub use vars::{VARIABLES, Variable};

pub(crate) const DEFAULT_HOST: &str = "https://openrouter.ai/api/v1";
pub(crate) const DEFAULT_DATA_DIR: &str = "/app/backend/data";
pub(crate) const DEFAULT_ENV_FILE: &str = ".env";
pub(crate) const DEFAULT_ENV_FILE_MODE: u32 = 0o600;
pub(crate) const DEFAULT_MARKUP_RATE: f64 = 1.3;
pub(crate) const DEFAULT_LOCK_TIMEOUT_SECS: f64 = 60.0;
pub(crate) const UNLIMITED: &str = "unlimited";
pub(crate) const DATABASE_FILE_NAME: &str = "webui.db";
/// The name of the key store in DATA_DIR, and of the file the image's start
/// script reads (in its working directory, `/app/backend`).
pub(crate) const SECRET_KEY_STORE_NAME: &str = ".webui_secret_key";
/// How long `--wait-for-database` (and `WAIT_FOR_DATABASE=true`) waits.
pub(crate) const DEFAULT_WAIT_FOR_DATABASE: Duration = Duration::from_secs(300);
/// The longest wait, for the lock or for the schema: a day.
pub(crate) const MAX_WAIT_SECS: f64 = 86_400.0;

/// Larger values are typos or attacks, never configuration; refusing them
/// early keeps them out of logs and files.
const MAX_VARIABLE_BYTES: usize = 64 * 1024;
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;
const NAME_CHARS: std::ops::RangeInclusive<usize> = 3..=100;
const MIN_API_KEY_CHARS: usize = 20;
const EXTERNAL_USER_CHARS: std::ops::RangeInclusive<usize> = 3..=64;
/// A markup below 0.1 (a 90% discount) or above 100 is a typo, not a price.
const MIN_MARKUP_RATE: f64 = 0.1;
const MAX_MARKUP_RATE: f64 = 100.0;
const MAX_MODEL_ID_CHARS: usize = 200;
const MAX_SECRET_KEY_CHARS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Write the `.env` only.
    Env,
    /// The `.env` and the organization row.
    Database,
    /// Both, then read everything back and compare.
    Production,
}

impl Mode {
    pub fn touches_database(self) -> bool {
        self != Mode::Env
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Env => "env",
            Mode::Database => "database",
            Mode::Production => "production",
        }
    }
}

/// `MARKUP_RATE`, remembering whether the operator set it: an unset rate is
/// only a default for new rows and never overrides one an admin chose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarkupRate {
    pub value: f64,
    pub explicit: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub organization_name: String,
    /// The given OPENROUTER_API_KEY, or a management key to mint one with.
    pub key_source: KeySource,
    pub external_user: Option<String>,
    pub host: String,
    pub markup_rate: MarkupRate,
    /// `unlimited` or a positive decimal in Python's `str(float)` form.
    pub spending_limit: String,
    pub model_ids: Option<Vec<String>>,
    pub webui_secret_key: Option<Secret>,
    pub data_dir: PathBuf,
    /// The SQLite file; for PostgreSQL, the URL without its password (what
    /// messages, the plan and the report show).
    pub database_path: PathBuf,
    /// `Some` when the database is PostgreSQL (chosen by the URL).
    pub postgres: Option<PgTarget>,
    pub env_file: PathBuf,
    pub env_file_mode: u32,
    /// Where the job keeps WEBUI_SECRET_KEY for the image's start script.
    pub secret_key_store: PathBuf,
    pub lock_timeout: Duration,
    pub create_schema: bool,
    pub require_database: bool,
    /// `ORGANIZATION_ACTIVE`: `None` keeps an existing row's state (a new
    /// row is active); `Some` sets it.
    pub organization_active: Option<bool>,
    pub mode: Option<Mode>,
    /// `Some` when the job should wait for the application's schema.
    pub wait_for_database: Option<Duration>,
}

impl Config {
    /// The resolved configuration for the debug log: every setting, the
    /// secrets as fingerprints only.
    pub fn describe(&self) -> String {
        let markup = if self.markup_rate.explicit {
            self.markup_rate.value.to_string()
        } else {
            format!("unset (new rows {})", self.markup_rate.value)
        };
        let key = match &self.key_source {
            KeySource::Given(key) => key.fingerprint(),
            KeySource::Minted(minting) => minting.describe(),
        };
        format!(
            "organization {:?}, id {}, OpenRouter key {key}, host {}, markup {markup}, spending limit {}, \
             models {}, WEBUI_SECRET_KEY {}, ORGANIZATION_ACTIVE {:?}, DATA_DIR {:?}, database {:?}, .env {:?} \
             (mode {:04o}), key store {:?}, LOCK_TIMEOUT {:?}, CREATE_SCHEMA {}, REQUIRE_DATABASE {}",
            self.organization_name,
            self.external_user.as_deref().unwrap_or("derived"),
            self.host,
            self.spending_limit,
            self.model_ids
                .as_ref()
                .map_or_else(|| "all".to_owned(), |ids| ids.join(",")),
            self.webui_secret_key
                .as_ref()
                .map_or_else(|| "not configured".to_owned(), Secret::fingerprint),
            self.organization_active,
            self.data_dir,
            self.database_path,
            self.env_file,
            self.env_file_mode,
            self.secret_key_store,
            self.lock_timeout,
            self.create_schema,
            self.require_database,
        )
    }

    /// The directory that holds the database, its lock and the stored secret.
    pub fn database_dir(&self) -> &Path {
        crate::paths::dir_of(&self.database_path)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not set. {fix}")]
    Missing {
        var: &'static str,
        fix: &'static str,
    },
    #[error("{var} {problem}. {fix}")]
    Invalid {
        var: &'static str,
        problem: String,
        fix: String,
    },
    #[error("{first} and {second} are both set. Set only one of them.")]
    BothSet {
        first: &'static str,
        second: &'static str,
    },
    #[error("{var} is not valid UTF-8. Set it to UTF-8 text.")]
    NotUtf8 { var: String },
    #[error("{var} is {len} bytes long, more than the {max} bytes allowed. Check its value.")]
    TooLong { var: String, len: usize, max: usize },
    #[error("{var}={}: {problem}. {fix}", path.display())]
    SecretFile {
        var: &'static str,
        path: PathBuf,
        problem: String,
        fix: &'static str,
        #[source]
        source: Option<io::Error>,
    },
}

impl From<crate::logging::SettingsError> for ConfigError {
    fn from(e: crate::logging::SettingsError) -> Self {
        Self::Invalid {
            var: e.var,
            problem: e.problem.to_owned(),
            fix: e.fix.to_owned(),
        }
    }
}

impl ConfigError {
    fn invalid(var: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::Invalid {
            var,
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// The variables as strings, before any rule is applied. envy fills it. No
/// `Debug`: it holds the keys and passwords in the clear.
#[derive(Default, Deserialize)]
struct RawEnv {
    organization_name: Option<String>,
    openrouter_api_key: Option<String>,
    openrouter_api_key_file: Option<String>,
    openrouter_external_user: Option<String>,
    openrouter_host: Option<String>,
    openrouter_management_key: Option<String>,
    openrouter_management_key_file: Option<String>,
    openrouter_provisioning_key: Option<String>,
    openrouter_provisioning_key_file: Option<String>,
    spending_limit_reset: Option<String>,
    rotate_key: Option<String>,
    key_rotation_grace: Option<String>,
    openrouter_timeout: Option<String>,
    openrouter_key_store: Option<String>,
    ssl_cert_file: Option<String>,
    https_proxy: Option<String>,
    no_proxy: Option<String>,
    markup_rate: Option<String>,
    spending_limit: Option<String>,
    model_ids: Option<String>,
    webui_secret_key: Option<String>,
    webui_secret_key_file: Option<String>,
    webui_secret_key_store: Option<String>,
    organization_active: Option<String>,
    database_url: Option<String>,
    database_url_file: Option<String>,
    database_type: Option<String>,
    database_user: Option<String>,
    database_password: Option<String>,
    database_password_file: Option<String>,
    database_host: Option<String>,
    database_port: Option<String>,
    database_name: Option<String>,
    data_dir: Option<String>,
    env_file: Option<String>,
    env_file_mode: Option<String>,
    lock_timeout: Option<String>,
    log_format: Option<String>,
    log_level: Option<String>,
    create_schema: Option<String>,
    require_database: Option<String>,
    provision_mode: Option<String>,
    wait_for_database: Option<String>,
}

/// Read the configuration from this process's environment.
pub(crate) fn from_env() -> Result<Config, ConfigError> {
    from_vars(std::env::vars_os())
}

/// Read the configuration from `vars`. Variables outside the contract are
/// ignored, even when they are not UTF-8; ours must be.
pub fn from_vars(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Config, ConfigError> {
    let raw = raw_env(vars)?;
    build(raw)
}

fn raw_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<RawEnv, ConfigError> {
    let mut ours = Vec::new();
    for (name, value) in vars {
        let Some(name) = name.to_str().filter(|n| vars::is_known(n)) else {
            continue;
        };
        let value = value.into_string().map_err(|_| ConfigError::NotUtf8 {
            var: name.to_owned(),
        })?;
        if value.len() > MAX_VARIABLE_BYTES {
            return Err(ConfigError::TooLong {
                var: name.to_owned(),
                len: value.len(),
                max: MAX_VARIABLE_BYTES,
            });
        }
        // An empty variable means "not set": compose files and ConfigMaps
        // often carry `NAME=` for optional settings.
        if !value.is_empty() {
            ours.push((name.to_owned(), value));
        }
    }
    envy::from_iter(ours)
        .map_err(|e| ConfigError::invalid("environment", e.to_string(), "Check the variables."))
}

fn build(raw: RawEnv) -> Result<Config, ConfigError> {
    let create_schema = boolean("CREATE_SCHEMA", raw.create_schema.as_deref())?;
    let require_database = boolean("REQUIRE_DATABASE", raw.require_database.as_deref())?;
    if create_schema && require_database {
        return Err(ConfigError::invalid(
            "CREATE_SCHEMA",
            "and REQUIRE_DATABASE are both true",
            "Use CREATE_SCHEMA=true only for a standalone database, REQUIRE_DATABASE=true only for one the application created; not both.",
        ));
    }
    let data_dir = PathBuf::from(raw.data_dir.as_deref().unwrap_or(DEFAULT_DATA_DIR));
    let (database_path, postgres) = match database::locate(
        database::Inputs {
            url: raw.database_url,
            url_file: raw.database_url_file,
            kind: raw.database_type,
            user: raw.database_user,
            password: raw.database_password,
            password_file: raw.database_password_file,
            host: raw.database_host,
            port: raw.database_port,
            name: raw.database_name,
        },
        &data_dir,
    )? {
        database::Located::Sqlite(path) => (path, None),
        database::Located::Postgres(target) => (PathBuf::from(target.redacted()), Some(*target)),
    };
    if postgres.is_some() && create_schema {
        return Err(ConfigError::invalid(
            "CREATE_SCHEMA",
            "is true, but the database is PostgreSQL",
            "CREATE_SCHEMA makes a standalone SQLite database only; on PostgreSQL, let the mAI application \
             create its schema (start it once), then run the job.",
        ));
    }
    let organization_name = organization_name(raw.organization_name)?;
    let host = host(raw.openrouter_host)?;
    let spending_limit = spending_limit(raw.spending_limit.as_deref())?;
    let api_key_set = match (&raw.openrouter_api_key, &raw.openrouter_api_key_file) {
        (Some(_), _) => Some("OPENROUTER_API_KEY"),
        (None, Some(_)) => Some("OPENROUTER_API_KEY_FILE"),
        (None, None) => None,
    };
    let key_store_set = raw.openrouter_key_store.is_some();
    let minting = minting::minting(
        minting::RawMinting {
            management: [
                (
                    raw.openrouter_management_key,
                    raw.openrouter_management_key_file,
                ),
                (
                    raw.openrouter_provisioning_key,
                    raw.openrouter_provisioning_key_file,
                ),
            ],
            api_key_set,
            limit_reset: raw.spending_limit_reset,
            rotate_key: raw.rotate_key,
            rotation_grace: raw.key_rotation_grace,
            timeout: raw.openrouter_timeout,
            key_store: raw.openrouter_key_store,
            ssl_cert_file: raw.ssl_cert_file,
            https_proxy: raw.https_proxy,
            no_proxy: raw.no_proxy,
        },
        &host,
        limit_usd(&spending_limit),
        &data_dir,
    )?;
    if postgres.is_some() && minting.is_some() && !key_store_set {
        // Replicas on PostgreSQL share no volume: each would keep its own
        // key store, find the others' keys unknown, delete them as lost and
        // mint its own, taking the key from under running applications.
        return Err(ConfigError::invalid(
            "OPENROUTER_MANAGEMENT_KEY",
            "is set with a PostgreSQL database, where replicas share no volume: each would keep its own \
             OpenRouter key store in DATA_DIR, and delete the keys the others minted",
            "Set OPENROUTER_KEY_STORE to a file on a volume every replica mounts (ReadWriteMany), or mint the \
             key once elsewhere and give it to every replica in OPENROUTER_API_KEY(_FILE).",
        ));
    }
    let key_source = match minting {
        Some(minting) => KeySource::Minted(Box::new(minting)),
        None => KeySource::Given(api_key(
            raw.openrouter_api_key,
            raw.openrouter_api_key_file,
        )?),
    };
    let config = Config {
        organization_name,
        key_source,
        external_user: raw
            .openrouter_external_user
            .map(external_user)
            .transpose()?,
        host,
        markup_rate: markup_rate(raw.markup_rate.as_deref())?,
        spending_limit,
        model_ids: raw.model_ids.as_deref().map(model_ids).transpose()?,
        webui_secret_key: webui_secret_key(raw.webui_secret_key, raw.webui_secret_key_file)?,
        database_path,
        postgres,
        secret_key_store: secret_key_store(raw.webui_secret_key_store, &data_dir)?,
        data_dir,
        env_file: env_file(raw.env_file)?,
        env_file_mode: file_mode(raw.env_file_mode.as_deref())?,
        lock_timeout: seconds(
            "LOCK_TIMEOUT",
            raw.lock_timeout.as_deref(),
            DEFAULT_LOCK_TIMEOUT_SECS,
        )?,
        create_schema,
        require_database,
        organization_active: raw
            .organization_active
            .as_deref()
            .map(|raw| boolean("ORGANIZATION_ACTIVE", Some(raw)))
            .transpose()?,
        mode: raw.provision_mode.as_deref().map(mode).transpose()?,
        wait_for_database: raw
            .wait_for_database
            .as_deref()
            .map(wait_for_database)
            .transpose()?
            .flatten(),
    };
    crate::logging::Settings::parse(raw.log_format.as_deref(), raw.log_level.as_deref())?;
    check_renderable(&config)?;
    Ok(config)
}

fn organization_name(raw: Option<String>) -> Result<String, ConfigError> {
    let raw = raw.ok_or(ConfigError::Missing {
        var: "ORGANIZATION_NAME",
        fix: "Set it to the client organization's name, e.g. ORGANIZATION_NAME='ABC Company Sp. z o.o.'.",
    })?;
    let name = raw.trim();
    if let Some(c) = name.chars().find(|c| c.is_control() || is_invisible(*c)) {
        return Err(ConfigError::invalid(
            "ORGANIZATION_NAME",
            format!(
                "contains the control or invisible character U+{:04X}",
                u32::from(c)
            ),
            "Use printable characters only; line breaks, tabs and escape sequences are not allowed.",
        ));
    }
    let chars = name.chars().count();
    if !NAME_CHARS.contains(&chars) {
        return Err(ConfigError::invalid(
            "ORGANIZATION_NAME",
            format!(
                "must have {} to {} characters after trimming, but has {chars}",
                NAME_CHARS.start(),
                NAME_CHARS.end()
            ),
            "Use the organization's full name.",
        ));
    }
    Ok(name.to_owned())
}

/// Characters that are not control characters but still hide or reorder
/// text: a name holding one would look right and compare wrong.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

/// A secret given as `VAR` or, for a mounted secret, as `VAR_FILE` naming
/// the file that holds it: never both.
struct SecretInput {
    var: &'static str,
    /// The file it was read from, for `VAR_FILE`.
    file: Option<PathBuf>,
    value: String,
}

impl SecretInput {
    fn read(
        var: &'static str,
        file_var: &'static str,
        direct: Option<String>,
        file: Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        match (direct, file) {
            (Some(_), Some(_)) => Err(ConfigError::BothSet {
                first: var,
                second: file_var,
            }),
            (None, None) => Ok(None),
            (Some(value), None) => Ok(Some(Self {
                var,
                file: None,
                value,
            })),
            (None, Some(path)) => {
                let path = PathBuf::from(path);
                Ok(Some(Self {
                    var: file_var,
                    value: read_secret_file(file_var, &path)?,
                    file: Some(path),
                }))
            }
        }
    }

    /// The value breaks a rule: say so of the variable, or of the value in
    /// the file (never of the file itself, which is fine). Never quote it.
    fn invalid(&self, problem: &str, fix: impl Into<String>) -> ConfigError {
        let problem = match &self.file {
            Some(path) => format!("names {}, whose secret {problem}", path.display()),
            None => problem.to_owned(),
        };
        ConfigError::invalid(self.var, problem, fix)
    }
}

fn api_key(direct: Option<String>, file: Option<String>) -> Result<Secret, ConfigError> {
    const VAR: &str = "OPENROUTER_API_KEY";
    let input = SecretInput::read(VAR, "OPENROUTER_API_KEY_FILE", direct, file)?.ok_or(
        ConfigError::Missing {
            var: VAR,
            fix: "Set OPENROUTER_API_KEY, or OPENROUTER_API_KEY_FILE to a file that holds the key (a mounted secret); \
                  or set OPENROUTER_MANAGEMENT_KEY to let the job mint the key.",
        },
    )?;
    checked_key(
        &input,
        "Copy the key from https://openrouter.ai/settings/keys; it looks like sk-or-v1-<64 hex digits>.",
    )
}

/// An OpenRouter key (the client's or a management key) meets the old
/// generator's rules and holds nothing that could break a line.
fn checked_key(input: &SecretInput, fix: &str) -> Result<Secret, ConfigError> {
    let key = &input.value;
    // Never quote the value in these messages: it is a secret, typo or not.
    if !key.starts_with("sk-or-") {
        return Err(input.invalid("does not start with `sk-or-`", fix));
    }
    if key.chars().count() < MIN_API_KEY_CHARS {
        return Err(input.invalid(
            &format!("is shorter than {MIN_API_KEY_CHARS} characters"),
            fix,
        ));
    }
    if !key.chars().all(is_token_char) {
        return Err(input.invalid(
            "contains a character other than A-Z, a-z, 0-9, `-` and `_` (a space or line break from copying?)",
            fix,
        ));
    }
    Ok(Secret::new(input.value.clone()))
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Read a mounted secret. The size limit also keeps `/dev/zero` and other
/// endless files from hanging the job.
fn read_secret_file(var: &'static str, path: &Path) -> Result<String, ConfigError> {
    let fail =
        |problem: &str, fix: &'static str, source: Option<io::Error>| ConfigError::SecretFile {
            var,
            path: path.to_owned(),
            problem: problem.to_owned(),
            fix,
            source,
        };
    // Look before opening: opening a pipe without a writer blocks forever,
    // and a device never ends.
    let metadata = std::fs::metadata(path).map_err(|e| {
        let problem = format!("cannot open the file ({})", io_reason(&e));
        fail(&problem, open_fix(&e), Some(e))
    })?;
    if metadata.is_dir() {
        return Err(fail(
            "is a directory, not a file",
            "Point it at the file inside the mounted secret, not at the folder.",
            None,
        ));
    }
    if !metadata.is_file() {
        return Err(fail(
            "is not a regular file (a pipe or a device)",
            "Point it at the mounted secret file.",
            None,
        ));
    }
    let file = File::open(path).map_err(|e| {
        let uid = crate::process::effective_uid();
        let problem = match e.kind() {
            io::ErrorKind::PermissionDenied => format!(
                "cannot be read by this job, which runs as uid {uid} ({})",
                io_reason(&e)
            ),
            _ => format!("cannot open the file ({})", io_reason(&e)),
        };
        fail(&problem, open_fix(&e), Some(e))
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            fail(
                "cannot read the file",
                "Check the mount and its permissions.",
                Some(e),
            )
        })?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(fail(
            &format!("is larger than {MAX_SECRET_FILE_BYTES} bytes"),
            "Point it at a file that holds only the secret.",
            None,
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| fail("is not UTF-8 text", "Store the secret as text.", None))?;
    let value = strip_one_newline(&text);
    if value.is_empty() {
        return Err(fail("is empty", "Put the secret in the file.", None));
    }
    Ok(value.to_owned())
}

fn open_fix(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::PermissionDenied => {
            "Make the file readable by the job's uid: chown it to that uid (mode 0400), or give it a group the \
             job is in with mode 0440 (Kubernetes: the Secret's defaultMode and the pod's fsGroup)."
        }
        _ => "Point it at the mounted secret file.",
    }
}

/// `echo key > file` and `kubectl create secret --from-file` leave one
/// trailing newline; anything more is part of the value and fails validation.
fn strip_one_newline(text: &str) -> &str {
    text.strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text)
}

pub(crate) fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "it does not exist".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

fn external_user(value: String) -> Result<String, ConfigError> {
    let chars = value.chars().count();
    if !EXTERNAL_USER_CHARS.contains(&chars) || !value.chars().all(is_token_char) {
        return Err(ConfigError::invalid(
            "OPENROUTER_EXTERNAL_USER",
            format!(
                "must be {} to {} characters from A-Z, a-z, 0-9, `-` and `_`",
                EXTERNAL_USER_CHARS.start(),
                EXTERNAL_USER_CHARS.end()
            ),
            "Use the id the deployment already has, e.g. mai_client_63a4eb6d, or unset it to derive one from ORGANIZATION_NAME.",
        ));
    }
    Ok(value)
}

fn host(raw: Option<String>) -> Result<String, ConfigError> {
    let Some(host) = raw else {
        return Ok(DEFAULT_HOST.to_owned());
    };
    let fix = format!("Use an http(s) URL such as {DEFAULT_HOST}.");
    let scheme_ok = host.split_once("://").filter(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")
    });
    let Some((_, rest)) = scheme_ok else {
        return Err(ConfigError::invalid(
            "OPENROUTER_HOST",
            "must start with https:// or http://",
            fix,
        ));
    };
    if url_host(rest).is_empty() {
        return Err(ConfigError::invalid(
            "OPENROUTER_HOST",
            "has no host name",
            fix,
        ));
    }
    if let Some(c) = host.chars().find(|c| !is_url_char(*c)) {
        return Err(ConfigError::invalid(
            "OPENROUTER_HOST",
            format!(
                "contains U+{:04X}, which a URL cannot hold unescaped",
                u32::from(c)
            ),
            fix,
        ));
    }
    Ok(host)
}

/// RFC 3986's unreserved, reserved and percent characters.
fn is_url_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c)
}

fn markup_rate(raw: Option<&str>) -> Result<MarkupRate, ConfigError> {
    let Some(raw) = raw else {
        return Ok(MarkupRate {
            value: DEFAULT_MARKUP_RATE,
            explicit: false,
        });
    };
    let value = positive_decimal("MARKUP_RATE", raw, "e.g. MARKUP_RATE=1.3 for a 30% markup")?;
    if value > MAX_MARKUP_RATE {
        return Err(ConfigError::invalid(
            "MARKUP_RATE",
            format!("must be at most {MAX_MARKUP_RATE}"),
            "It multiplies the raw cost: 1.3 means a 30% markup.",
        ));
    }
    if value < MIN_MARKUP_RATE {
        return Err(ConfigError::invalid(
            "MARKUP_RATE",
            format!("must be at least {MIN_MARKUP_RATE}"),
            "It multiplies the raw cost: 1.3 means a 30% markup, 1 bills at cost.",
        ));
    }
    Ok(MarkupRate {
        value,
        explicit: true,
    })
}

/// A finite number greater than zero, written with a decimal point.
fn positive_decimal(var: &'static str, raw: &str, example: &str) -> Result<f64, ConfigError> {
    let text = raw.trim();
    if text.contains(',') {
        return Err(ConfigError::invalid(
            var,
            "uses a comma",
            format!("Write the decimal with a dot, {example}."),
        ));
    }
    let value: f64 = text.parse().map_err(|_| {
        ConfigError::invalid(
            var,
            "is not a number",
            format!("Use a decimal number, {example}."),
        )
    })?;
    if !value.is_finite() {
        return Err(ConfigError::invalid(
            var,
            "must be a finite number",
            format!("Use a decimal number, {example}."),
        ));
    }
    if value <= 0.0 {
        return Err(ConfigError::invalid(
            var,
            "must be greater than 0",
            format!("Use a positive number, {example}."),
        ));
    }
    Ok(value)
}

/// The spending limit in USD, as a key's `limit`; `None` for unlimited.
fn limit_usd(spending_limit: &str) -> Option<f64> {
    spending_limit
        .parse::<f64>()
        .ok()
        .filter(|limit| limit.is_finite() && *limit > 0.0)
}

fn spending_limit(raw: Option<&str>) -> Result<String, ConfigError> {
    match raw.map(str::trim) {
        None => Ok(UNLIMITED.to_owned()),
        Some(text) if text.eq_ignore_ascii_case(UNLIMITED) => Ok(UNLIMITED.to_owned()),
        Some(text) => {
            let value = positive_decimal(
                "SPENDING_LIMIT",
                text,
                "e.g. SPENDING_LIMIT=1000, or `unlimited`",
            )?;
            Ok(python_float_repr(value))
        }
    }
}

/// Python's `str(float)`, which is how the application and the old generator
/// wrote the limit: shortest round-trip digits, `1000.0`, `1e+16`, `1.5e-05`.
pub(crate) fn python_float_repr(value: f64) -> String {
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = mantissa
        .strip_prefix('-')
        .map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..16).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!(
            "{sign}{first}{fraction}e{exp_sign}{:02}",
            exponent.unsigned_abs()
        );
    }
    if exponent < 0 {
        let zeros = "0".repeat(exponent.unsigned_abs() as usize - 1);
        return format!("{sign}0.{zeros}{digits}");
    }
    let point = exponent as usize + 1;
    if digits.len() <= point {
        let zeros = "0".repeat(point - digits.len());
        format!("{sign}{digits}{zeros}.0")
    } else {
        let (whole, fraction) = digits.split_at(point);
        format!("{sign}{whole}.{fraction}")
    }
}

fn model_ids(raw: &str) -> Result<Vec<String>, ConfigError> {
    let mut ids: Vec<String> = Vec::new();
    for id in raw.split(',').map(str::trim).filter(|id| !id.is_empty()) {
        let valid = id.chars().count() <= MAX_MODEL_ID_CHARS
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._:/@+-".contains(c));
        if !valid {
            return Err(ConfigError::invalid(
                "MODEL_IDS",
                format!("holds an invalid model id `{}`", id.escape_debug()),
                "List OpenRouter model ids separated by commas, e.g. MODEL_IDS=openai/gpt-4o,anthropic/claude-3.5-sonnet.",
            ));
        }
        if !ids.iter().any(|known| known == id) {
            ids.push(id.to_owned());
        }
    }
    if ids.is_empty() {
        return Err(ConfigError::invalid(
            "MODEL_IDS",
            "lists no model",
            "List model ids separated by commas, or unset MODEL_IDS to allow every model.",
        ));
    }
    Ok(ids)
}

fn webui_secret_key(
    direct: Option<String>,
    file: Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    let Some(input) = SecretInput::read("WEBUI_SECRET_KEY", "WEBUI_SECRET_KEY_FILE", direct, file)?
    else {
        return Ok(None);
    };
    let key = &input.value;
    if key.chars().any(char::is_control) {
        return Err(input.invalid(
            "contains a control character",
            "Use printable characters only.",
        ));
    }
    if key.chars().count() > MAX_SECRET_KEY_CHARS {
        return Err(input.invalid(
            &format!("is longer than {MAX_SECRET_KEY_CHARS} characters"),
            "Use a shorter key.",
        ));
    }
    Ok(Some(Secret::new(input.value)))
}

/// SQLAlchemy's form: `sqlite:///relative.db` or `sqlite:////absolute.db`.
pub(crate) fn database_path(url: Option<&str>, data_dir: &Path) -> Result<PathBuf, ConfigError> {
    let Some(url) = url else {
        return Ok(data_dir.join(DATABASE_FILE_NAME));
    };
    let fix = "Use a SQLite file, DATABASE_URL=sqlite:////app/backend/data/webui.db, a PostgreSQL database, DATABASE_URL=postgresql://user:password@host:5432/database, or unset DATABASE_URL to use $DATA_DIR/webui.db.";
    let Some(path) = url.strip_prefix("sqlite:///") else {
        let scheme = url.split("://").next().unwrap_or(url);
        let problem = if url.contains("://") && scheme != "sqlite" {
            format!("uses the unsupported scheme `{}`", scheme.escape_debug())
        } else {
            "is not a SQLite file URL".to_owned()
        };
        return Err(ConfigError::invalid("DATABASE_URL", problem, fix));
    };
    if path.is_empty() || path.contains('?') {
        return Err(ConfigError::invalid(
            "DATABASE_URL",
            "must name a database file, without query parameters",
            fix,
        ));
    }
    // SQLite opens this name as a fresh in-memory database: a run would
    // report success and leave nothing behind.
    if path == ":memory:" {
        return Err(ConfigError::invalid(
            "DATABASE_URL",
            "names SQLite's in-memory database, which keeps nothing",
            fix,
        ));
    }
    Ok(PathBuf::from(path))
}

fn env_file(raw: Option<String>) -> Result<PathBuf, ConfigError> {
    let path = raw.unwrap_or_else(|| DEFAULT_ENV_FILE.to_owned());
    file_path(
        "ENV_FILE",
        path,
        "Set it to the file the application loads, e.g. ENV_FILE=/shared/.env.",
    )
}

fn secret_key_store(raw: Option<String>, data_dir: &Path) -> Result<PathBuf, ConfigError> {
    match raw {
        None => Ok(data_dir.join(SECRET_KEY_STORE_NAME)),
        Some(path) => file_path(
            "WEBUI_SECRET_KEY_STORE",
            path,
            "Set it to a file on a volume that outlives the container, e.g. WEBUI_SECRET_KEY_STORE=/run/mai/.webui_secret_key.",
        ),
    }
}

/// A path that must name a file: a trailing `/` can only mean a folder.
fn file_path(var: &'static str, path: String, fix: &'static str) -> Result<PathBuf, ConfigError> {
    if path.ends_with('/') {
        return Err(ConfigError::invalid(var, "names a directory", fix));
    }
    Ok(PathBuf::from(path))
}

fn file_mode(raw: Option<&str>) -> Result<u32, ConfigError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_ENV_FILE_MODE);
    };
    let digits = raw.trim().trim_start_matches("0o");
    let mode = u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o777);
    match mode {
        Some(mode) if mode & 0o007 != 0 => Err(ConfigError::invalid(
            "ENV_FILE_MODE",
            format!("{mode:04o} gives other users access to a file that holds the API key"),
            "Use 0600, or 0640 when the application reads the .env through its group.",
        )),
        Some(mode) if mode & 0o600 == 0o600 => Ok(mode),
        _ => Err(ConfigError::invalid(
            "ENV_FILE_MODE",
            "must be an octal file mode that lets the owner read and write, such as 0600 or 0640",
            "The .env holds the API key: keep it 0600 unless the application runs as another user of the same group (0640).",
        )),
    }
}

fn seconds(var: &'static str, raw: Option<&str>, default: f64) -> Result<Duration, ConfigError> {
    let value = match raw {
        None => default,
        Some(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && (0.0..=MAX_WAIT_SECS).contains(s))
            .ok_or_else(|| {
                ConfigError::invalid(
                    var,
                    format!("must be a number of seconds from 0 to {MAX_WAIT_SECS}"),
                    format!("e.g. {var}=60"),
                )
            })?,
    };
    Ok(Duration::from_secs_f64(value))
}

/// Whether a value switches a setting off: `false`, `0`, `no` or `off`,
/// in any case, spaces around ignored. One list for every variable that
/// takes it.
fn is_off(raw: &str) -> bool {
    matches!(
        raw.trim().to_ascii_lowercase().as_str(),
        "false" | "0" | "no" | "off"
    )
}

fn wait_for_database(raw: &str) -> Result<Option<Duration>, ConfigError> {
    if is_off(raw) {
        return Ok(None);
    }
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Ok(Some(DEFAULT_WAIT_FOR_DATABASE)),
        _ => seconds("WAIT_FOR_DATABASE", Some(raw), 0.0).map(Some),
    }
}

fn boolean(var: &'static str, raw: Option<&str>) -> Result<bool, ConfigError> {
    let Some(raw) = raw else {
        return Ok(false);
    };
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        _ if is_off(raw) => Ok(false),
        _ => Err(ConfigError::invalid(
            var,
            "must be true or false",
            format!("e.g. {var}=true"),
        )),
    }
}

fn mode(raw: &str) -> Result<Mode, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "env" => Ok(Mode::Env),
        "database" => Ok(Mode::Database),
        "production" => Ok(Mode::Production),
        _ => Err(ConfigError::invalid(
            "PROVISION_MODE",
            "must be env, database or production",
            "env writes the .env only; database adds the organization row; production also verifies both.",
        )),
    }
}

/// Every value that reaches the `.env` must read back the same in
/// python-dotenv, Docker Compose and `sh`; find out now, before writing.
fn check_renderable(config: &Config) -> Result<(), ConfigError> {
    let mut values: Vec<(&'static str, &str)> = vec![
        ("ORGANIZATION_NAME", &config.organization_name),
        ("OPENROUTER_HOST", &config.host),
    ];
    if let Some(key) = &config.webui_secret_key {
        values.push(("WEBUI_SECRET_KEY", key.expose()));
    }
    for (var, value) in values {
        envfile::render_value(value).map_err(|problem| {
            ConfigError::invalid(
                var,
                problem.to_string(),
                "Change the value, or set it in the .env by hand.",
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
