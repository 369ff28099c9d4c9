//! Schema inspection on PostgreSQL, through `information_schema` (the
//! tables and columns of the session's current schema, as the application
//! sees them with its default search path) and `pg_index` (whether `id` is
//! unique, which `ON CONFLICT (id)` needs). The same rules as on SQLite:
//! missing tables and columns are named, a column the job writes with the
//! wrong kind of type is refused, and the ORM columns the table lacks are
//! reported for the repair.

use std::path::PathBuf;

use super::error::PgError;
use super::session::Session;
use crate::db::{self, DbError, ORG_TABLE, REQUIRED_TABLES, Schema};

/// Columns that must hold numbers, with the types that do.
const NUMERIC_COLUMNS: [(&str, &[&str]); 4] = [
    (
        "markup_rate",
        &[
            "double precision",
            "real",
            "numeric",
            "integer",
            "bigint",
            "smallint",
        ],
    ),
    ("is_active", &["integer", "bigint", "smallint"]),
    ("created_at", &["integer", "bigint", "smallint"]),
    ("updated_at", &["integer", "bigint", "smallint"]),
];
const TEXT_TYPES: [&str; 3] = ["character varying", "text", "character"];

/// One row per table of the current schema; for the organization table,
/// one per column. `id_unique` says whether a unique index on `id` alone
/// exists (a primary key is one).
const INSPECT: &str = "\
SELECT t.table_name::text, t.table_type::text, c.column_name::text, c.data_type::text,
  (SELECT count(*) FROM pg_catalog.pg_index i
     JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
   WHERE t.table_name = 'client_organizations'
     AND i.indrelid = to_regclass(quote_ident(current_schema()) || '.client_organizations')
     AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL AND a.attname = 'id')::text
FROM information_schema.tables t
LEFT JOIN information_schema.columns c
  ON t.table_name = 'client_organizations'
 AND c.table_schema = t.table_schema AND c.table_name = t.table_name
WHERE t.table_schema = current_schema()";

/// `None` when the current schema has no tables: the application has not
/// migrated this database yet.
pub fn inspect(session: &mut Session) -> Result<Option<Schema>, PgError> {
    let rows = session.simple("reading the schema", INSPECT)?;
    if rows.is_empty() {
        return Ok(None);
    }
    let path = PathBuf::from(&session.url);
    let cell =
        |row: &Vec<Option<String>>, i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    let find = |name: &str| rows.iter().find(|row| cell(row, 0) == name);
    let missing = db::missing_tables(|table| find(table).is_some());
    if !missing.is_empty() {
        return Err(DbError::MissingTables {
            path,
            tables: missing,
        }
        .into());
    }
    for name in REQUIRED_TABLES {
        let kind = find(name).map(|row| cell(row, 1)).unwrap_or_default();
        if kind != "BASE TABLE" {
            return Err(DbError::NotATable {
                path,
                name,
                kind: if kind == "VIEW" {
                    "a view"
                } else {
                    "not an ordinary table"
                },
            }
            .into());
        }
    }
    let columns: Vec<(String, String)> = rows
        .iter()
        .filter(|row| cell(row, 0) == ORG_TABLE && row.get(2).is_some_and(Option::is_some))
        .map(|row| (cell(row, 2), cell(row, 3)))
        .collect();
    check_columns(&columns, &path)?;
    let id_unique = find(ORG_TABLE).is_some_and(|row| cell(row, 4) != "0");
    if !id_unique {
        return Err(DbError::WrongColumn {
            path,
            table: ORG_TABLE,
            column: "id",
            declared: type_of(&columns, "id"),
            problem: "but is neither the primary key nor unique, so rows cannot be matched by id",
        }
        .into());
    }
    Ok(Some(Schema {
        missing_columns: db::missing_orm_columns(|name| has(&columns, name)),
        without_rowid: false,
    }))
}

fn type_of(columns: &[(String, String)], name: &str) -> String {
    columns
        .iter()
        .find(|(column, _)| column == name)
        .map(|(_, declared)| declared.clone())
        .unwrap_or_default()
}

fn has(columns: &[(String, String)], name: &str) -> bool {
    columns.iter().any(|(column, _)| column == name)
}

fn check_columns(columns: &[(String, String)], path: &std::path::Path) -> Result<(), DbError> {
    let missing = db::missing_required_columns(|name| has(columns, name));
    if !missing.is_empty() {
        return Err(DbError::MissingColumns {
            path: path.to_owned(),
            table: ORG_TABLE,
            columns: missing,
        });
    }
    let declared = type_of(columns, "id");
    if !TEXT_TYPES.contains(&declared.as_str()) {
        return Err(DbError::WrongColumn {
            path: path.to_owned(),
            table: ORG_TABLE,
            column: "id",
            declared,
            problem: "but organization ids are text (mai_client_…), and the application's migrations declare \
                      the column VARCHAR",
        });
    }
    for (name, allowed) in NUMERIC_COLUMNS {
        let declared = type_of(columns, name);
        if !allowed.contains(&declared.as_str()) {
            return Err(DbError::WrongColumn {
                path: path.to_owned(),
                table: ORG_TABLE,
                column: name,
                declared,
                problem: "which does not hold numbers; the application's migration declares INTEGER or BIGINT \
                          (double precision for markup_rate)",
            });
        }
    }
    Ok(())
}

/// Add the ORM columns the table lacks, with mAI's own repair statement
/// (`ALTER TABLE client_organizations ADD COLUMN timezone TEXT DEFAULT
/// 'Europe/Warsaw'`) and its kin: nothing is dropped or retyped.
pub fn add_columns(session: &mut Session, names: &[&'static str]) -> Result<(), PgError> {
    for (_, sql) in db::repair_statements(names) {
        session.execute("the schema repair", &sql, None)?;
    }
    Ok(())
}
