//! Reading the organization row and its neighbours: everything the plan
//! needs to decide between insert, update and nothing.

use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row};

use super::{DbError, ORG_TABLE, Schema};
use crate::secret::Secret;

/// The organization row as stored. Numeric fields stay raw `Value`s: rows
/// written by the old generator hold text timestamps, which must be seen to
/// be repaired.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub api_key: Secret,
    pub markup_rate: Value,
    pub is_active: Value,
    pub created_at: Value,
    pub updated_at: Value,
    /// `None` where the column does not exist or holds NULL.
    pub key_hash: Option<String>,
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OtherOrg {
    pub id: String,
    pub name: String,
}

/// The database as far as this organization is concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub schema: Schema,
    pub row: Option<OrgRow>,
    /// Another organization's row that holds our key (the UNIQUE column).
    pub key_owner: Option<OtherOrg>,
    /// Other active organizations; the usage page shows only the first.
    pub other_active: Vec<OtherOrg>,
    /// The id of the first active row, which the usage page shows.
    pub first_active: Option<String>,
}

pub fn read_snapshot(
    conn: &Connection,
    path: &Path,
    schema: Schema,
    id: &str,
    api_key: &Secret,
) -> Result<Snapshot, DbError> {
    let read = || -> rusqlite::Result<Snapshot> {
        Ok(Snapshot {
            row: read_row(conn, &schema, id)?,
            schema: schema.clone(),
            key_owner: conn
                .query_row(
                    &format!("SELECT id, name FROM {ORG_TABLE} WHERE openrouter_api_key = ?1 AND id <> ?2 LIMIT 1"),
                    [api_key.expose(), id],
                    other_org,
                )
                .optional()?,
            other_active: conn
                .prepare(&format!(
                    "SELECT id, name FROM {ORG_TABLE} WHERE is_active = 1 AND id <> ?1 ORDER BY rowid LIMIT 10"
                ))?
                .query_map([id], other_org)?
                .collect::<rusqlite::Result<_>>()?,
            first_active: conn
                .query_row(
                    &format!("SELECT id FROM {ORG_TABLE} WHERE is_active = 1 ORDER BY rowid LIMIT 1"),
                    [],
                    |row| Ok(text(row.get(0)?)),
                )
                .optional()?,
        })
    };
    read().map_err(DbError::sqlite(path, "read"))
}

fn read_row(conn: &Connection, schema: &Schema, id: &str) -> rusqlite::Result<Option<OrgRow>> {
    // A column the table lacks reads as NULL; the plan adds it.
    let column = |name: &str| {
        if schema.has(name) {
            name.to_owned()
        } else {
            "NULL".to_owned()
        }
    };
    let sql = format!(
        "SELECT id, name, openrouter_api_key, markup_rate, is_active, created_at, updated_at, {}, {} \
         FROM {ORG_TABLE} WHERE id = ?1",
        column("openrouter_key_hash"),
        column("timezone"),
    );
    conn.query_row(&sql, [id], |row| {
        Ok(OrgRow {
            id: text(row.get(0)?),
            name: text(row.get(1)?),
            api_key: Secret::new(text(row.get(2)?)),
            markup_rate: row.get(3)?,
            is_active: row.get(4)?,
            created_at: row.get(5)?,
            updated_at: row.get(6)?,
            key_hash: nullable_text(row.get(7)?),
            timezone: nullable_text(row.get(8)?),
        })
    })
    .optional()
}

fn other_org(row: &Row) -> rusqlite::Result<OtherOrg> {
    Ok(OtherOrg {
        id: text(row.get(0)?),
        name: text(row.get(1)?),
    })
}

/// Text columns may hold anything in SQLite; show what is there.
fn text(value: Value) -> String {
    match value {
        Value::Text(s) => s,
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::Null => String::new(),
    }
}

fn nullable_text(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        other => Some(text(other)),
    }
}
