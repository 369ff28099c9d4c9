//! Bad data inside a real database: what SQLite can hand the job besides
//! what the application writes. Text that is not UTF-8, a BLOB or a number
//! where text belongs, an unusable markup, an INTEGER id column, a WITHOUT
//! ROWID table, views in a table's place, and triggers, constraints and
//! foreign keys that refuse or swallow the write. Each is a data error
//! (65) whose message names the table, the column and the row (never a key
//! value), with nothing changed, or it simply works. Never an internal
//! error (70).
//!
//! Other organizations' rows matter only where they conflict with ours or
//! appear in a warning: there they are shown lossily and escaped.

use crate::common::*;
use rusqlite::types::Value;

const DATA: i32 = 65;

/// What the job's messages show for this organization's row.
const ROW: &str = "\"mai_client_79d89452\"";

/// A `--production` run of `sandbox`, refused with 65 and nothing changed.
#[track_caller]
fn refused(sandbox: &Sandbox, case: &str, needles: &[&str]) -> Run {
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    let run = refused_by(sandbox, cmd, case, DATA, needles);
    assert_clean(&run, case);
    run
}

/// No internal error, no raw control character, no key: whatever the
/// database held.
#[track_caller]
fn assert_clean(run: &Run, case: &str) {
    let out = run.output();
    assert!(
        !out.contains("internal error") && !out.contains("report a bug"),
        "{case}: reported as a bug:\n{out}"
    );
    assert!(
        !out.chars().any(|c| c.is_control() && c != '\n'),
        "{case}: a control character reached the output:\n{out:?}"
    );
}

/// A migrated database (start-up shape) with `sql` applied, and a `.env`.
fn database_with(sql: &str) -> Sandbox {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.sql(sql);
    sandbox.write_env(&existing_env());
    sandbox
}

/// This organization's row, as the application registered it, with
/// `column` set to the SQL expression `value`.
fn our_row_with(column: &str, value: &str) -> String {
    format!(
        "{}; UPDATE client_organizations SET {column} = {value} WHERE id = '{ACME_ID}';",
        seed_row_sql()
    )
}

/// A column of our row, as stored.
fn ours(sandbox: &Sandbox, column: &str) -> Value {
    sandbox
        .db()
        .query_row(
            &format!("SELECT {column} FROM client_organizations WHERE id = ?1"),
            [ACME_ID],
            |r| r.get(0),
        )
        .unwrap()
}

/// SQLite's `typeof()` of a column of our row.
fn stored_type(sandbox: &Sandbox, column: &str) -> String {
    sandbox
        .db()
        .query_row(
            &format!("SELECT typeof({column}) FROM client_organizations WHERE id = ?1"),
            [ACME_ID],
            |r| r.get(0),
        )
        .unwrap()
}

// ------------------------------------------------------------- not UTF-8

/// Text that is not UTF-8 in any column of this organization's row: the
/// application's driver cannot read the row, and the job cannot compare
/// it. Before, every one of these was an internal error (70).
#[test]
fn text_that_is_not_utf8_in_our_row_is_a_data_error() {
    for column in [
        "name",
        "openrouter_api_key",
        "openrouter_key_hash",
        "billing_email",
        "timezone",
        "markup_rate",
        "created_at",
    ] {
        let sandbox = database_with(&our_row_with(column, "CAST(X'41ff6d65' AS TEXT)"));
        refused(
            &sandbox,
            &format!("{column} not UTF-8"),
            &[
                "webui.db",
                "client_organizations",
                ROW,
                &format!("not valid UTF-8 in its column {column}"),
                "Correct that value",
            ],
        );
    }
}

/// Other organizations' rows are not ours to read in full: bad text in
/// them stops nothing, and where a warning shows them, it shows them
/// lossily (U+FFFD) and escaped.
#[test]
fn text_that_is_not_utf8_in_other_rows_does_not_stop_the_run() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.sql(
        "INSERT INTO client_organizations \
         (id, name, openrouter_api_key, billing_email, timezone, is_active, created_at, updated_at) VALUES \
         (CAST(X'6f7468657231ff' AS TEXT), CAST(X'4f7468ff' AS TEXT), 'sk-or-v1-other1', \
          CAST(X'ff' AS TEXT), CAST(X'ff' AS TEXT), 1, 5, 6), \
         ('other2', 'Other 2', CAST(X'736bff' AS TEXT), NULL, NULL, 0, 5, 6);",
    );
    let run = sandbox.run(&["--production"]);
    run.expect(0)
        .assert_mentions(&["other active organizations", "other1\u{fffd}"]);
    assert_clean(&run, "bad text in other rows");
    assert_eq!(
        ours(&sandbox, "openrouter_api_key"),
        Value::Text(KEY.into())
    );
    // The next run agrees that nothing is left to do.
    sandbox.run(&["--production", "--check"]).expect(0);
}

