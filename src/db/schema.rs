//! Schema inspection: does this database hold what usage tracking needs?
//! Two shapes exist in the field (see tests/fixtures); extra tables and
//! columns are fine, missing ones are refused before anything is written.

use std::path::Path;

use rusqlite::Connection;

use super::upsert::refused;
use super::{DbError, shown};

pub const ORG_TABLE: &str = "client_organizations";

/// Usage tracking records nothing without these.
pub const REQUIRED_TABLES: [&str; 3] = [
    ORG_TABLE,
    "client_user_daily_usage",
    "client_model_daily_usage",
];

/// One column of `client_organizations` as the application's ORM maps it.
pub struct OrmColumn {
    pub name: &'static str,
    /// How to add the column when a table lacks it; `None` for the columns
    /// the job writes, without which the table is not the application's.
    pub repair: Option<&'static str>,
}

/// Every column the application's ORM model of `client_organizations`
/// maps, in its order. Each ORM read selects all of them, so a table that
/// lacks one makes every lookup fail ("no such column"), and the
/// application records no usage (docs/mai-contract.md, "Columns the ORM
/// reads"). The repairs add a missing column the way mAI's own manual
/// repair adds `timezone`, with the type its migration gives the others.
pub const ORM_COLUMNS: [OrmColumn; 11] = [
    OrmColumn {
        name: "id",
        repair: None,
    },
    OrmColumn {
        name: "name",
        repair: None,
    },
    OrmColumn {
        name: "openrouter_api_key",
        repair: None,
    },
    OrmColumn {
        name: "openrouter_key_hash",
        repair: Some("VARCHAR"),
    },
    OrmColumn {
        name: "markup_rate",
        repair: None,
    },
    OrmColumn {
        name: "monthly_limit",
        repair: Some("FLOAT"),
    },
    OrmColumn {
        name: "billing_email",
        repair: Some("VARCHAR"),
    },
    OrmColumn {
        name: "is_active",
        repair: None,
    },
    OrmColumn {
        name: "created_at",
        repair: None,
    },
    OrmColumn {
        name: "updated_at",
        repair: None,
    },
    OrmColumn {
        name: "timezone",
        repair: Some("TEXT DEFAULT 'Europe/Warsaw'"),
    },
];

/// `SELECT` list of the application's ORM reads.
pub fn orm_select_list() -> String {
    let names: Vec<&str> = ORM_COLUMNS.iter().map(|c| c.name).collect();
    names.join(", ")
}

/// Columns whose values must stay numbers: a TEXT column would turn the
/// integer timestamps into strings, which the application silently rejects.
const NUMERIC_ORG_COLUMNS: [&str; 4] = ["markup_rate", "is_active", "created_at", "updated_at"];

/// The start-up shape, from the fixture the tests use too: one source for
/// both, so the standalone schema cannot drift from the field's.
const STARTUP_SCHEMA: &str = include_str!("../../tests/fixtures/mai-startup-schema.sql");

/// What the organization table lacks of what the application reads, and
/// how its rows are stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    /// ORM columns the table lacks, in `ORM_COLUMNS` order; each has a repair.
    pub missing_columns: Vec<&'static str>,
    /// A `WITHOUT ROWID` table: it has no `rowid` to order by.
    pub without_rowid: bool,
}

impl Schema {
    pub fn has(&self, column: &str) -> bool {
        !self.missing_columns.contains(&column)
    }
}

struct Column {
    name: String,
    declared: String,
    primary_key: bool,
}

/// A table, view or virtual table of the database's main schema.
struct SchemaObject {
    name: String,
    /// `table`, `view`, `virtual` or `shadow` (SQLite's `PRAGMA table_list`).
    kind: String,
    without_rowid: bool,
}

