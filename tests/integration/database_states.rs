//! The database states that must stop the job: a schema that is not the
//! application's, a file that is not a database, a key or an id that
//! belongs to someone else. Each leaves every file byte for byte as it was.

use std::fs;

use crate::common::*;

/// Run with `--production`, expect `code`, and check nothing changed.
#[track_caller]
fn refused(sandbox: &Sandbox, code: i32, vars: &[(&str, &str)], mentions: &[&str]) -> Run {
    let mut cmd = sandbox.command();
    cmd.arg("--production").envs(vars.iter().copied());
    refused_by(sandbox, cmd, "a refused run", code, mentions)
}

#[test]
fn a_missing_usage_table_is_named() {
    for shape in SHAPES {
        let sandbox = Sandbox::with_shape(shape);
        sandbox.sql("DROP TABLE client_model_daily_usage;");
        sandbox.write_env("KEEP=1\n");
        refused(
            &sandbox,
            65,
            &[],
            &["client_model_daily_usage", "migrations"],
        );
    }
}

#[test]
fn a_database_of_other_tables_only_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.sql("CREATE TABLE user (id TEXT PRIMARY KEY); INSERT INTO user VALUES ('u1');");
    refused(
        &sandbox,
        65,
        &[("CREATE_SCHEMA", "true")],
        &["client_organizations"],
    );
}

#[test]
fn a_renamed_column_is_named() {
    for shape in SHAPES {
        let sandbox = Sandbox::with_shape(shape);
        sandbox.sql("ALTER TABLE client_organizations RENAME COLUMN markup_rate TO markup;");
        refused(&sandbox, 65, &[], &["client_organizations", "markup_rate"]);
    }
}

#[test]
fn a_text_timestamp_column_is_refused() {
    let sql = STARTUP_SQL.replace(
        "is_active INTEGER DEFAULT 1,\n    created_at INTEGER NOT NULL",
        "is_active INTEGER DEFAULT 1,\n    created_at TEXT NOT NULL",
    );
    assert_ne!(sql, STARTUP_SQL, "the fixture changed; update this test");
    let sandbox = Sandbox::new();
    sandbox.sql(&sql);
    refused(&sandbox, 65, &[], &["created_at", "TEXT"]);
}

#[test]
fn random_bytes_are_not_a_database() {
    let sandbox = Sandbox::new();
    let noise: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(sandbox.db_path(), noise).unwrap();
    refused(&sandbox, 65, &[], &["not a SQLite database"]);
}

#[test]
fn a_truncated_database_is_refused() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    // Fill the table past one page so that truncation cuts into it.
    sandbox.sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) \
         INSERT INTO client_organizations (id, name, openrouter_api_key, is_active, created_at, updated_at) \
         SELECT 'org' || i, 'Org ' || i, 'sk-or-v1-k' || i, 0, 1, 1 FROM n;",
    );
    let bytes = fs::read(sandbox.db_path()).unwrap();
    fs::write(sandbox.db_path(), &bytes[..bytes.len() / 2]).unwrap();
    let run = refused(&sandbox, 65, &[], &["webui.db"]);
    assert!(
        run.output().contains("corrupt") || run.output().contains("malformed"),
        "{}",
        run.output()
    );
}

#[test]
fn a_directory_where_the_database_should_be_is_refused() {
    let sandbox = Sandbox::new();
    fs::create_dir(sandbox.db_path()).unwrap();
    refused(&sandbox, 65, &[], &["is a directory"]);
}

#[test]
fn a_key_held_by_another_organization_names_it() {
    for shape in SHAPES {
        let sandbox = Sandbox::with_shape(shape);
        sandbox.sql(&format!(
            "INSERT INTO client_organizations (id, name, openrouter_api_key, is_active, created_at, updated_at) \
             VALUES ('mai_client_other', 'Other Corp', '{KEY}', 1, 5, 6)"
        ));
        refused(
            &sandbox,
            65,
            &[],
            &["Other Corp", "mai_client_other", "own key"],
        );
    }
}

#[test]
fn another_id_in_the_env_is_an_identity_mismatch() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.write_env("OPENROUTER_EXTERNAL_USER=mai_client_deadbeef\nORGANIZATION_NAME=Acme\n");
    refused(
        &sandbox,
        65,
        &[],
        &[
            "mai_client_deadbeef",
            ACME_ID,
            "OPENROUTER_EXTERNAL_USER=mai_client_deadbeef",
        ],
    );
}

#[test]
fn an_explicit_id_confirms_a_change_of_id() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.write_env("OPENROUTER_EXTERNAL_USER=mai_client_deadbeef\n");
    sandbox
        .run_with(
            &["--production"],
            &[("OPENROUTER_EXTERNAL_USER", "mai_client_deadbeef")],
        )
        .expect(0);
    assert_eq!(sandbox.rows()[0].id, "mai_client_deadbeef");
    assert_eq!(
        python_dotenv(&sandbox.env_path())["OPENROUTER_EXTERNAL_USER"],
        "mai_client_deadbeef"
    );
}

#[test]
fn the_same_id_under_another_name_is_a_rename_to_confirm() {
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    sandbox.sql(&format!(
        "INSERT INTO client_organizations (id, name, openrouter_api_key, is_active, created_at, updated_at) \
         VALUES ('{ACME_ID}', 'Acme Old Name', '{KEY}', 1, 5, 6)"
    ));
    refused(
        &sandbox,
        65,
        &[],
        &[
            "Acme Old Name",
            &format!("OPENROUTER_EXTERNAL_USER={ACME_ID}"),
        ],
    );

    // The operator confirms by naming the id: the row is renamed, its history kept.
    sandbox
        .run_with(&["--production"], &[("OPENROUTER_EXTERNAL_USER", ACME_ID)])
        .expect(0);
    let row = sandbox.row(ACME_ID);
    assert_eq!(row.name, NAME);
    assert_eq!(row.created_at, rusqlite::types::Value::Integer(5));
}

#[test]
fn a_read_only_database_is_a_permission_error() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::with_shape(Shape::Startup);
    let probe = sandbox.path().join("unreadable");
    fs::write(&probe, "x").unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(sandbox.db_path(), fs::Permissions::from_mode(0o444)).unwrap();
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    let Some(cmd) = without_dac_override(cmd, probe.to_str().unwrap()) else {
        return;
    };
    fs::remove_file(&probe).unwrap();
    refused_by(
        &sandbox,
        cmd,
        "a read-only database",
        77,
        &["read-only", "webui.db"],
    );
}

#[test]
fn a_data_dir_that_is_a_file_is_a_configuration_error() {
    let sandbox = Sandbox::new();
    fs::remove_dir(sandbox.data_dir()).unwrap();
    fs::write(sandbox.data_dir(), "not a dir").unwrap();
    refused(&sandbox, 78, &[], &["DATA_DIR", "not a directory"]);
}
