//! Where the database is, found the way the application finds it
//! (docs/mai-contract.md, "Where the database is"): `DATABASE_URL`, unless
//! all of `DATABASE_TYPE`, a credential (`DATABASE_USER` and/or
//! `DATABASE_PASSWORD`), `DATABASE_HOST`, `DATABASE_PORT` and
//! `DATABASE_NAME` are set, in which case upstream Open WebUI builds
//! `{type}://{user}:{password}@{host}:{port}/{name}` from them and that URL
//! wins; then `postgres://` becomes `postgresql://`. The parts go into the
//! URL as they are (the application does not encode them either), and the
//! URL is read the way SQLAlchemy reads it: user and password
//! percent-decoded, the query holding libpq's parameters.
//!
//! A URL can hold a password: it is never shown. Messages name the
//! variable and the problem; the plan and the report show `redacted()`.

use std::path::{Path, PathBuf};

use super::{ConfigError, SecretInput};
use crate::secret::Secret;

/// libpq's default port.
const DEFAULT_PORT: u16 = 5432;
/// libpq's default socket folder on Debian, where the application's image
/// (and so its psycopg2) comes from: used for a URL without a host.
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// The variables that locate the database, as read. No `Debug`: it holds
/// the password in the clear.
#[derive(Default)]
pub(super) struct Inputs {
    pub url: Option<String>,
    pub url_file: Option<String>,
    pub kind: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub name: Option<String>,
}

/// libpq's `sslmode`, without `allow` (plain first, then TLS), which no
/// deployment should want and which the job does not offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::Disable,
            Self::Prefer,
            Self::Require,
            Self::VerifyCa,
            Self::VerifyFull,
        ]
        .into_iter()
        .find(|mode| mode.as_str() == text)
    }
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgHost {
    /// A host name or an IP address (IPv6 without brackets).
    Tcp(String),
    /// The folder of a Unix socket (a host that starts with `/`, as libpq).
    Socket(PathBuf),
}

/// A PostgreSQL database, as libpq would connect to it.
#[derive(Debug, Clone)]
pub struct PgTarget {
    pub host: PgHost,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    pub dbname: String,
    pub ssl_mode: SslMode,
    /// `sslrootcert`: a PEM file of trusted roots; `None` (or `system`)
    /// means the built-in web PKI roots for verify-ca and verify-full.
    pub ssl_root_cert: Option<PathBuf>,
}

impl PgTarget {
    /// The URL without its password, for messages, the plan and the report.
    pub fn redacted(&self) -> String {
        let password = if self.password.is_some() { ":***" } else { "" };
        let (host, socket) = match &self.host {
            PgHost::Tcp(host) if host.contains(':') => (format!("[{host}]:{}", self.port), None),
            PgHost::Tcp(host) => (format!("{host}:{}", self.port), None),
            PgHost::Socket(dir) => (String::new(), Some(dir.display().to_string())),
        };
        let mut query = vec![format!("sslmode={}", self.ssl_mode.as_str())];
        if let Some(dir) = socket {
            query.push(format!("host={dir}"));
        }
        if let Some(root) = &self.ssl_root_cert {
            query.push(format!("sslrootcert={}", root.display()));
        }
        format!(
            "postgresql://{}{password}@{host}/{}?{}",
            self.user,
            self.dbname,
            query.join("&")
        )
    }
}

/// The database the job works on.
#[derive(Debug, Clone)]
pub(super) enum Located {
    Sqlite(PathBuf),
    Postgres(Box<PgTarget>),
}

pub(super) fn locate(inputs: Inputs, data_dir: &Path) -> Result<Located, ConfigError> {
    let url = match built_from_parts(&inputs)? {
        Some(url) => Some(url),
        None => SecretInput::read(
            "DATABASE_URL",
            "DATABASE_URL_FILE",
            inputs.url,
            inputs.url_file,
        )?
        .map(|input| (input.var, input.value)),
    };
    let Some((var, url)) = url else {
        return Ok(Located::Sqlite(super::database_path(None, data_dir)?));
    };
    // Upstream replaces every `postgres://` in the URL (env.py).
    let url = url.replace("postgres://", "postgresql://");
    match scheme_of(&url) {
        Some(scheme) if is_postgres_scheme(scheme) => {
            Ok(Located::Postgres(Box::new(parse_postgres(var, &url)?)))
        }
        _ if var == "DATABASE_URL" => {
            Ok(Located::Sqlite(super::database_path(Some(&url), data_dir)?))
        }
        // Never quote a URL read from a secret file or built with a
        // password: say only what is wrong with it.
        _ => Err(ConfigError::invalid(
            var,
            "names neither a PostgreSQL nor a SQLite database",
            "Use postgresql://user:password@host:5432/database, or sqlite:////app/backend/data/webui.db.",
        )),
    }
}

