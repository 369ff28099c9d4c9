//! The one statement that writes the organization on PostgreSQL:
//! `INSERT … ON CONFLICT (id) DO UPDATE`, which keeps `created_at` and every
//! column it does not name. The values are cast to one type per kind, and
//! PostgreSQL's assignment casts fit them to the table's own types.

use tokio_postgres::types::Type;

use super::cast;
use super::error::PgError;
use super::session::Session;
use crate::db::{DEFAULT_TIMEZONE, INSERT_COLUMNS, ORG_TABLE, RowWrite};

pub fn write_row(session: &mut Session, write: &RowWrite) -> Result<(), PgError> {
    let key = write.api_key.expose();
    let is_active = i64::from(write.is_active);
    let values: Vec<String> = INSERT_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, column)| format!("${}::{}", i + 1, cast(column)))
        .collect();
    let sets: Vec<String> = write
        .update_columns
        .iter()
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO {ORG_TABLE} ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}",
        INSERT_COLUMNS.join(", "),
        values.join(", "),
        sets.join(", ")
    );
    let changed = session.count(
        "writing the organization row",
        &sql,
        // Same order as INSERT_COLUMNS.
        &[
            (&write.id, Type::TEXT),
            (&write.name, Type::TEXT),
            (&key, Type::TEXT),
            (&write.markup_rate, Type::FLOAT8),
            (&is_active, Type::INT8),
            (&write.created_at, Type::INT8),
            (&write.updated_at, Type::INT8),
            (&write.key_hash, Type::TEXT),
            (&DEFAULT_TIMEZONE, Type::TEXT),
        ],
        Some(&write.api_key),
    )?;
    // An upsert changes its one row; only a BEFORE trigger that returns
    // NULL makes it change none.
    if changed == 0 {
        return Err(PgError::WriteRefused {
            url: session.url.clone(),
            doing: format!("the write of organization {:?} to {ORG_TABLE}", write.id),
            detail: "no row changed, which only a trigger that skips the row does".to_owned(),
        });
    }
    Ok(())
}
