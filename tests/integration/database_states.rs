//! The database states that must stop the job: a schema that is not the
//! application's, a file that is not a database, a key or an id that
//! belongs to someone else. Each leaves every file byte for byte as it was
//! (and a PostgreSQL database row for row, `xmin` included). The schema and
//! key cases run on both databases.

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
    for (backend, shape) in backends_and_shapes("missing table") {
        let sandbox = Sandbox::with_shape_on(backend, shape);
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

/// The application has begun to migrate (its version table exists) but
/// has not created its tables: the advice is to let it finish.
#[test]
fn a_database_the_application_has_not_migrated_is_named() {
    let sandbox = Sandbox::new();
    sandbox.sql("CREATE TABLE alembic_version (version_num TEXT);");
    refused(&sandbox, 65, &[], &["client_organizations"]).assert_last_line_mentions(&[
        &sandbox.db_path().display().to_string(),
        "has no table client_organizations",
        "Let the mAI application run its migrations first",
    ]);
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
    for (backend, shape) in backends_and_shapes("renamed column") {
        let sandbox = Sandbox::with_shape_on(backend, shape);
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
fn a_key_held_by_another_organization_names_it() {
    for (backend, shape) in backends_and_shapes("key conflict") {
        let sandbox = Sandbox::with_shape_on(backend, shape);
        sandbox.sql(&format!(
            "INSERT INTO client_organizations (id, name, openrouter_api_key, is_active, created_at, updated_at) \
             VALUES ('mai_client_other', 'Other Corp', '{KEY}', 1, 5, 6)"
        ));
        refused(
            &sandbox,
            65,
            &[],
            &["Other Corp", "mai_client_other", "own key"],
        )
        .assert_last_line_mentions(&[
            "already used by organization \"Other Corp\" (id mai_client_other)",
            "Give this organization its own key",
        ]);
    }
}

/// The `.env` links the deployment to an id that is not the name's: one
/// it got elsewhere, or the old name's after a rename. The message names
/// the `.env`, its id and how to keep that id's usage history.
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
    )
    .assert_last_line_mentions(&[
        &sandbox.env_path().display().to_string(),
        "links this deployment to organization id mai_client_deadbeef",
        "keep its usage history by setting OPENROUTER_EXTERNAL_USER=mai_client_deadbeef",
    ]);

    // Renamed after a first run.
    let sandbox = Sandbox::new();
    sandbox.run(&[]).expect(0);
    let mut cmd = sandbox.command();
    cmd.env("ORGANIZATION_NAME", "Acme Sp. z o.o.");
    refused_by(&sandbox, cmd, "renamed", 65, &[]).assert_last_line_mentions(&[
        &sandbox.env_path().display().to_string(),
        &format!("links this deployment to organization id {ACME_ID}"),
        &format!("keep its usage history by setting OPENROUTER_EXTERNAL_USER={ACME_ID}"),
    ]);
}

/// After a rename with the same key, starting a new id would only hit a
/// key conflict: the refusal offers the way that works.
#[test]
fn a_rename_with_the_same_key_offers_only_what_works() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.run(&["--production"]).expect(0);
    let new_id = mai_provision::identity::derive("Acme Sp. z o.o.");
    let mut cmd = sandbox.command();
    cmd.args(["--production"])
        .env("ORGANIZATION_NAME", "Acme Sp. z o.o.");
    let run = refused_by(&sandbox, cmd, "renamed, same key", 65, &[]);
    run.assert_last_line_mentions(&[
        &format!("OPENROUTER_EXTERNAL_USER={ACME_ID}"),
        "needs its own OpenRouter key",
    ]);
    assert!(
        !run.stderr
            .contains(&format!("OPENROUTER_EXTERNAL_USER={new_id}")),
        "{}",
        run.stderr
    );
    // With another key, the new id is a real way out, and offered.
    let mut cmd = sandbox.command();
    cmd.args(["--production"])
        .env("ORGANIZATION_NAME", "Acme Sp. z o.o.")
        .env("OPENROUTER_API_KEY", OTHER_KEY);
    refused_by(&sandbox, cmd, "renamed, new key", 65, &[])
        .assert_last_line_mentions(&[&format!("OPENROUTER_EXTERNAL_USER={new_id}")]);
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