fn scheme_of(url: &str) -> Option<&str> {
    url.split_once("://").map(|(scheme, _)| scheme)
}

/// `postgresql`, or SQLAlchemy's `postgresql+<driver>` (psycopg2, psycopg,
/// asyncpg, pg8000): the server is the same whichever driver is named.
fn is_postgres_scheme(scheme: &str) -> bool {
    let scheme = scheme.to_ascii_lowercase();
    scheme == "postgresql" || scheme.starts_with("postgresql+")
}

/// Upstream's rule: the parts win over DATABASE_URL when all are set. A
/// partial set is refused: the application would ignore it and quietly
/// use another database than the operator meant.
fn built_from_parts(inputs: &Inputs) -> Result<Option<(&'static str, String)>, ConfigError> {
    let password = SecretInput::read(
        "DATABASE_PASSWORD",
        "DATABASE_PASSWORD_FILE",
        inputs.password.clone(),
        inputs.password_file.clone(),
    )?
    .map(|input| input.value);
    let parts: [(&'static str, Option<&str>); 5] = [
        ("DATABASE_TYPE", inputs.kind.as_deref()),
        (
            "DATABASE_USER or DATABASE_PASSWORD",
            inputs.user.as_deref().or(password.as_deref()),
        ),
        ("DATABASE_HOST", inputs.host.as_deref()),
        ("DATABASE_PORT", inputs.port.as_deref()),
        ("DATABASE_NAME", inputs.name.as_deref()),
    ];
    let missing: Vec<&str> = parts
        .iter()
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| *name)
        .collect();
    if missing.len() == parts.len() {
        return Ok(None);
    }
    if !missing.is_empty() {
        return Err(ConfigError::invalid(
            "DATABASE_TYPE",
            format!(
                "and the other DATABASE_* parts are only partly set: {} missing",
                missing.join(", ")
            ),
            "The application builds its URL from these parts only when all are set, and otherwise ignores \
             them: set every part (DATABASE_TYPE, DATABASE_USER, DATABASE_PASSWORD, DATABASE_HOST, \
             DATABASE_PORT, DATABASE_NAME), or none and DATABASE_URL instead.",
        ));
    }
    let mut credential = inputs.user.clone().unwrap_or_default();
    if let Some(password) = password {
        credential.push(':');
        credential.push_str(&password);
    }
    let url = format!(
        "{}://{credential}@{}:{}/{}",
        inputs.kind.as_deref().unwrap_or_default(),
        inputs.host.as_deref().unwrap_or_default(),
        inputs.port.as_deref().unwrap_or_default(),
        inputs.name.as_deref().unwrap_or_default(),
    );
    Ok(Some(("DATABASE_TYPE", url)))
}

/// `postgresql://[user[:password]@][host][:port][/dbname][?k=v&…]`, read
/// as SQLAlchemy and libpq read it.
fn parse_postgres(var: &'static str, url: &str) -> Result<PgTarget, ConfigError> {
    let fix = "Use postgresql://user:password@host:5432/database?sslmode=verify-full, with `@`, `:`, `/`, `?`, \
               `#` and `%` in the user or password percent-encoded (`%40` for `@`).";
    let invalid = |problem: String| ConfigError::invalid(var, problem, fix);
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
    if rest.contains('#') {
        return Err(invalid("holds a `#`, which ends a URL".to_owned()));
    }
    let (credential, after) = split_credential(rest);
    let (before_query, query) = after.split_once('?').unwrap_or((after, ""));
    let (host_port, dbname) = before_query.split_once('/').unwrap_or((before_query, ""));
    let (user, password) = match credential.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (credential, None),
    };
    let user = decode(user)
        .ok_or_else(|| invalid("has a user name that is not percent-encoded UTF-8".to_owned()))?;
    let password = password
        .map(|p| {
            decode(p).ok_or_else(|| {
                invalid("has a password that is not percent-encoded UTF-8".to_owned())
            })
        })
        .transpose()?;
    let (mut host, mut port) = split_host_port(host_port).map_err(invalid)?;
    let mut ssl_mode = SslMode::Prefer;
    let mut ssl_root_cert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value).ok_or_else(|| {
            invalid(format!(
                "has a value of `{}` that is not percent-encoded UTF-8",
                key.escape_debug()
            ))
        })?;
        match key {
            "sslmode" => {
                ssl_mode = SslMode::parse(&value).ok_or_else(|| {
                    invalid(format!(
                        "has sslmode `{}`; the job supports disable, prefer, require, verify-ca and verify-full",
                        value.escape_debug()
                    ))
                })?;
            }
            "sslrootcert" if value.is_empty() || value == "system" => ssl_root_cert = None,
            "sslrootcert" => ssl_root_cert = Some(PathBuf::from(value)),
            "host" => host = value,
            "port" => port = Some(value),
            // Accepted and ignored: every wait is bounded by LOCK_TIMEOUT,
            // and the job names itself.
            "connect_timeout" | "application_name" => {}
            other => {
                return Err(invalid(format!(
                    "has the parameter `{}`, which the job does not support (it knows sslmode, sslrootcert, host, \
                     port, connect_timeout and application_name)",
                    other.escape_debug()
                )));
            }
        }
    }
    let port = match port.filter(|p| !p.is_empty()) {
        None => DEFAULT_PORT,
        Some(text) => text.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            invalid(format!(
                "has the port `{}`, not a number from 1 to 65535",
                text.escape_debug()
            ))
        })?,
    };
    if user.is_empty() {
        return Err(invalid("names no user".to_owned()));
    }
    let host = if host.is_empty() {
        PgHost::Socket(PathBuf::from(DEFAULT_SOCKET_DIR))
    } else if host.starts_with('/') {
        PgHost::Socket(PathBuf::from(host))
    } else {
        PgHost::Tcp(host)
    };
    Ok(PgTarget {
        host,
        port,
        // libpq's default database is the user's name.
        dbname: if dbname.is_empty() {
            user.clone()
        } else {
            dbname.to_owned()
        },
        user,
        password: password.map(Secret::new),
        ssl_mode,
        ssl_root_cert,
    })
}

