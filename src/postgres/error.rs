//! What can go wrong with PostgreSQL, in words an operator can act on.
//! Every message names the database by its URL without the password, and
//! never quotes a value the job wrote (the key): only the server's own
//! message, escaped, with the key replaced by its fingerprint.

use crate::db::{DbError, shown};
use crate::secret::Secret;
use crate::signals::Interrupted;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(
        "cannot reach the PostgreSQL server of {url}: {detail}. Check the host and port in DATABASE_URL and that \
         the server is up and reachable from here, then run again; nothing was changed."
    )]
    Unreachable { url: String, detail: String },
    #[error(
        "the PostgreSQL server of {url} is not accepting work ({detail}): it is starting up, shutting down or \
         in recovery. Run again once it is up; nothing was changed."
    )]
    NotReady { url: String, detail: String },
    #[error(
        "PostgreSQL refused the login to {url} ({detail}). Check the user and password (DATABASE_URL, \
         DATABASE_PASSWORD or its _FILE) and the server's pg_hba.conf; nothing was changed."
    )]
    Authentication { url: String, detail: String },
    #[error(
        "the database {dbname:?} does not exist on the PostgreSQL server of {url}. Create it (CREATE DATABASE), \
         or fix its name in DATABASE_URL; the application creates its tables, not its database."
    )]
    NoDatabase { url: String, dbname: String },
    #[error(
        "the TLS connection to the PostgreSQL server of {url} failed: {detail}. {advice} Nothing was changed."
    )]
    Tls {
        url: String,
        detail: String,
        advice: &'static str,
    },
    #[error(
        "cannot use the TLS roots for {url}: {detail}. Point sslrootcert at a PEM file of CA certificates."
    )]
    Roots { url: String, detail: String },
    #[error(
        "{doing} on {url} did not finish within LOCK_TIMEOUT ({detail}). Run again, or raise LOCK_TIMEOUT; \
         what was not committed was rolled back."
    )]
    Timeout {
        url: String,
        doing: &'static str,
        detail: String,
    },
    #[error(
        "another mai-provision run has held the advisory lock {key} on {url} for {waited:.1} s, past LOCK_TIMEOUT. \
         Wait for it to finish and run again, or raise LOCK_TIMEOUT; nothing was changed."
    )]
    LockTimeout { url: String, key: i64, waited: f64 },
    #[error(
        "PostgreSQL refused {doing} on {url}: permission denied ({detail}). Grant the job's user the rights to \
         read and write the application's tables (and ALTER TABLE client_organizations for a column repair); \
         nothing was changed."
    )]
    Permission {
        url: String,
        doing: &'static str,
        detail: String,
    },
    #[error(
        "the PostgreSQL server of {url} is read-only ({detail}): a standby, or a read-only transaction default. \
         Point DATABASE_URL at the primary; nothing was changed."
    )]
    ReadOnly { url: String, detail: String },
    #[error(
        "the database {url} refused {doing}: {detail}. The mAI application's schema has no such constraint or \
         trigger: fix or drop what refuses the write. Nothing was changed."
    )]
    WriteRefused {
        url: String,
        doing: String,
        detail: String,
    },
    #[error("{doing} on {url} failed: {detail}")]
    Failed {
        url: String,
        doing: &'static str,
        detail: String,
    },
    /// The schema is not the application's: the same refusals as on SQLite.
    #[error(transparent)]
    Schema(#[from] DbError),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl PgError {
    /// The connection failed before the session began: say why, in the
    /// operator's terms (exit codes follow from the variant).
    pub(super) fn connecting(url: &str, dbname: &str, error: &tokio_postgres::Error) -> Self {
        let url = url.to_owned();
        if let Some(db) = error.as_db_error() {
            let detail = shown(db.message());
            return match db.code().code() {
                "28P01" | "28000" => Self::Authentication { url, detail },
                "3D000" => Self::NoDatabase {
                    url,
                    dbname: dbname.to_owned(),
                },
                "57P03" | "57P01" | "57P02" | "57P04" | "53300" => Self::NotReady { url, detail },
                _ => Self::Failed {
                    url,
                    doing: "connecting",
                    detail,
                },
            };
        }
        let detail = chain(error);
        if detail.starts_with("error performing TLS handshake") {
            let advice = tls_advice(&detail);
            return Self::Tls {
                url,
                detail,
                advice,
            };
        }
        if detail.starts_with("authentication error") {
            return Self::Authentication { url, detail };
        }
        Self::Unreachable { url, detail }
    }

    /// A statement failed: classify by SQLSTATE. `key` is scrubbed from
    /// the server's words (a unique violation quotes the value).
    pub(super) fn statement(
        url: &str,
        doing: &'static str,
        key: Option<&Secret>,
        error: &tokio_postgres::Error,
    ) -> Self {
        let url = url.to_owned();
        let Some(db) = error.as_db_error() else {
            return Self::Unreachable {
                url,
                detail: chain(error),
            };
        };
        let mut detail = db.message().to_owned();
        if let Some(more) = db.detail() {
            detail = format!("{detail} ({more})");
        }
        if let Some(key) = key {
            detail = detail.replace(key.expose(), &key.fingerprint());
        }
        let detail = shown(&detail);
        let code = db.code().code();
        match code {
            "42501" => Self::Permission { url, doing, detail },
            "25006" => Self::ReadOnly { url, detail },
            "57014" | "55P03" | "40001" | "40P01" => Self::Timeout { url, doing, detail },
            _ if code.starts_with("57P") || code.starts_with("08") || code.starts_with("53") => {
                Self::NotReady { url, detail }
            }
            _ if code.starts_with("23") || code.starts_with("22") || code == "P0001" => {
                Self::WriteRefused {
                    url,
                    doing: doing.to_owned(),
                    detail,
                }
            }
            _ => Self::Failed { url, doing, detail },
        }
    }
}

/// tokio-postgres says only "error performing TLS handshake"; the reason
/// (rustls's, the server's) is in the chain of sources.
pub(super) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    shown(&text)
}

fn tls_advice(detail: &str) -> &'static str {
    if detail.contains("does not support TLS") {
        "The server does not offer TLS: enable ssl on it, or lower sslmode (prefer, or disable on a trusted network)."
    } else if detail.contains("NotValidForName") || detail.contains("not valid for name") {
        "The server's certificate is not for the host in DATABASE_URL: connect by the name in its certificate \
         (verify-full checks it), or use sslmode=verify-ca."
    } else if detail.contains("UnknownIssuer") || detail.contains("invalid peer certificate") {
        "The server's certificate does not chain to a trusted root: set sslrootcert to its CA's PEM file."
    } else {
        "Check sslmode and sslrootcert in DATABASE_URL, and the server's certificate."
    }
}