/// `None` when the database has no tables at all: the application has not
/// started on it yet.
pub fn inspect(conn: &Connection, path: &Path) -> Result<Option<Schema>, DbError> {
    let objects = schema_objects(conn, path)?;
    if objects.is_empty() {
        return Ok(None);
    }
    let find = |name: &str| objects.iter().find(|o| o.name.eq_ignore_ascii_case(name));
    let missing = missing_tables(|table| find(table).is_some());
    if !missing.is_empty() {
        return Err(DbError::MissingTables {
            path: path.to_owned(),
            tables: missing,
        });
    }
    // A view (or a virtual table) in a table's place cannot take the
    // upsert, and is not what the application's migrations create.
    for name in REQUIRED_TABLES {
        if let Some(object) = find(name).filter(|o| o.kind != "table") {
            return Err(DbError::NotATable {
                path: path.to_owned(),
                name,
                kind: describe_kind(&object.kind),
            });
        }
    }
    let columns = org_columns(conn, path)?;
    check_columns(&columns, path)?;
    check_id_is_unique(conn, &columns, path)?;
    check_table_integrity(conn, path)?;
    let has = |name: &str| columns.iter().any(|c| c.name.eq_ignore_ascii_case(name));
    Ok(Some(Schema {
        missing_columns: missing_orm_columns(has),
        without_rowid: find(ORG_TABLE).is_some_and(|o| o.without_rowid),
    }))
}

fn describe_kind(kind: &str) -> &'static str {
    match kind {
        "view" => "a view",
        "virtual" => "a virtual table",
        "shadow" => "the shadow table of a virtual table",
        _ => "not an ordinary table",
    }
}

/// Every table and view but SQLite's own schema table. Names are read
/// lossily: a name that is not UTF-8 is no table of ours, and no reason to
/// fail.
fn schema_objects(conn: &Connection, path: &Path) -> Result<Vec<SchemaObject>, DbError> {
    let read = || -> rusqlite::Result<Vec<SchemaObject>> {
        let mut stmt = conn.prepare(
            "SELECT name, type, wr FROM pragma_table_list \
             WHERE schema = 'main' AND name NOT IN ('sqlite_schema', 'sqlite_master')",
        )?;
        stmt.query_map([], |row| {
            Ok(SchemaObject {
                name: lossy(row, 0)?,
                kind: lossy(row, 1)?,
                without_rowid: row.get::<_, i64>(2)? != 0,
            })
        })?
        .collect()
    };
    read().map_err(DbError::sqlite(path, "schema read"))
}

fn org_columns(conn: &Connection, path: &Path) -> Result<Vec<Column>, DbError> {
    let read = || -> rusqlite::Result<Vec<Column>> {
        let mut stmt = conn.prepare(&format!("PRAGMA table_info({ORG_TABLE})"))?;
        stmt.query_map([], |row| {
            Ok(Column {
                name: lossy(row, "name")?,
                declared: lossy(row, "type")?,
                primary_key: row.get::<_, i64>("pk")? > 0,
            })
        })?
        .collect()
    };
    read().map_err(DbError::sqlite(path, "schema read"))
}

/// Text from the schema, which SQLite does not check to be UTF-8 (or free
/// of control characters): lossy and escaped, ready for a message.
fn lossy<I: rusqlite::RowIndex>(row: &rusqlite::Row, index: I) -> rusqlite::Result<String> {
    let bytes = row.get_ref(index)?.as_bytes_or_null()?.unwrap_or_default();
    Ok(shown(&String::from_utf8_lossy(bytes)))
}

