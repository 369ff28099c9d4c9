//! Reading the organization row and its neighbours on PostgreSQL, into the
//! same `Snapshot` the SQLite reader makes, so that `plan` decides for both.
//! Values are cast to one type per kind (text, float8, int8) and carried as
//! the SQLite values the plan compares.

use rusqlite::types::Value;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use super::cast;
use super::error::PgError;
use super::session::Session;
use crate::db::{ORG_TABLE, OrgRow, OtherOrg, Schema, Snapshot};
use crate::secret::Secret;

/// The columns the plan reads, in the order `org_row` takes them; a column
/// the table lacks reads NULL.
const ROW_COLUMNS: [&str; 9] = [
    "id",
    "name",
    "openrouter_api_key",
    "openrouter_key_hash",
    "markup_rate",
    "is_active",
    "created_at",
    "updated_at",
    "timezone",
];

pub fn read_snapshot(
    session: &mut Session,
    schema: Schema,
    id: &str,
    api_key: &Secret,
) -> Result<Snapshot, PgError> {
    let row = read_row(session, &schema, id, api_key)?;
    // Physical order (ctid) is what the application's unordered reads,
    // and so the admin page's "first active organization", see.
    let sql = format!(
        "(SELECT 'key', id::text, name::text FROM {ORG_TABLE} WHERE openrouter_api_key = $1 AND id <> $2 LIMIT 1) \
         UNION ALL (SELECT 'first', id::text, name::text FROM {ORG_TABLE} WHERE is_active = 1 ORDER BY ctid LIMIT 1) \
         UNION ALL (SELECT 'other', id::text, name::text FROM {ORG_TABLE} WHERE is_active = 1 AND id <> $2 \
         ORDER BY ctid LIMIT 10)"
    );
    let key = api_key.expose();
    let rows = session.query(
        "reading the other organizations",
        &sql,
        &[(&key, Type::TEXT), (&id, Type::TEXT)],
        Some(api_key),
    )?;
    let mut snapshot = Snapshot {
        schema,
        row,
        key_owner: None,
        other_active: Vec::new(),
        first_active: None,
    };
    for found in &rows {
        let kind: String = found.get(0);
        let other = OtherOrg {
            id: found.get::<_, Option<String>>(1).unwrap_or_default(),
            name: found.get::<_, Option<String>>(2).unwrap_or_default(),
        };
        match kind.as_str() {
            "key" => snapshot.key_owner = Some(other),
            "first" => snapshot.first_active = Some(other.id),
            _ => snapshot.other_active.push(other),
        }
    }
    Ok(snapshot)
}

fn read_row(
    session: &mut Session,
    schema: &Schema,
    id: &str,
    api_key: &Secret,
) -> Result<Option<OrgRow>, PgError> {
    let columns: Vec<String> = ROW_COLUMNS
        .iter()
        .map(|name| {
            let cast = cast(name);
            if schema.has(name) {
                format!("{name}::{cast}")
            } else {
                format!("NULL::{cast}")
            }
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM {ORG_TABLE} WHERE id = $1",
        columns.join(", ")
    );
    let rows = session.query(
        "reading the organization row",
        &sql,
        &[(&id, Type::TEXT)],
        Some(api_key),
    )?;
    Ok(rows.first().map(org_row))
}

fn org_row(row: &Row) -> OrgRow {
    let text = |i: usize| row.get::<_, Option<String>>(i);
    let integer = |i: usize| {
        row.get::<_, Option<i64>>(i)
            .map_or(Value::Null, Value::Integer)
    };
    let mut not_text = Vec::new();
    if text(1).is_none() {
        not_text.push("name");
    }
    if text(2).is_none() {
        not_text.push("openrouter_api_key");
    }
    OrgRow {
        id: text(0).unwrap_or_default(),
        name: text(1).unwrap_or_default(),
        api_key: Secret::new(text(2).unwrap_or_default()),
        key_hash: text(3),
        markup_rate: row
            .get::<_, Option<f64>>(4)
            .map_or(Value::Null, Value::Real),
        is_active: integer(5),
        created_at: integer(6),
        updated_at: integer(7),
        timezone: text(8),
        not_text,
    }
}
