//! The one statement that writes the organization: an upsert on `id` that
//! keeps `created_at` and every column it does not name. Never
//! `INSERT OR REPLACE`, which deletes the old row (and, through the UNIQUE
//! key, other organizations' rows) before inserting.

use std::path::Path;

use rusqlite::{Connection, ToSql};

use super::{DbError, ORG_TABLE, shown};
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
    let doing = format!("to write organization {:?} to {ORG_TABLE}", write.id);
    let changed = conn
        .execute(&sql, values.as_slice())
        .map_err(|e| refused(conn, path, "write", doing, Some(&write.api_key))(e))?;
    // An upsert changes its one row, whichever branch it takes; only a
    // trigger's RAISE(IGNORE) makes it change none.
    if changed == 0 {
        return Err(DbError::WriteIgnored {
            path: path.to_owned(),
            table: ORG_TABLE,
            row: write.id.clone(),
            hint: schema_hint(conn),
        });
    }
    Ok(())
}

/// A write the database itself refuses (SQLITE_ERROR from a trigger's
/// body, a constraint or trigger's RAISE, a foreign key, a datatype
/// mismatch) is the schema's doing, not a fault of this job: a data error
/// that names what was written and what in the schema may refuse it. Any
/// other failure (busy, read-only, disk full) keeps its own meaning, as a
/// failure of `step`.
pub(super) fn refused(
    conn: &Connection,
    path: &Path,
    step: &'static str,
    doing: String,
    key: Option<&Secret>,
) -> impl FnOnce(rusqlite::Error) -> DbError {
    use rusqlite::ErrorCode as C;
    move |error| match error.sqlite_error_code() {
        Some(C::Unknown | C::ConstraintViolation | C::TypeMismatch) => DbError::WriteRefused {
            path: path.to_owned(),
            doing,
            // A trigger's RAISE message is the schema author's text; make
            // sure it cannot hand the key to the log.
            detail: shown(&match key {
                Some(key) => error.to_string().replace(key.expose(), &key.fingerprint()),
                None => error.to_string(),
            }),
            hint: schema_hint(conn),
        },
        _ => DbError::sqlite(path, step)(error),
    }
}

/// What in the schema can refuse or swallow a write to the organization
/// table, beyond what the application creates: its triggers and foreign
/// keys (the application's table has neither). Best effort: a message
/// that cannot list them still says what failed.
fn schema_hint(conn: &Connection) -> String {
    let triggers = names(
        conn,
        &format!(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = '{ORG_TABLE}' COLLATE NOCASE"
        ),
    );
    let foreign_keys = names(
        conn,
        &format!(
            "SELECT \"from\" || ' -> ' || \"table\" || '(' || coalesce(\"to\", '') || ')' \
             FROM pragma_foreign_key_list('{ORG_TABLE}')"
        ),
    );
    let mut hint = String::new();
    if !triggers.is_empty() {
        hint.push_str(&format!(
            " {ORG_TABLE} has triggers: {}.",
            triggers.join(", ")
        ));
    }
    if !foreign_keys.is_empty() {
        hint.push_str(&format!(
            " {ORG_TABLE} has foreign keys: {}.",
            foreign_keys.join(", ")
        ));
    }
    hint
}

/// One text column of a query's rows, escaped for a message.
fn names(conn: &Connection, sql: &str) -> Vec<String> {
    let read = || -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare(sql)?;
        stmt.query_map([], |row| {
            let bytes = row.get_ref(0)?.as_bytes_or_null()?.unwrap_or_default();
            Ok(shown(&String::from_utf8_lossy(bytes)))
        })?
        .collect()
    };
    read().unwrap_or_default()
}
