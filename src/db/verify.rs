//! `--production`: read the row back the way the application does and
//! compare it with what the plan meant to leave there. The application's
//! ORM selects every column it maps, by id, among active rows; if that read
//! fails or finds nothing, no usage is recorded, so that is the read that
//! decides whether a run is `verified`. A mismatch means someone else wrote
//! in between or this program is wrong; either way the operator must know.

use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use super::row::{Decoded, decoded};
use super::{DbError, ORG_TABLE, orm_select_list, shown};
use crate::secret::Secret;

/// What the row must hold after the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub id: String,
    pub name: String,
    pub api_key: Secret,
    /// OpenRouter's identifier of the key, where it is known.
    pub key_hash: Option<String>,
    pub markup_rate: f64,
    pub is_active: bool,
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
    #[error(
        "verification failed: the application's read of organization {id} in {} fails ({detail}), so it \
         would record no usage. Run again, and report a bug if it repeats.",
        path.display()
    )]
    ApplicationRead {
        path: std::path::PathBuf,
        id: String,
        detail: String,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The row as the application's lookup returns it, by column name.
pub struct AppRow(pub Vec<(String, Value)>);

impl AppRow {
    fn get(&self, column: &str) -> &Value {
        self.0
            .iter()
            .find(|(name, _)| name == column)
            .map_or(&Value::Null, |(_, value)| value)
    }
}

pub fn verify(conn: &Connection, path: &Path, expected: &Expected) -> Result<(), VerifyError> {
    let row = read_as_application(conn, path, expected)?;
    compare(&path.display().to_string(), row, expected)
}

/// Whether the row the application's read found (in the database `place`)
/// is the one the run meant to leave: the rules for both databases.
pub fn compare(place: &str, row: Option<AppRow>, expected: &Expected) -> Result<(), VerifyError> {
    let mismatch = |field: &str, found: String, wanted: String| VerifyError::Mismatch {
        place: place.to_owned(),
        field: format!("{ORG_TABLE}.{field} of {}", expected.id),
        found,
        expected: wanted,
    };
    let row = row.ok_or_else(|| {
        let wanted = if expected.is_active {
            "an active row, which the application's lookup finds"
        } else {
            "an inactive row"
        };
        mismatch("row", "missing".to_owned(), wanted.to_owned())
    })?;
    let text = |column: &str| match row.get(column) {
        Value::Text(t) => Some(t.clone()),
        _ => None,
    };
    if text("name").as_deref() != Some(expected.name.as_str()) {
        return Err(mismatch(
            "name",
            format!("{:?}", row.get("name")),
            format!("{:?}", expected.name),
        ));
    }
    if text("openrouter_api_key").as_deref() != Some(expected.api_key.expose()) {
        let found = text("openrouter_api_key")
            .map_or_else(|| "not text".to_owned(), |k| Secret::new(k).fingerprint());
        return Err(mismatch(
            "openrouter_api_key",
            found,
            expected.api_key.fingerprint(),
        ));
    }
    if text("openrouter_key_hash") != expected.key_hash {
        return Err(mismatch(
            "openrouter_key_hash",
            format!("{:?}", row.get("openrouter_key_hash")),
            format!("{:?}", expected.key_hash),
        ));
    }
    check_markup(row.get("markup_rate"), expected.markup_rate)
        .map_err(|found| mismatch("markup_rate", found, format!("{}", expected.markup_rate)))?;
    if row.get("is_active") != &Value::Integer(i64::from(expected.is_active)) {
        return Err(mismatch(
            "is_active",
            format!("{:?}", row.get("is_active")),
            i64::from(expected.is_active).to_string(),
        ));
    }
    for field in ["created_at", "updated_at"] {
        if !matches!(row.get(field), Value::Integer(_)) {
            return Err(mismatch(
                field,
                format!("{:?}", row.get(field)),
                "integer epoch seconds".to_owned(),
            ));
        }
    }
    Ok(())
}

/// The ORM's read: every mapped column, by id, among active rows (or the
/// row whatever its state, when it is meant to be inactive).
fn read_as_application(
    conn: &Connection,
    path: &Path,
    expected: &Expected,
) -> Result<Option<AppRow>, VerifyError> {
    let active = if expected.is_active {
        " AND is_active = 1"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {} FROM {ORG_TABLE} WHERE id = ?1{active}",
        orm_select_list()
    );
    let read = || -> rusqlite::Result<Option<Vec<(String, Decoded)>>> {
        let mut statement = conn.prepare(&sql)?;
        let names: Vec<String> = statement.column_names().map(str::to_owned).collect();
        statement
            .query_row([&expected.id], |row| {
                let mut values = Vec::with_capacity(names.len());
                for (i, name) in names.iter().enumerate() {
                    values.push((name.clone(), decoded(row, i)?));
                }
                Ok(values)
            })
            .optional()
    };
    let cells = read().map_err(|e| match e.sqlite_error_code() {
        // SQLITE_ERROR: the statement itself fails, as "no such column" does.
        Some(rusqlite::ErrorCode::Unknown) => VerifyError::ApplicationRead {
            path: path.to_owned(),
            id: expected.id.clone(),
            detail: shown(&e.to_string()),
        },
        _ => VerifyError::from(DbError::sqlite(path, "verification read")(e)),
    })?;
    let Some(cells) = cells else {
        return Ok(None);
    };
    let mut values = Vec::with_capacity(cells.len());
    for (name, cell) in cells {
        match cell {
            Decoded::Value(value) => values.push((name, value)),
            // The application's driver fails on this row: a data error that
            // names the column, as the snapshot read does before a write.
            Decoded::NotUtf8 => return Err(DbError::not_utf8(path, &name, &expected.id).into()),
        }
    }
    Ok(Some(AppRow(values)))
}

/// The application multiplies costs by this: a positive, finite number,
/// equal to what was written.
fn check_markup(found: &Value, wanted: f64) -> Result<(), String> {
    let value = match found {
        Value::Real(f) => *f,
        Value::Integer(i) => *i as f64,
        other => return Err(format!("{other:?}, not a number")),
    };
    if value.is_finite() && value > 0.0 && value == wanted {
        Ok(())
    } else {
        Err(format!("{found:?}"))
    }
}
