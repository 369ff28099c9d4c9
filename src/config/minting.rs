//! The settings for minting the client's OpenRouter key with a management
//! key: which key, and everything the mint and its reconciliation need.
//! Without a management key the given OPENROUTER_API_KEY is used as before,
//! and the settings that only a minted key can honour are refused rather
//! than silently ignored.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ConfigError, SecretInput, file_path, is_off};
use crate::openrouter::{LimitReset, is_loopback_host, url_host};
use crate::secret::Secret;

/// The key store's name in DATA_DIR.
pub(crate) const KEY_STORE_NAME: &str = ".openrouter_key";
pub(crate) const DEFAULT_OPENROUTER_TIMEOUT_SECS: f64 = 30.0;
pub(crate) const MAX_OPENROUTER_TIMEOUT_SECS: f64 = 600.0;
pub(crate) const DEFAULT_KEY_ROTATION_GRACE_SECS: f64 = 3600.0;
/// Thirty days: a rolling update that takes longer is not one.
pub(crate) const MAX_KEY_ROTATION_GRACE_SECS: f64 = 2_592_000.0;
const MAX_ROTATE_TOKEN_CHARS: usize = 128;

/// The variables of a management key, primary names first: the alias keeps
/// the old generator's word ("provisioning key").
const MANAGEMENT_VARS: [(&str, &str); 2] = [
    (
        "OPENROUTER_MANAGEMENT_KEY",
        "OPENROUTER_MANAGEMENT_KEY_FILE",
    ),
    (
        "OPENROUTER_PROVISIONING_KEY",
        "OPENROUTER_PROVISIONING_KEY_FILE",
    ),
];

/// Where the client's OpenRouter key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// OPENROUTER_API_KEY or its file: written as given.
    Given(Secret),
    /// A management key: the job mints the key and keeps it.
    Minted(Box<Minting>),
}

impl KeySource {
    pub fn minting(&self) -> Option<&Minting> {
        match self {
            Self::Minted(minting) => Some(minting),
            Self::Given(_) => None,
        }
    }

    /// The configured key, for a deployment that is given one.
    pub fn given(&self) -> Option<&Secret> {
        match self {
            Self::Given(key) => Some(key),
            Self::Minted(_) => None,
        }
    }
}

/// Everything minting and keeping the key needs.
#[derive(Debug, Clone)]
pub struct Minting {
    pub management_key: Secret,
    /// The variable the management key came from, for messages.
    pub key_var: &'static str,
    /// SPENDING_LIMIT in USD; `None` for unlimited.
    pub limit: Option<f64>,
    /// SPENDING_LIMIT_RESET; `None` for no reset.
    pub limit_reset: Option<LimitReset>,
    /// ROTATE_KEY: a rotation runs once for each distinct token.
    pub rotate_token: Option<String>,
    /// KEY_ROTATION_GRACE: how long a replaced key stays live at least.
    pub rotation_grace: Duration,
    /// OPENROUTER_TIMEOUT: one deadline for every call of a run.
    pub timeout: Duration,
    /// OPENROUTER_KEY_STORE.
    pub key_store: PathBuf,
    pub ssl_cert_file: Option<PathBuf>,
    /// HTTPS_PROXY, which may hold the proxy's password.
    pub https_proxy: Option<Secret>,
    pub no_proxy: Option<String>,
}

impl Minting {
    /// For the debug log: every setting, the secrets as fingerprints.
    pub fn describe(&self) -> String {
        format!(
            "minted with {} {}, limit reset {}, ROTATE_KEY {}, KEY_ROTATION_GRACE {:?}, OPENROUTER_TIMEOUT {:?}, \
             key store {:?}, SSL_CERT_FILE {:?}, HTTPS_PROXY {}, NO_PROXY {:?}",
            self.key_var,
            self.management_key.fingerprint(),
            self.limit_reset.map_or("none", LimitReset::as_str),
            self.rotate_token.as_deref().unwrap_or("unset"),
            self.rotation_grace,
            self.timeout,
            self.key_store,
            self.ssl_cert_file,
            self.https_proxy
                .as_ref()
                .map_or_else(|| "unset".to_owned(), Secret::fingerprint),
            self.no_proxy,
        )
    }
}

