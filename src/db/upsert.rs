//! The one statement that writes the organization: an upsert on `id` that
//! keeps `created_at` and every column it does not name. Never
//! `INSERT OR REPLACE`, which deletes the old row (and, through the UNIQUE
//! key, other organizations' rows) before inserting.

use std::path::Path;

use rusqlite::{Connection, ToSql};

use super::{DbError, ORG_TABLE};
use crate::secret::Secret;

/// What a new row gets in `timezone`, as the application's initializer does.
pub const DEFAULT_TIMEZONE: &str = "Europe/Warsaw";

/// The columns an insert names, in the order `write_row` binds them. The
/// schema repair runs first, so all of them exist by then.
pub const INSERT_COLUMNS: [&str; 9] = [
    "id",
    "name",
    "openrouter_api_key",
    "markup_rate",
    "is_active",
    "created_at",
    "updated_at",
    "openrouter_key_hash",
    "timezone",
];

/// What an upsert may change in a row that exists: never `id`, `created_at`
/// (unless repaired) or `timezone`, which an admin may have set.
pub const UPDATABLE_COLUMNS: [&str; 6] = [
    "name",
    "openrouter_api_key",
    "openrouter_key_hash",
    "markup_rate",
    "is_active",
    "updated_at",
];

/// A planned write of the organization row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowWrite {
    pub id: String,
    pub name: String,
    pub api_key: Secret,
    /// OpenRouter's identifier of the key, where it is known.
    pub key_hash: Option<String>,
    pub markup_rate: f64,
    pub is_active: bool,
    /// Only used by an insert, or to repair a timestamp an update names.
    pub created_at: i64,
    pub updated_at: i64,
    /// The columns an existing row gets (the conflict branch of the upsert).
    pub update_columns: Vec<&'static str>,
}

pub fn write_row(conn: &Connection, path: &Path, write: &RowWrite) -> Result<(), DbError> {
    let key = write.api_key.expose();
    let is_active = i64::from(write.is_active);
    // Same order as INSERT_COLUMNS.
    let values: [&dyn ToSql; 9] = [
        &write.id,
        &write.name,
        &key,
        &write.markup_rate,
        &is_active,
        &write.created_at,
        &write.updated_at,
        &write.key_hash,
        &DEFAULT_TIMEZONE,
    ];
    let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("?{i}")).collect();
    let sets: Vec<String> = write
        .update_columns
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO {ORG_TABLE} ({}) VALUES ({}) ON CONFLICT(id) DO UPDATE SET {}",
        INSERT_COLUMNS.join(", "),
        placeholders.join(", "),
        sets.join(", ")
    );
    conn.execute(&sql, values.as_slice())
        .map_err(DbError::sqlite(path, "write"))?;
    Ok(())
}