fn check_columns(columns: &[Column], path: &Path) -> Result<(), DbError> {
    let find = |name: &str| columns.iter().find(|c| c.name.eq_ignore_ascii_case(name));
    let missing = missing_required_columns(|name| find(name).is_some());
    if !missing.is_empty() {
        return Err(DbError::MissingColumns {
            path: path.to_owned(),
            table: ORG_TABLE,
            columns: missing,
        });
    }
    // An INTEGER id (a rowid alias when it is the primary key) takes no
    // text: the upsert of `mai_client_…` would fail with "datatype mismatch".
    if let Some(id) = find("id").filter(|c| has_integer_affinity(&c.declared)) {
        return Err(DbError::WrongColumn {
            path: path.to_owned(),
            table: ORG_TABLE,
            column: "id",
            declared: id.declared.clone(),
            problem: "which holds numbers, but organization ids are text (mai_client_…), and the \
                      application's migrations declare the column VARCHAR",
        });
    }
    for name in NUMERIC_ORG_COLUMNS {
        if let Some(column) = find(name).filter(|c| has_text_affinity(&c.declared)) {
            return Err(DbError::WrongColumn {
                path: path.to_owned(),
                table: ORG_TABLE,
                column: name,
                declared: column.declared.clone(),
                problem: "which stores numbers as text; the application needs INTEGER (or REAL for markup_rate)",
            });
        }
    }
    Ok(())
}

/// SQLite's affinity rules (section 3.1 of its datatype page): INT wins,
/// then CHAR, CLOB or TEXT make a column TEXT.
fn has_text_affinity(declared: &str) -> bool {
    let upper = declared.to_ascii_uppercase();
    !upper.contains("INT") && ["CHAR", "CLOB", "TEXT"].iter().any(|t| upper.contains(t))
}

/// SQLite's first affinity rule: a declared type containing INT.
fn has_integer_affinity(declared: &str) -> bool {
    declared.to_ascii_uppercase().contains("INT")
}

/// `ON CONFLICT(id)` needs a primary key or unique index on `id` alone.
fn check_id_is_unique(conn: &Connection, columns: &[Column], path: &Path) -> Result<(), DbError> {
    let pk: Vec<&Column> = columns.iter().filter(|c| c.primary_key).collect();
    if pk.len() == 1 && pk[0].name.eq_ignore_ascii_case("id") {
        return Ok(());
    }
    let unique_on_id = || -> rusqlite::Result<bool> {
        let mut stmt = conn.prepare(&format!(
            "SELECT count(*) FROM pragma_index_list('{ORG_TABLE}') AS l \
             WHERE l.\"unique\" = 1 AND l.partial = 0 \
             AND (SELECT count(*) FROM pragma_index_info(l.name)) = 1 \
             AND (SELECT name FROM pragma_index_info(l.name)) = 'id'"
        ))?;
        stmt.query_row([], |row| row.get::<_, i64>(0))
            .map(|n| n > 0)
    };
    if unique_on_id().map_err(DbError::sqlite(path, "schema read"))? {
        return Ok(());
    }
    Err(DbError::WrongColumn {
        path: path.to_owned(),
        table: ORG_TABLE,
        column: "id",
        declared: pk.first().map_or_else(String::new, |c| c.declared.clone()),
        problem: "but is neither the primary key nor unique, so rows cannot be matched by id",
    })
}

/// A check of the one table this job writes: cheap even in a large
/// database, and it catches a truncated or damaged file before a write.
fn check_table_integrity(conn: &Connection, path: &Path) -> Result<(), DbError> {
    let read = || -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare(&format!("PRAGMA quick_check({ORG_TABLE})"))?;
        stmt.query_map([], |row| lossy(row, 0))?.collect()
    };
    let problems = read().map_err(DbError::sqlite(path, "integrity check"))?;
    match problems.as_slice() {
        [ok] if ok == "ok" => Ok(()),
        _ => Err(DbError::Corrupt {
            path: path.to_owned(),
            detail: problems.join("; "),
        }),
    }
}

/// The statements that add the ORM columns `names` the table lacks, with
/// their names: mAI's own repair and its kin, the same SQL on SQLite and on
/// PostgreSQL. Adding a nullable column (or one with a constant default)
/// never rewrites or drops anything.
pub fn repair_statements(names: &[&'static str]) -> impl Iterator<Item = (&'static str, String)> {
    ORM_COLUMNS
        .iter()
        .filter(|c| names.contains(&c.name))
        .filter_map(|column| {
            let definition = column.repair?;
            let sql = format!(
                "ALTER TABLE {ORG_TABLE} ADD COLUMN {} {definition}",
                column.name
            );
            Some((column.name, sql))
        })
}

/// The tables usage tracking needs that `has_table` does not find.
pub fn missing_tables(has_table: impl Fn(&str) -> bool) -> Vec<&'static str> {
    REQUIRED_TABLES
        .into_iter()
        .filter(|table| !has_table(table))
        .collect()
}