/// The credential at the start of `rest` (the URL after `scheme://`) and
/// what follows it, split as SQLAlchemy's URL pattern splits them: a user
/// name up to the first `:` or `/`, then a password that runs to the last
/// `@`. The credential comes off first, so that a password holding `/`,
/// `?` or `:` is never read as the host, port, database or a parameter
/// (which the messages quote).
fn split_credential(rest: &str) -> (&str, &str) {
    let user_end = rest.find([':', '/']).unwrap_or(rest.len());
    let at = if rest[user_end..].starts_with(':') {
        rest.rfind('@').filter(|at| *at > user_end)
    } else {
        None
    }
    .or_else(|| rest[..user_end].rfind('@'));
    match at {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => ("", rest),
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; either may be empty.
fn split_host_port(text: &str) -> Result<(String, Option<String>), String> {
    if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| "has an IPv6 host without its closing `]`".to_owned())?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port.to_owned()),
            None if after.is_empty() => None,
            None => return Err("has text after its IPv6 host".to_owned()),
        };
        return Ok((host.to_owned(), port));
    }
    match text.split_once(':') {
        Some((host, port)) => Ok((decode(host).unwrap_or_default(), Some(port.to_owned()))),
        None => Ok((decode(text).unwrap_or_default(), None)),
    }
}

