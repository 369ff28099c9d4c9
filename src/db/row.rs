//! Reading the organization row and its neighbours: everything the plan
//! needs to decide between insert, update and nothing.
//!
//! SQLite stores whatever it is given: text that is not UTF-8, a BLOB in a
//! TEXT column, an integer id. This organization's row must be readable by
//! the application, so what it cannot read there is refused, naming the
//! column. Other organizations' rows only matter where they conflict with
//! ours or are shown in a warning, and there they are shown as well as they
//! can be (lossily, escaped), never a reason to fail.

use std::path::Path;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row};

use super::{DbError, ORG_TABLE, ORM_COLUMNS, Schema};
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
    /// `None` where the column does not exist, holds NULL, or holds
    /// something that is not text.
    pub key_hash: Option<String>,
    pub timezone: Option<String>,
    /// Columns the job writes as text that hold something else (a BLOB,
    /// say), which the application's ORM does not read as text: the plan
    /// writes them again.
    pub not_text: Vec<&'static str>,
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

impl Snapshot {
    /// The state of the row, for the debug log (no key is shown).
    pub fn describe(&self) -> String {
        let row = match &self.row {
            None => "no row for this id".to_owned(),
            Some(row) => format!(
                "row {:?}: markup_rate {:?}, is_active {:?}, created_at {:?}, updated_at {:?}, key {}",
                row.name,
                row.markup_rate,
                row.is_active,
                row.created_at,
                row.updated_at,
                row.api_key.fingerprint()
            ),
        };
        format!(
            "schema lacks {:?}; {row}; {} other active organization(s)",
            self.schema.missing_columns,
            self.other_active.len()
        )
    }
}

pub fn read_snapshot(
    conn: &Connection,
    path: &Path,
    schema: Schema,
    id: &str,
    api_key: &Secret,
) -> Result<Snapshot, DbError> {
    let row = read_row(conn, path, &schema, id)?;
    // The order the application's unordered reads see: a table's rows come
    // in rowid order, a WITHOUT ROWID table's in primary key order.
    let order = if schema.without_rowid {
        ""
    } else {
        " ORDER BY rowid"
    };
    let neighbours = || -> rusqlite::Result<Snapshot> {
        Ok(Snapshot {
            row: row.clone(),
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
                    "SELECT id, name FROM {ORG_TABLE} WHERE is_active = 1 AND id <> ?1{order} LIMIT 10"
                ))?
                .query_map([id], other_org)?
                .collect::<rusqlite::Result<_>>()?,
            first_active: conn
                .query_row(
                    &format!("SELECT id FROM {ORG_TABLE} WHERE is_active = 1{order} LIMIT 1"),
                    [],
                    |row| lossy_text(row, 0),
                )
                .optional()?,
        })
    };
    neighbours().map_err(DbError::sqlite(path, "read"))
}

/// This organization's row, every column the application's ORM reads (a
/// column the table lacks reads as NULL; the plan adds it).
fn read_row(
    conn: &Connection,
    path: &Path,
    schema: &Schema,
    id: &str,
) -> Result<Option<OrgRow>, DbError> {
    let columns: Vec<String> = ORM_COLUMNS
        .iter()
        .map(|c| {
            if schema.has(c.name) {
                c.name.to_owned()
            } else {
                format!("NULL AS {}", c.name)
            }
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM {ORG_TABLE} WHERE id = ?1",
        columns.join(", ")
    );
    let cells = conn
        .query_row(&sql, [id], |row| {
            (0..ORM_COLUMNS.len())
                .map(|i| decoded(row, i))
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .optional()
        .map_err(DbError::sqlite(path, "read"))?;
    let Some(cells) = cells else {
        return Ok(None);
    };
    let mut values = Vec::with_capacity(cells.len());
    for (column, cell) in ORM_COLUMNS.iter().zip(cells) {
        match cell {
            Decoded::Value(value) => values.push((column.name, value)),
            Decoded::NotUtf8 => return Err(DbError::not_utf8(path, column.name, id)),
        }
    }
    Ok(Some(OrgRow::from_columns(values)))
}

impl OrgRow {
    fn from_columns(mut columns: Vec<(&'static str, Value)>) -> Self {
        let mut take = |name: &str| {
            columns
                .iter_mut()
                .find(|(column, _)| *column == name)
                .map_or(Value::Null, |(_, value)| {
                    std::mem::replace(value, Value::Null)
                })
        };
        let id = take("id");
        let name = take("name");
        let api_key = take("openrouter_api_key");
        let key_hash = take("openrouter_key_hash");
        let mut not_text = Vec::new();
        if !matches!(name, Value::Text(_)) {
            not_text.push("name");
        }
        if !matches!(api_key, Value::Text(_)) {
            not_text.push("openrouter_api_key");
        }
        if !matches!(key_hash, Value::Text(_) | Value::Null) {
            not_text.push("openrouter_key_hash");
        }
        Self {
            id: text(id),
            name: text(name),
            api_key: Secret::new(text(api_key)),
            markup_rate: take("markup_rate"),
            is_active: take("is_active"),
            created_at: take("created_at"),
            updated_at: take("updated_at"),
            key_hash: match key_hash {
                Value::Text(hash) => Some(hash),
                _ => None,
            },
            timezone: nullable_text(take("timezone")),
            not_text,
        }
    }
}

/// One stored value as the application's driver decodes it.
pub(super) enum Decoded {
    Value(Value),
    /// Text that is not UTF-8: the driver fails on it, and so would any
    /// comparison made here.
    NotUtf8,
}

pub(super) fn decoded(row: &Row, index: usize) -> rusqlite::Result<Decoded> {
    Ok(match row.get_ref(index)? {
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Decoded::Value(Value::Text(text.to_owned())),
            Err(_) => Decoded::NotUtf8,
        },
        ValueRef::Null => Decoded::Value(Value::Null),
        ValueRef::Integer(i) => Decoded::Value(Value::Integer(i)),
        ValueRef::Real(f) => Decoded::Value(Value::Real(f)),
        ValueRef::Blob(bytes) => Decoded::Value(Value::Blob(bytes.to_vec())),
    })
}

fn other_org(row: &Row) -> rusqlite::Result<OtherOrg> {
    Ok(OtherOrg {
        id: lossy_text(row, 0)?,
        name: lossy_text(row, 1)?,
    })
}

/// Another organization's value, for a message: whatever is stored, as
/// text, with bytes that are not UTF-8 replaced (U+FFFD). Messages escape it.
fn lossy_text(row: &Row, index: usize) -> rusqlite::Result<String> {
    Ok(match row.get_ref(index)? {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Null => String::new(),
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
