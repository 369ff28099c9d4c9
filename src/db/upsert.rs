//! The one statement that writes the organization: an upsert on `id` that
//! keeps `created_at` and every column it does not name. Never
//! `INSERT OR REPLACE`, which deletes the old row (and, through the UNIQUE
//! key, other organizations' rows) before inserting.

use std::path::Path;

use rusqlite::{Connection, ToSql};

use super::{DbError, ORG_TABLE, REQUIRED_ORG_COLUMNS};
use crate::secret::Secret;

/// A planned write of the organization row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowWrite {
    pub id: String,
    pub name: String,
    pub api_key: Secret,
    pub markup_rate: f64,
    /// Only used by an insert, or to repair a timestamp an update names.
    pub created_at: i64,
    pub updated_at: i64,
    /// `Some` where the column exists.
    pub key_hash: Option<String>,
    /// `Some` only for an insert into a table that has the column.
    pub timezone: Option<&'static str>,
    /// The columns an existing row gets (the conflict branch of the upsert).
    pub update_columns: Vec<&'static str>,
}

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

impl RowWrite {
    /// The columns the insert branch names: the required ones, in
    /// `REQUIRED_ORG_COLUMNS` order, then the optional ones it has values for.
    pub fn insert_columns(&self) -> Vec<&'static str> {
        let mut columns = REQUIRED_ORG_COLUMNS.to_vec();
        if self.key_hash.is_some() {
            columns.push("openrouter_key_hash");
        }
        if self.timezone.is_some() {
            columns.push("timezone");
        }
        columns
    }
}

pub fn write_row(conn: &Connection, path: &Path, write: &RowWrite) -> Result<(), DbError> {
    let columns = write.insert_columns();
    let active: i64 = 1;
    let key = write.api_key.expose();
    let mut values: Vec<&dyn ToSql> = vec![
        &write.id,
        &write.name,
        &key,
        &write.markup_rate,
        &active,
        &write.created_at,
        &write.updated_at,
    ];
    // Same order as `insert_columns`.
    if let Some(hash) = &write.key_hash {
        values.push(hash);
    }
    if let Some(timezone) = &write.timezone {
        values.push(timezone);
    }
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let sets: Vec<String> = write
        .update_columns
        .iter()
        .filter(|c| columns.contains(c))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO {ORG_TABLE} ({}) VALUES ({}) ON CONFLICT(id) DO UPDATE SET {}",
        columns.join(", "),
        placeholders.join(", "),
        sets.join(", ")
    );
    conn.execute(&sql, values.as_slice())
        .map_err(DbError::sqlite(path, "write"))?;
    Ok(())
}
