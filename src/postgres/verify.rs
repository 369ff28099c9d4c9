//! `--production` on PostgreSQL: the application's ORM read (all 11 mapped
//! columns, by id, among active rows), compared by the same rules as on
//! SQLite.

use rusqlite::types::Value;
use tokio_postgres::types::Type;

use super::cast;
use super::error::PgError;
use super::session::Session;
use crate::db::{AppRow, Expected, ORG_TABLE, ORM_COLUMNS, VerifyError};

/// The outer error is the session's (the read could not be made); the
/// inner one is what the verification found, as on SQLite.
pub fn verify(
    session: &mut Session,
    expected: &Expected,
) -> Result<Result<(), VerifyError>, PgError> {
    let list: Vec<String> = ORM_COLUMNS
        .iter()
        .map(|c| format!("{0}::{1} AS {0}", c.name, cast(c.name)))
        .collect();
    let active = if expected.is_active {
        " AND is_active = 1"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {} FROM {ORG_TABLE} WHERE id = $1{active}",
        list.join(", ")
    );
    let rows = match session.query(
        "the verification read",
        &sql,
        &[(&expected.id, Type::TEXT)],
        Some(&expected.api_key),
    ) {
        Ok(rows) => rows,
        // The statement itself fails, as "column does not exist" does: the
        // application's read would fail the same way.
        Err(PgError::Failed { detail, .. }) => {
            return Ok(Err(VerifyError::ApplicationRead {
                path: session.url.clone().into(),
                id: expected.id.clone(),
                detail,
            }));
        }
        Err(e) => return Err(e),
    };
    let row = rows.first().map(|row| {
        let values = ORM_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let value = match cast(c.name) {
                    "float8" => row
                        .get::<_, Option<f64>>(i)
                        .map_or(Value::Null, Value::Real),
                    "int8" => row
                        .get::<_, Option<i64>>(i)
                        .map_or(Value::Null, Value::Integer),
                    _ => row
                        .get::<_, Option<String>>(i)
                        .map_or(Value::Null, Value::Text),
                };
                (c.name.to_owned(), value)
            })
            .collect();
        AppRow(values)
    });
    Ok(crate::db::compare(&session.url, row, expected))
}