/// The columns the job writes that `has_column` does not find: a table
/// without one of them is refused.
pub fn missing_required_columns(has_column: impl Fn(&str) -> bool) -> Vec<&'static str> {
    ORM_COLUMNS
        .iter()
        .filter(|c| c.repair.is_none() && !has_column(c.name))
        .map(|c| c.name)
        .collect()
}

/// The ORM columns `has_column` does not find, in `ORM_COLUMNS` order:
/// what `Schema::missing_columns` lists for the repair.
pub fn missing_orm_columns(has_column: impl Fn(&str) -> bool) -> Vec<&'static str> {
    ORM_COLUMNS
        .iter()
        .map(|c| c.name)
        .filter(|name| !has_column(name))
        .collect()
}

/// Add the ORM columns the table lacks.
pub fn add_columns(conn: &Connection, path: &Path, names: &[&'static str]) -> Result<(), DbError> {
    for (column, sql) in repair_statements(names) {
        // Refused by the schema (rarely: the checks above ran) is a data
        // error like a refused write.
        let doing = format!("to add the column {column} to {ORG_TABLE}");
        conn.execute_batch(&sql)
            .map_err(|e| refused(conn, path, "schema repair", doing, None)(e))?;
    }
    Ok(())
}

/// The start-up shape without its `alembic_version` marker: a standalone
/// database is not the application's to migrate, and claiming a revision
/// would make the application skip the migrations it does need.
pub fn create_standalone_schema(conn: &Connection, path: &Path) -> Result<(), DbError> {
    for statement in standalone_statements() {
        conn.execute_batch(statement)
            .map_err(DbError::sqlite(path, "schema creation"))?;
    }
    Ok(())
}

/// The fixture's statements (it has no `;` inside a literal or comment).
fn standalone_statements() -> impl Iterator<Item = &'static str> {
    STARTUP_SCHEMA
        .split_inclusive(';')
        .filter(|statement| !statement.contains("alembic_version"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(sql: &str) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(sql).unwrap();
        conn
    }

    const ALEMBIC: &str = include_str!("../../tests/fixtures/mai-alembic-schema.sql");
    const STARTUP: &str = include_str!("../../tests/fixtures/mai-startup-schema.sql");

    #[test]
    fn both_field_shapes_are_accepted() {
        let path = Path::new("x.db");
        let alembic = inspect(&db(ALEMBIC), path).unwrap().unwrap();
        assert_eq!(alembic.missing_columns, ["timezone"]);
        let startup = inspect(&db(STARTUP), path).unwrap().unwrap();
        assert_eq!(startup, Schema::default());
    }

    #[test]
    fn the_standalone_schema_is_the_startup_fixture_without_alembic() {
        let schema = |conn: &Connection| -> Vec<(String, String)> {
            conn.prepare(
                "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        let standalone = Connection::open_in_memory().unwrap();
        create_standalone_schema(&standalone, Path::new("x.db")).unwrap();
        let mut expected = schema(&db(STARTUP));
        expected.retain(|(name, _)| name != "alembic_version" && name != "alembic_version_pkc");
        assert_eq!(schema(&standalone), expected);
        assert!(expected.len() > 10, "the fixture lost its tables");
    }

    #[test]
    fn repairs_add_what_the_orm_reads_and_keep_the_rows() {
        let path = Path::new("x.db");
        let conn = db(ALEMBIC);
        conn.execute_batch(
            "INSERT INTO client_organizations (id, name, openrouter_api_key, created_at, updated_at) \
             VALUES ('a', 'A', 'k', 1, 2)",
        )
        .unwrap();
        let missing = inspect(&conn, path).unwrap().unwrap().missing_columns;
        add_columns(&conn, path, &missing).unwrap();
        assert_eq!(inspect(&conn, path).unwrap().unwrap(), Schema::default());
        let read: (String, String) = conn
            .query_row(
                &format!("SELECT {}, 'ok' FROM {ORG_TABLE}", orm_select_list()),
                [],
                |r| Ok((r.get("timezone")?, r.get(11)?)),
            )
            .unwrap();
        assert_eq!(read, ("Europe/Warsaw".to_owned(), "ok".to_owned()));
    }

    #[test]
    fn every_optional_orm_column_can_be_repaired() {
        let path = Path::new("x.db");
        let conn = db(&format!(
            "CREATE TABLE {ORG_TABLE} (id VARCHAR PRIMARY KEY, name VARCHAR, openrouter_api_key TEXT, \
             markup_rate FLOAT, is_active INTEGER, created_at BIGINT, updated_at BIGINT); \
             CREATE TABLE client_user_daily_usage (id TEXT); CREATE TABLE client_model_daily_usage (id TEXT);"
        ));
        let missing = inspect(&conn, path).unwrap().unwrap().missing_columns;
        assert_eq!(
            missing,
            [
                "openrouter_key_hash",
                "monthly_limit",
                "billing_email",
                "timezone"
            ]
        );
        add_columns(&conn, path, &missing).unwrap();
        conn.prepare(&format!("SELECT {} FROM {ORG_TABLE}", orm_select_list()))
            .unwrap();
    }

    #[test]
    fn an_empty_database_has_no_schema() {
        assert_eq!(inspect(&db(""), Path::new("x.db")).unwrap(), None);
    }

    #[test]
    fn missing_tables_are_named() {
        let err = inspect(
            &db("CREATE TABLE client_organizations (id TEXT PRIMARY KEY);"),
            Path::new("x.db"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("client_user_daily_usage, client_model_daily_usage"),
            "{text}"
        );
    }

    #[test]
    fn missing_and_text_columns_are_named() {
        let renamed = STARTUP.replace("markup_rate REAL DEFAULT 1.3", "markup REAL");
        let err = inspect(&db(&renamed), Path::new("x.db")).unwrap_err();
        assert!(
            matches!(&err, DbError::MissingColumns { columns, .. } if columns == &["markup_rate"]),
            "{err}"
        );
        let text_time = STARTUP.replace(
            "is_active INTEGER DEFAULT 1,\n    created_at INTEGER",
            "is_active INTEGER DEFAULT 1,\n    created_at TEXT",
        );
        let err = inspect(&db(&text_time), Path::new("x.db")).unwrap_err();
        assert!(
            matches!(
                &err,
                DbError::WrongColumn {
                    column: "created_at",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_non_unique_id_is_refused() {
        let loose = STARTUP.replace(
            "id TEXT PRIMARY KEY,\n    name TEXT NOT NULL,\n    openrouter_api_key",
            "id TEXT,\n    name TEXT NOT NULL,\n    openrouter_api_key",
        );
        assert_ne!(loose, STARTUP);
        let err = inspect(&db(&loose), Path::new("x.db")).unwrap_err();
        assert!(
            matches!(&err, DbError::WrongColumn { column: "id", .. }),
            "{err}"
        );
        let indexed = format!("{loose}\nCREATE UNIQUE INDEX org_id ON client_organizations(id);");
        assert!(inspect(&db(&indexed), Path::new("x.db")).is_ok());
    }

    #[test]
    fn affinity_follows_sqlite_rules() {
        assert!(has_text_affinity("VARCHAR"));
        assert!(has_text_affinity("text"));
        assert!(!has_text_affinity("BIGINT"));
        assert!(!has_text_affinity("FLOAT"));
        assert!(!has_text_affinity(""));
        assert!(!has_text_affinity("CHARINT"));
    }
}