/// The row that holds our key is a conflict the message must name, even
/// when its id and name are not UTF-8: shown lossily, not a failure to read.
#[test]
fn text_that_is_not_utf8_in_the_row_holding_our_key_is_shown_lossily() {
    let sandbox = database_with(&format!(
        "INSERT INTO client_organizations (id, name, openrouter_api_key, created_at, updated_at) \
         VALUES (CAST(X'6f7468ff' AS TEXT), CAST(X'4f7468ff' AS TEXT), '{KEY}', 5, 6);"
    ));
    refused(
        &sandbox,
        "our key in a row that is not UTF-8",
        &["already used by organization", "oth\u{fffd}", "own key"],
    );
}

// --------------------------------------------------- values of another type

/// A BLOB (or a number) where the application reads text: the job writes
/// those columns again, as text, and the row verifies. Before, a BLOB
/// name or key that equalled the configured one passed the plan and failed
/// the verification (70).
#[test]
fn values_the_application_does_not_read_as_text_are_written_again() {
    for (column, value) in [
        ("name", "CAST('Acme' AS BLOB)".to_owned()),
        ("openrouter_api_key", format!("CAST('{KEY}' AS BLOB)")),
        ("openrouter_key_hash", "X'00ff'".to_owned()),
    ] {
        let sandbox = database_with(&our_row_with(column, &value));
        let run = sandbox.run(&["--production"]);
        run.expect(0).assert_mentions(&[column, "verified"]);
        assert_eq!(
            stored_type(&sandbox, column),
            if column == "openrouter_key_hash" {
                "null"
            } else {
                "text"
            },
            "{column}"
        );
        sandbox.run(&["--production", "--check"]).expect(0);
    }
}

/// In a table that declares no types (any value fits any column): numbers
/// and numeric text where the application reads numbers and text are
/// repaired to what it reads, and the row verifies.
#[test]
fn a_row_in_an_untyped_table_is_repaired_to_the_applications_types() {
    let sandbox = Sandbox::new();
    sandbox.sql(&format!(
        "CREATE TABLE client_organizations (id TEXT PRIMARY KEY, name, openrouter_api_key UNIQUE, \
         openrouter_key_hash, markup_rate, monthly_limit, billing_email, timezone, is_active, created_at, \
         updated_at); \
         CREATE TABLE client_user_daily_usage (id TEXT); CREATE TABLE client_model_daily_usage (id TEXT); \
         INSERT INTO client_organizations (id, name, openrouter_api_key, openrouter_key_hash, markup_rate, \
         is_active, created_at, updated_at) \
         VALUES ('{ACME_ID}', 'Acme', '{KEY}', 42, ' 1.5', '1', 1.5e9, '2000');"
    ));
    sandbox.run(&["--production"]).expect(0);
    let row = sandbox.row(ACME_ID);
    assert_eq!(row.markup_rate, Value::Real(1.5));
    assert_eq!(row.is_active, Value::Integer(1));
    assert_eq!(row.created_at, Value::Integer(1_500_000_000));
    assert!(matches!(row.updated_at, Value::Integer(_)));
    assert_eq!(stored_type(&sandbox, "openrouter_key_hash"), "null");
    sandbox.run(&["--production", "--check"]).expect(0);
}

/// The application bills with the markup: one it cannot use (zero,
/// negative, infinite, not a number) is not silently replaced by the
/// default. The job refuses, naming it, until MARKUP_RATE says what it is.
/// Before, most of these failed the verification (70).
#[test]
fn an_unusable_markup_rate_is_a_data_error_until_markup_rate_is_set() {
    for (value, shown) in [
        ("0", "holds 0 "),
        ("-2", "holds -2 "),
        ("1e999", "holds inf "),
        ("'inf'", "the text \\\"inf\\\""),
        ("'1,3'", "the text \\\"1,3\\\""),
        ("X'00'", "a BLOB"),
    ] {
        let sandbox = database_with(&our_row_with("markup_rate", value));
        let run = refused(
            &sandbox,
            &format!("markup_rate {value}"),
            &[
                "client_organizations",
                ROW,
                "in its column markup_rate",
                "Set MARKUP_RATE",
            ],
        );
        let shown = shown.replace("\\\"", "\"");
        assert!(run.output().contains(&shown), "{value}: {}", run.output());
        sandbox
            .run_with(&["--production"], &[("MARKUP_RATE", "1.5")])
            .expect(0);
        assert_eq!(sandbox.row(ACME_ID).markup_rate, Value::Real(1.5));
    }
}