/// Percent-decoding (`%40` is `@`); `None` for a bad escape or bytes that
/// are not UTF-8.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(url: &str) -> PgTarget {
        match locate(
            Inputs {
                url: Some(url.to_owned()),
                ..Inputs::default()
            },
            Path::new("/data"),
        )
        .unwrap()
        {
            Located::Postgres(target) => *target,
            Located::Sqlite(path) => panic!("{url} read as SQLite {path:?}"),
        }
    }

    fn refused(inputs: Inputs) -> String {
        locate(inputs, Path::new("/data")).unwrap_err().to_string()
    }

    #[test]
    fn a_full_url_is_read_as_libpq_reads_it() {
        let t = pg(
            "postgresql://mai:p%40ss%3Aw@db.example:6543/webui?sslmode=verify-full&sslrootcert=/ca.pem",
        );
        assert_eq!(t.host, PgHost::Tcp("db.example".into()));
        assert_eq!(
            (t.port, t.user.as_str(), t.dbname.as_str()),
            (6543, "mai", "webui")
        );
        assert_eq!(t.password.unwrap().expose(), "p@ss:w");
        assert_eq!(t.ssl_mode, SslMode::VerifyFull);
        assert_eq!(t.ssl_root_cert, Some(PathBuf::from("/ca.pem")));
    }

    #[test]
    fn a_password_may_hold_slash_question_mark_colon_and_at() {
        for (url, password) in [
            ("postgresql://mai:hunter/2@db:5432/webui", "hunter/2"),
            (
                "postgresql://mai:s3cr?et:part@db:5432/webui",
                "s3cr?et:part",
            ),
            ("postgresql://mai:a@b@db:5432/webui", "a@b"),
        ] {
            let t = pg(url);
            assert_eq!(t.password.unwrap().expose(), password, "{url}");
            assert_eq!(t.host, PgHost::Tcp("db".into()), "{url}");
            assert_eq!((t.port, t.dbname.as_str()), (5432, "webui"), "{url}");
        }
        // No password: the user ends at its `@`, and an `@` after the
        // host belongs to where it stands.
        let t = pg("postgresql://mai@db/webui?sslrootcert=/certs/a@b.pem");
        assert_eq!((t.user.as_str(), t.dbname.as_str()), ("mai", "webui"));
        assert_eq!(t.ssl_root_cert, Some(PathBuf::from("/certs/a@b.pem")));
    }

    #[test]
    fn defaults_are_libpqs() {
        let t = pg("postgresql://mai@db");
        assert_eq!(
            (t.port, t.dbname.as_str(), t.ssl_mode),
            (5432, "mai", SslMode::Prefer)
        );
        assert!(t.password.is_none());
        let socket = pg("postgresql://mai@/webui");
        assert_eq!(
            socket.host,
            PgHost::Socket(PathBuf::from("/var/run/postgresql"))
        );
        let dir = pg("postgresql://mai@/webui?host=/tmp/pg&port=5433");
        assert_eq!(
            (dir.host, dir.port),
            (PgHost::Socket(PathBuf::from("/tmp/pg")), 5433)
        );
        let v6 = pg("postgresql://mai@[::1]:5433/w");
        assert_eq!((v6.host, v6.port), (PgHost::Tcp("::1".into()), 5433));
    }

    #[test]
    fn postgres_and_driver_schemes_are_postgresql() {
        for url in [
            "postgres://u:p@h/d",
            "postgresql+psycopg2://u:p@h/d",
            "POSTGRESQL://u@h/d",
        ] {
            assert_eq!(pg(url).dbname, "d", "{url}");
        }
    }

    #[test]
    fn the_redacted_url_never_holds_the_password() {
        let t = pg("postgresql://mai:s3cr3t-pw@db:5432/webui?sslmode=require");
        let shown = t.redacted();
        assert_eq!(shown, "postgresql://mai:***@db:5432/webui?sslmode=require");
        assert!(!shown.contains("s3cr3t"));
    }

    #[test]
    fn all_parts_build_the_url_and_win_over_database_url() {
        let inputs = Inputs {
            url: Some("sqlite:////elsewhere.db".into()),
            kind: Some("postgres".into()),
            user: Some("mai".into()),
            password: Some("pw".into()),
            host: Some("db".into()),
            port: Some("5433".into()),
            name: Some("webui".into()),
            ..Inputs::default()
        };
        let Located::Postgres(t) = locate(inputs, Path::new("/data")).unwrap() else {
            panic!("not postgres");
        };
        assert_eq!(
            (t.user.as_str(), t.port, t.dbname.as_str()),
            ("mai", 5433, "webui")
        );
        assert_eq!(t.password.as_ref().unwrap().expose(), "pw");
    }

    #[test]
    fn partial_parts_are_refused_naming_what_is_missing() {
        let text = refused(Inputs {
            kind: Some("postgresql".into()),
            host: Some("db".into()),
            ..Inputs::default()
        });
        assert!(
            text.contains("DATABASE_PORT, DATABASE_NAME missing"),
            "{text}"
        );
    }

    #[test]
    fn bad_urls_are_refused_without_their_password() {
        for (url, words) in [
            (
                "postgresql://u:hunter2@h/d?sslmode=allow",
                "sslmode `allow`",
            ),
            (
                "postgresql://u:hunter2@h:99999/d",
                "not a number from 1 to 65535",
            ),
            ("postgresql://:hunter2@h/d", "names no user"),
            (
                "postgresql://u:hunter2@h/d?sslcert=/c.pem",
                "parameter `sslcert`",
            ),
            ("postgresql://u:hunter2%zz@h/d", "password that is not"),
            // A password with `/`, `?` or `:` is still the password, not
            // the port, the database or a parameter that a message quotes.
            (
                "postgresql://u:hunter2/x@h:y/d",
                "has the port `y`, not a number",
            ),
            (
                "postgresql://u:x?hunter2@h/d?sslcert=/c.pem",
                "parameter `sslcert`",
            ),
        ] {
            let text = refused(Inputs {
                url: Some(url.into()),
                ..Inputs::default()
            });
            assert!(text.contains(words), "{url}: {text}");
            assert!(!text.contains("hunter2"), "{url}: {text}");
        }
    }

    #[test]
    fn sqlite_urls_keep_their_rules() {
        let located = locate(
            Inputs {
                url: Some("sqlite:////app/x.db".into()),
                ..Inputs::default()
            },
            Path::new("/data"),
        )
        .unwrap();
        assert!(matches!(located, Located::Sqlite(p) if p == Path::new("/app/x.db")));
        let text = refused(Inputs {
            url: Some("mysql://u:p@h/d".into()),
            ..Inputs::default()
        });
        assert!(text.contains("unsupported scheme `mysql`"), "{text}");
    }
}
