//! `--production`: read the row back and compare every field with what the
//! plan meant to leave there. A mismatch means someone else wrote in between
//! or this program is wrong; either way the operator must know.

use std::path::Path;

use rusqlite::Connection;
use rusqlite::types::Value;

use super::{DbError, Schema, inspect, read_snapshot};
use crate::secret::Secret;

/// What the row must hold after the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub id: String,
    pub name: String,
    pub api_key: Secret,
    pub markup_rate: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "verification failed: {field} in {place} is {found}, but {expected} was written. \
         Another process may have changed it meanwhile; run again, and report a bug if it repeats."
    )]
    Mismatch {
        place: String,
        field: String,
        found: String,
        expected: String,
    },
    #[error("verification failed: the schema changed during the run ({0})")]
    Schema(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

pub fn verify(conn: &Connection, path: &Path, expected: &Expected) -> Result<(), VerifyError> {
    let schema: Schema = inspect(conn, path)?
        .ok_or_else(|| VerifyError::Schema("the database has no tables".to_owned()))?;
    let snapshot = read_snapshot(conn, path, schema, &expected.id, &expected.api_key)?;
    let mismatch = |field: &str, found: String, wanted: String| VerifyError::Mismatch {
        place: path.display().to_string(),
        field: format!("client_organizations.{field} of {}", expected.id),
        found,
        expected: wanted,
    };
    let row = snapshot
        .row
        .ok_or_else(|| mismatch("row", "missing".to_owned(), "a row".to_owned()))?;
    if row.name != expected.name {
        return Err(mismatch(
            "name",
            format!("{:?}", row.name),
            format!("{:?}", expected.name),
        ));
    }
    if row.api_key != expected.api_key {
        return Err(mismatch(
            "openrouter_api_key",
            row.api_key.fingerprint(),
            expected.api_key.fingerprint(),
        ));
    }
    if schema.has_key_hash
        && row.key_hash.as_deref() != Some(expected.api_key.sha256_hex().as_str())
    {
        return Err(mismatch(
            "openrouter_key_hash",
            format!("{:?}", row.key_hash),
            "the key's SHA-256".to_owned(),
        ));
    }
    if row.markup_rate != Value::Real(expected.markup_rate) {
        return Err(mismatch(
            "markup_rate",
            format!("{:?}", row.markup_rate),
            expected.markup_rate.to_string(),
        ));
    }
    if row.is_active != Value::Integer(1) {
        return Err(mismatch(
            "is_active",
            format!("{:?}", row.is_active),
            "1".to_owned(),
        ));
    }
    for (field, value) in [
        ("created_at", &row.created_at),
        ("updated_at", &row.updated_at),
    ] {
        if !matches!(value, Value::Integer(_)) {
            return Err(mismatch(
                field,
                format!("{value:?}"),
                "integer epoch seconds".to_owned(),
            ));
        }
    }
    Ok(())
}