/// The raw variables this module reads.
pub(super) struct RawMinting {
    pub management: [(Option<String>, Option<String>); 2],
    pub api_key_set: Option<&'static str>,
    pub limit_reset: Option<String>,
    pub rotate_key: Option<String>,
    pub rotation_grace: Option<String>,
    pub timeout: Option<String>,
    pub key_store: Option<String>,
    pub ssl_cert_file: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

/// The management key and its settings, or `None` when none is set (and
/// then none of the settings only a minted key honours may be set).
pub(super) fn minting(
    raw: RawMinting,
    host: &str,
    limit: Option<f64>,
    data_dir: &Path,
) -> Result<Option<Minting>, ConfigError> {
    let Some((key_var, management_key)) = management_key(raw.management)? else {
        refuse_minting_only("SPENDING_LIMIT_RESET", raw.limit_reset.as_deref())?;
        refuse_minting_only("ROTATE_KEY", raw.rotate_key.as_deref())?;
        return Ok(None);
    };
    if let Some(given) = raw.api_key_set {
        return Err(ConfigError::invalid(
            given,
            format!("is set together with {key_var}"),
            format!(
                "Remove {given}: with {key_var} the job mints the organization's key itself and keeps it. \
                 (To keep using the key you were given instead, remove {key_var}.)"
            ),
        ));
    }
    check_host_for_management_key(host, key_var)?;
    Ok(Some(Minting {
        management_key,
        key_var,
        limit,
        limit_reset: raw.limit_reset.as_deref().map(limit_reset).transpose()?,
        rotate_token: raw
            .rotate_key
            .as_deref()
            .map(rotate_token)
            .transpose()?
            .flatten(),
        rotation_grace: seconds_within(
            "KEY_ROTATION_GRACE",
            raw.rotation_grace.as_deref(),
            DEFAULT_KEY_ROTATION_GRACE_SECS,
            0.0,
            MAX_KEY_ROTATION_GRACE_SECS,
        )?,
        timeout: seconds_within(
            "OPENROUTER_TIMEOUT",
            raw.timeout.as_deref(),
            DEFAULT_OPENROUTER_TIMEOUT_SECS,
            f64::MIN_POSITIVE,
            MAX_OPENROUTER_TIMEOUT_SECS,
        )?,
        key_store: match raw.key_store {
            None => data_dir.join(KEY_STORE_NAME),
            Some(path) => file_path(
                "OPENROUTER_KEY_STORE",
                path,
                "Set it to a file on the data volume, e.g. OPENROUTER_KEY_STORE=/app/backend/data/.openrouter_key.",
            )?,
        },
        ssl_cert_file: raw.ssl_cert_file.map(PathBuf::from),
        https_proxy: raw.https_proxy.map(Secret::new),
        no_proxy: raw.no_proxy,
    }))
}

/// At most one of the four variables; its value meets the key's rules.
fn management_key(
    raw: [(Option<String>, Option<String>); 2],
) -> Result<Option<(&'static str, Secret)>, ConfigError> {
    let mut found: Vec<SecretInput> = Vec::new();
    let mut set: Vec<&'static str> = Vec::new();
    for ((var, file_var), (direct, file)) in MANAGEMENT_VARS.into_iter().zip(raw) {
        if direct.is_some() {
            set.push(var);
        }
        if file.is_some() {
            set.push(file_var);
        }
        if let [first, second, ..] = set[..] {
            return Err(ConfigError::BothSet { first, second });
        }
        found.extend(SecretInput::read(var, file_var, direct, file)?);
    }
    let Some(input) = found.pop() else {
        return Ok(None);
    };
    let key = super::checked_key(
        &input,
        "Copy the management key from https://openrouter.ai/settings/management-keys; it looks like sk-or-v1-<64 hex digits>.",
    )?;
    Ok(Some((input.var, key)))
}

/// A setting only a minted key honours, set without a management key, is
/// an operator's mistake: the key would not reset, or not rotate.
fn refuse_minting_only(var: &'static str, value: Option<&str>) -> Result<(), ConfigError> {
    let Some(value) = value else {
        return Ok(());
    };
    if var == "ROTATE_KEY" && rotate_token(value)?.is_none() {
        return Ok(());
    }
    Err(ConfigError::invalid(
        var,
        "is set, but only a key the job mints can honour it, and no management key is set",
        format!(
            "Set OPENROUTER_MANAGEMENT_KEY (or OPENROUTER_MANAGEMENT_KEY_FILE) to let the job mint and manage the \
             key, or unset {var}."
        ),
    ))
}

/// The management key goes over HTTPS only; plain http only to a loopback
/// address, where the tests' stand-in listens.
fn check_host_for_management_key(host: &str, key_var: &str) -> Result<(), ConfigError> {
    let Some((scheme, rest)) = host.split_once("://") else {
        return Ok(());
    };
    let name = url_host(rest);
    if scheme.eq_ignore_ascii_case("https") || is_loopback_host(name) {
        return Ok(());
    }
    Err(ConfigError::invalid(
        "OPENROUTER_HOST",
        format!(
            "is plain http:// to {}, but {key_var} is only ever sent over HTTPS (plain http only to a loopback \
             address: 127.0.0.0/8, ::1, localhost)",
            name.escape_debug()
        ),
        "Use https://, e.g. OPENROUTER_HOST=https://openrouter.ai/api/v1.",
    ))
}

fn limit_reset(raw: &str) -> Result<LimitReset, ConfigError> {
    LimitReset::parse(raw).ok_or_else(|| {
        ConfigError::invalid(
            "SPENDING_LIMIT_RESET",
            "must be daily, weekly or monthly",
            "OpenRouter resets the limit at midnight UTC, weeks from Monday; unset it for a limit that never resets.",
        )
    })
}

/// A ROTATE_KEY token, or `None` for a value that means "no rotation":
/// `false`, `0`, `no`, `off` (a ConfigMap's way of switching it off must
/// not rotate the key once more).
fn rotate_token(raw: &str) -> Result<Option<String>, ConfigError> {
    if is_off(raw) {
        return Ok(None);
    }
    let token = raw.trim();
    let fits = token.chars().count() <= MAX_ROTATE_TOKEN_CHARS
        && !token.chars().any(|c| c.is_control() || c.is_whitespace());
    if !fits {
        return Err(ConfigError::invalid(
            "ROTATE_KEY",
            format!(
                "must be a token of at most {MAX_ROTATE_TOKEN_CHARS} characters without spaces or control characters"
            ),
            "Use a new token for each rotation, such as today's date (ROTATE_KEY=2026-11-30); the key is rotated \
             once per token.",
        ));
    }
    Ok(Some(token.to_owned()))
}

fn seconds_within(
    var: &'static str,
    raw: Option<&str>,
    default: f64,
    min: f64,
    max: f64,
) -> Result<Duration, ConfigError> {
    let Some(text) = raw else {
        return Ok(Duration::from_secs_f64(default));
    };
    let lowest = if min > 0.0 {
        "more than 0".to_owned()
    } else {
        "0".to_owned()
    };
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= min && *s <= max)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            ConfigError::invalid(
                var,
                format!("must be a number of seconds from {lowest} to {max}"),
                format!("e.g. {var}={default}"),
            )
        })
}