// ------------------------------------------------------------ the schema

/// An INTEGER id column takes no `mai_client_…` (as the primary key it is
/// the rowid: "datatype mismatch", which was an internal error).
#[test]
fn an_integer_id_column_is_refused() {
    for declared in ["INTEGER PRIMARY KEY", "INT PRIMARY KEY", "BIGINT UNIQUE"] {
        let sandbox = Sandbox::new();
        sandbox.write_env(&existing_env());
        sandbox.sql(&startup_edited(
            "id TEXT PRIMARY KEY,\n    name TEXT NOT NULL,\n    openrouter_api_key",
            &format!("id {declared},\n    name TEXT NOT NULL,\n    openrouter_api_key"),
        ));
        refused(
            &sandbox,
            &format!("id {declared}"),
            &["client_organizations.id", "holds numbers", "ids are text"],
        );
    }
}

/// A WITHOUT ROWID table has no `rowid` to order by (the job used to fail
/// on "no such column: rowid", 70). Its rows come in primary key order,
/// which is what the application's unordered reads see.
#[test]
fn a_without_rowid_table_works() {
    let sandbox = Sandbox::new();
    sandbox.sql(&startup_edited(
        "    created_at INTEGER NOT NULL,\n    updated_at INTEGER NOT NULL\n);\nCREATE TABLE IF NOT EXISTS user_client_mapping",
        "    created_at INTEGER NOT NULL,\n    updated_at INTEGER NOT NULL\n) WITHOUT ROWID;\nCREATE TABLE IF NOT EXISTS user_client_mapping",
    ));
    let without_rowid: i64 = sandbox
        .db()
        .query_row(
            "SELECT wr FROM pragma_table_list('client_organizations')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(without_rowid, 1, "the fixture edit did not apply");
    sandbox.sql(
        "INSERT INTO client_organizations (id, name, openrouter_api_key, is_active, created_at, updated_at) \
         VALUES ('b_other', 'B', 'sk-or-v1-b', 1, 5, 6), ('a_other', 'A', 'sk-or-v1-a', 1, 5, 6);",
    );
    let run = sandbox.run(&["--production"]);
    run.expect(0)
        .assert_mentions(&["other active organizations", "it shows a_other"]);
    assert_eq!(
        ours(&sandbox, "openrouter_api_key"),
        Value::Text(KEY.into())
    );
    sandbox.run(&["--production", "--check"]).expect(0);
}

/// A view where the application has a table: the upsert cannot write
/// through it, and it is not the application's schema. Named as a view,
/// not reported as a missing table (whose advice, "let the application
/// migrate", would not help).
#[test]
fn a_view_in_place_of_a_table_is_refused() {
    for (table, sql) in [
        (
            "client_organizations",
            "ALTER TABLE client_organizations RENAME TO organizations_real; \
             CREATE VIEW client_organizations AS SELECT * FROM organizations_real;",
        ),
        (
            "client_user_daily_usage",
            "DROP TABLE client_user_daily_usage; \
             CREATE VIEW client_user_daily_usage AS SELECT * FROM client_daily_usage;",
        ),
    ] {
        let sandbox = database_with(sql);
        refused(
            &sandbox,
            &format!("{table} is a view"),
            &[table, "is a view, not a table", "webui.db"],
        );
    }
}

// ------------------------------------------- what refuses or swallows a write

/// A trigger whose body writes to a table that does not exist: SQLITE_ERROR
/// on the insert, on the update, and (on the migration's shape, where the
/// job adds `timezone`) on the ALTER TABLE, which checks every trigger.
#[test]
fn a_trigger_that_writes_to_a_missing_table_is_refused() {
    let trigger = |event: &str| {
        format!(
            "CREATE TRIGGER audit_{event} AFTER {event} ON client_organizations \
             BEGIN INSERT INTO audit_log VALUES (new.id); END;"
        )
    };
    // Insert: no row yet.
    let sandbox = database_with(&trigger("INSERT"));
    refused(
        &sandbox,
        "trigger on insert",
        &[
            "refused to write organization",
            ROW,
            "client_organizations",
            "no such table: main.audit_log",
            "has triggers: audit_INSERT",
        ],
    );
    // Update: the application registered the row with another key.
    let sandbox = deployment();
    sandbox.sql(&trigger("UPDATE"));
    refused(
        &sandbox,
        "trigger on update",
        &[ROW, "no such table: main.audit_log", "audit_UPDATE"],
    );
    // Names that carry control characters reach the message escaped.
    let sandbox = database_with(
        "CREATE TRIGGER \"evil\u{1b}[2J\" AFTER INSERT ON client_organizations \
         BEGIN INSERT INTO \"gone\nFAKE 2026 INFO all good\" VALUES (new.id); END;",
    );
    refused(
        &sandbox,
        "hostile names in the trigger",
        &[ROW, "evil\\u{1b}[2J", "gone\\nFAKE"],
    );
    // On the migration's shape the job adds `timezone` first, in the same
    // transaction: refused, the repair is rolled back with the write.
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    sandbox.write_env(&existing_env());
    sandbox.sql(&trigger("UPDATE"));
    refused(
        &sandbox,
        "trigger and the timezone repair",
        &[ROW, "audit_UPDATE", "no such table: main.audit_log"],
    );
}

/// A trigger that aborts the write (RAISE ABORT, FAIL or ROLLBACK), a
/// NOT NULL column the application does not have: the database's own
/// words are passed on, and a message that quotes the key is not.
#[test]
fn a_constraint_or_trigger_that_refuses_the_write_is_a_data_error() {
    for (sql, says) in [
        (
            "CREATE TRIGGER no_abort BEFORE INSERT ON client_organizations \
             BEGIN SELECT RAISE(ABORT, 'organizations are frozen'); END;",
            "organizations are frozen",
        ),
        (
            "CREATE TRIGGER no_fail BEFORE INSERT ON client_organizations \
             BEGIN SELECT RAISE(FAIL, 'frozen too'); END;",
            "frozen too",
        ),
        (
            "CREATE TRIGGER no_rollback BEFORE INSERT ON client_organizations \
             BEGIN SELECT RAISE(ROLLBACK, 'rolled back'); END;",
            "rolled back",
        ),
        (
            "DROP TABLE client_organizations; \
             CREATE TABLE client_organizations (id TEXT PRIMARY KEY, name TEXT NOT NULL, \
             openrouter_api_key TEXT NOT NULL UNIQUE, openrouter_key_hash TEXT, markup_rate REAL, \
             monthly_limit REAL, billing_email TEXT, timezone TEXT, is_active INTEGER, \
             created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, region TEXT NOT NULL);",
            "NOT NULL constraint failed: client_organizations.region",
        ),
    ] {
        let sandbox = database_with(sql);
        refused(&sandbox, says, &[ROW, "client_organizations", says]);
    }
    // A trigger that quotes the key in its message (the bundled SQLite
    // takes an expression in RAISE).
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.write_env(&existing_env());
    sandbox.sql(
        "CREATE TRIGGER quoting BEFORE INSERT ON client_organizations \
         BEGIN SELECT RAISE(ABORT, 'refused key ' || new.openrouter_api_key); END;",
    );
    let run = refused(
        &sandbox,
        "a trigger quoting the key",
        &[ROW, "refused key sk-or-v1-…sha256:"],
    );
    run.assert_no_secret();
}

/// A trigger that silently drops the write (RAISE(IGNORE)): before, a
/// `--init-database` run reported "row inserted" and exited 0 with no row,
/// and `--production` failed its verification (70).
#[test]
fn a_trigger_that_ignores_the_write_is_refused() {
    for (event, mode) in [
        ("INSERT", "--init-database"),
        ("INSERT", "--production"),
        ("UPDATE", "--init-database"),
    ] {
        let sandbox = Sandbox::with_shape(Shape::Startup);
        if event == "UPDATE" {
            seed_row(&sandbox);
        }
        sandbox.write_env(&existing_env());
        sandbox.sql(&format!(
            "CREATE TRIGGER swallow BEFORE {event} ON client_organizations BEGIN SELECT RAISE(IGNORE); END;"
        ));
        let mut cmd = sandbox.command();
        cmd.arg(mode);
        let case = format!("RAISE(IGNORE) on {event}, {mode}");
        let run = refused_by(
            &sandbox,
            cmd,
            &case,
            DATA,
            &[
                "ignored the write of organization",
                ROW,
                "RAISE(IGNORE)",
                "has triggers: swallow",
            ],
        );
        assert_clean(&run, &case);
    }
}

/// Foreign keys the application's table does not have: to a table that
/// does not exist (SQLITE_ERROR), to a row that does not exist
/// (SQLITE_CONSTRAINT_FOREIGNKEY), and a child table whose key points at a
/// column that is not unique ("foreign key mismatch").
#[test]
fn a_foreign_key_that_fails_is_refused() {
    let with_column = |definition: &str| {
        startup_edited(
            "    updated_at INTEGER NOT NULL\n);\nCREATE TABLE IF NOT EXISTS user_client_mapping",
            &format!(
                "    updated_at INTEGER NOT NULL,\n    {definition}\n);\nCREATE TABLE IF NOT EXISTS user_client_mapping"
            ),
        )
    };
    for (sql, says) in [
        (
            with_column("parent TEXT DEFAULT 'p' REFERENCES nowhere(id)"),
            "no such table: main.nowhere",
        ),
        (
            format!(
                "CREATE TABLE regions (id TEXT PRIMARY KEY);\n{}",
                with_column("region TEXT DEFAULT 'eu' REFERENCES regions(id)")
            ),
            "FOREIGN KEY constraint failed",
        ),
    ] {
        let sandbox = Sandbox::new();
        sandbox.write_env(&existing_env());
        sandbox.sql(&sql);
        refused(
            &sandbox,
            says,
            &[ROW, "client_organizations", says, "has foreign keys:"],
        );
    }
    // A rename the operator confirms updates `name`, which a child table
    // points at without a unique index.
    let sandbox = deployment();
    sandbox.sql(&format!(
        "UPDATE client_organizations SET name = 'Acme Old' WHERE id = '{ACME_ID}'; \
         CREATE TABLE invoices (id TEXT PRIMARY KEY, org_name TEXT \
         REFERENCES client_organizations(name));"
    ));
    let mut cmd = sandbox.command();
    cmd.arg("--production")
        .env("OPENROUTER_EXTERNAL_USER", ACME_ID);
    let run = refused_by(
        &sandbox,
        cmd,
        "foreign key mismatch",
        DATA,
        &[ROW, "foreign key mismatch", "invoices"],
    );
    assert_clean(&run, "foreign key mismatch");
}

/// Virtual tables whose modules the job's SQLite leaves out (full-text
/// search and R*Tree, `.cargo/config.toml`), made by Python's sqlite3, which
/// has them. SQLite needs a module only when a statement touches its table:
/// the job repairs the schema and provisions, its next run changes nothing,
/// and the tables still read back in Python.
#[test]
fn virtual_tables_the_jobs_sqlite_leaves_out_do_not_stop_it() {
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    sandbox.write_env(&existing_env());
    let db = sandbox.db_path();
    python_sqlite(
        &db,
        &[
            "CREATE VIRTUAL TABLE chat_search USING fts5(title, body)",
            "INSERT INTO chat_search VALUES ('greeting', 'hello world')",
            "CREATE VIRTUAL TABLE regions USING rtree(id, min_x, max_x)",
            "INSERT INTO regions VALUES (1, 0.0, 1.0)",
        ],
    );
    let run = sandbox.run(&["--production"]);
    run.expect(0)
        .assert_mentions(&["column timezone added", "verified"]);
    assert_eq!(
        ours(&sandbox, "openrouter_api_key"),
        Value::Text(KEY.into())
    );
    let applied = sandbox.snapshot();
    sandbox.run(&["--production", "--check"]).expect(0);
    sandbox.run(&["--production"]).expect(0);
    applied.assert_same(&sandbox.snapshot(), "the run after provisioning");
    assert_eq!(
        python_sqlite(
            &db,
            &[
                "SELECT body FROM chat_search WHERE chat_search MATCH 'hello'",
                "SELECT count(*) FROM regions",
                "PRAGMA integrity_check",
            ],
        ),
        "hello world\n1\nok\n"
    );
}

/// Runs `statements` on `db` with Python's sqlite3 (Debian's SQLite, with
/// every module) and commits; returns the rows they give, a line each.
fn python_sqlite(db: &std::path::Path, statements: &[&str]) -> String {
    let script = "import sqlite3, sys\n\
                  c = sqlite3.connect(sys.argv[1])\n\
                  for statement in sys.argv[2:]:\n\
                  \x20   for row in c.execute(statement):\n\
                  \x20       print('|'.join(str(v) for v in row))\n\
                  c.commit()\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .args(statements)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "Python's sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 from Python")
}

/// The start-up fixture with `from` replaced by `to`; the edit must apply.
fn startup_edited(from: &str, to: &str) -> String {
    assert!(
        STARTUP_SQL.contains(from),
        "the fixture no longer holds {from:?}"
    );
    STARTUP_SQL.replace(from, to)
}
