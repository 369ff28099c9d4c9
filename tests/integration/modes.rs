//! Every mode on both field shapes, the first-boot states, and idempotency:
//! the built binary against real SQLite files and real PostgreSQL
//! databases (each case runs on every backend).

use crate::common::*;
use rusqlite::types::Value;

#[test]
fn env_mode_writes_only_the_env() {
    for (backend, shape) in backends_and_shapes("env mode") {
        let sandbox = Sandbox::with_shape_on(backend, shape);
        let db_state = sandbox.db_state();
        sandbox.run(&[]).expect(0);
        assert_eq!(
            sandbox.db_state(),
            db_state,
            "{backend:?} {shape:?}: env mode touched the database"
        );
        assert!(sandbox.rows().is_empty());
        let values = python_dotenv(&sandbox.env_path());
        assert_eq!(values["OPENROUTER_EXTERNAL_USER"], ACME_ID);
        assert_eq!(values["OPENROUTER_API_KEY"], KEY);
    }
}

#[test]
fn provision_mode_env_variable_selects_the_mode_and_a_flag_wins() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox
        .run_with(&[], &[("PROVISION_MODE", "env")])
        .expect(0);
    assert!(sandbox.rows().is_empty());
    sandbox
        .run_with(&["--init-database"], &[("PROVISION_MODE", "env")])
        .expect(0);
    assert_eq!(sandbox.rows().len(), 1);

    let other = Sandbox::with_shape(Shape::Alembic);
    other
        .run_with(&[], &[("PROVISION_MODE", "database")])
        .expect(0);
    assert_eq!(other.rows().len(), 1);
}

#[test]
fn database_and_production_modes_insert_the_row_on_both_shapes() {
    for (backend, shape) in backends_and_shapes("modes insert") {
        for flag in ["--init-database", "--production"] {
            let sandbox = Sandbox::with_shape_on(backend, shape);
            let run = sandbox.run(&[flag]);
            run.expect(0);
            let rows = sandbox.rows();
            assert_eq!(rows.len(), 1, "{backend:?} {shape:?} {flag}");
            let row = &rows[0];
            assert_eq!(row.id, ACME_ID);
            assert_eq!(row.name, NAME);
            assert_eq!(row.api_key, KEY);
            assert_eq!(row.markup_rate, Value::Real(1.3));
            assert_eq!(row.is_active, Value::Integer(1));
            assert!(
                matches!(row.created_at, Value::Integer(t) if t > 1_700_000_000),
                "{row:?}"
            );
            assert_eq!(row.created_at, row.updated_at);
            let values = python_dotenv(&sandbox.env_path());
            assert_eq!(values["OPENROUTER_EXTERNAL_USER"], row.id);
            if flag == "--production" {
                assert!(run.stderr.contains("verified"), "{}", run.stderr);
            }
        }
    }
}

#[test]
fn every_column_the_application_reads_is_written_or_added() {
    for (backend, shape) in backends_and_shapes("ORM columns") {
        let sandbox = Sandbox::with_shape_on(backend, shape);
        sandbox.run(&["--production"]).expect(0);
        let cells = sandbox.cells("SELECT openrouter_key_hash, timezone FROM client_organizations");
        // OpenRouter's identifier of a key given by the operator is not
        // known; the application's own initializer writes NULL too.
        assert_eq!(
            cells,
            [[None, Some("Europe/Warsaw".to_owned())]],
            "{backend:?} {shape:?}"
        );
    }
}

#[test]
fn a_second_run_writes_nothing() {
    for (backend, shape) in backends_and_shapes("idempotency") {
        for flag in ["--init-database", "--production"] {
            let context = format!("{backend:?} {shape:?} {flag} second run");
            let sandbox = Sandbox::with_shape_on(backend, shape);
            sandbox.run(&[flag]).expect(0);
            let before = sandbox.snapshot();
            let db_state = sandbox.db_state();
            let xmin = (backend == Backend::Postgres).then(|| sandbox.xmin(ACME_ID));
            std::thread::sleep(std::time::Duration::from_millis(20));
            let run = sandbox.run(&[flag]);
            run.expect(0).assert_mentions(&["nothing to do"]);
            // Every file: bytes, mtime, mode, inode; the .env among them.
            before.assert_same(&sandbox.snapshot(), &context);
            // On PostgreSQL no UPDATE ran: the row's xmin is the same.
            assert_eq!(sandbox.db_state(), db_state, "{context}");
            if let Some(xmin) = xmin {
                assert_eq!(
                    sandbox.xmin(ACME_ID),
                    xmin,
                    "{context}: the row was written"
                );
            }
        }
    }
}

#[test]
fn an_existing_row_is_updated_and_keeps_created_at() {
    for (backend, shape) in backends_and_shapes("update") {
        let sandbox = Sandbox::with_shape_on(backend, shape);
        sandbox.sql(&format!(
            "INSERT INTO client_organizations (id, name, openrouter_api_key, markup_rate, is_active, created_at, updated_at) \
             VALUES ('{ACME_ID}', 'Acme', '{OTHER_KEY}', 1.5, NULL, 1000, 2000)"
        ));
        sandbox.run(&["--production"]).expect(0);
        let row = sandbox.row(ACME_ID);
        assert_eq!(row.api_key, KEY);
        // NULL is not the application's deactivation (0): it is repaired.
        assert_eq!(row.is_active, Value::Integer(1));
        assert_eq!(
            row.created_at,
            Value::Integer(1000),
            "{backend:?} {shape:?}"
        );
        assert!(matches!(row.updated_at, Value::Integer(t) if t > 2000));
        // MARKUP_RATE was not set: the rate an admin chose stays.
        assert_eq!(row.markup_rate, Value::Real(1.5));
    }
}

#[test]
fn an_explicit_markup_rate_is_applied_to_an_existing_row() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.run(&["--init-database"]).expect(0);
    let created = sandbox.row(ACME_ID).created_at;
    sandbox
        .run_with(&["--init-database"], &[("MARKUP_RATE", "2.5")])
        .expect(0);
    let row = sandbox.row(ACME_ID);
    assert_eq!(row.markup_rate, Value::Real(2.5));
    assert_eq!(row.created_at, created);
}

#[test]
fn text_timestamps_from_the_old_generator_are_repaired() {
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    sandbox.sql(&format!(
        "INSERT INTO client_organizations (id, name, openrouter_api_key, markup_rate, is_active, created_at, updated_at) \
         VALUES ('{ACME_ID}', 'Acme', '{KEY}', 1.3, 1, '2024-05-01T12:34:56.789012', '2024-05-02T00:00:00')"
    ));
    sandbox.run(&["--production"]).expect(0);
    let row = sandbox.row(ACME_ID);
    assert_eq!(row.created_at, Value::Integer(1_714_566_896));
    assert!(matches!(row.updated_at, Value::Integer(_)));
}

#[test]
fn other_organizations_rows_are_never_touched() {
    for backend in backends("other organizations") {
        let sandbox = Sandbox::with_shape_on(backend, Shape::Startup);
        sandbox.sql(&format!(
            "INSERT INTO client_organizations (id, name, openrouter_api_key, is_active, created_at, updated_at) \
             VALUES ('mai_client_other', 'Other', '{OTHER_KEY}', 1, 5, 6)"
        ));
        let before = sandbox.rows();
        let run = sandbox.run(&["--production"]);
        run.expect(0)
            .assert_mentions(&["other active organizations", "mai_client_other"]);
        let after = sandbox.rows();
        assert_eq!(after.len(), 2, "{backend:?}");
        assert_eq!(after[0], before[0], "{backend:?}");
    }
}

#[test]
fn first_boot_skips_the_database_with_a_warning() {
    for backend in backends("first boot") {
        let sandbox = Sandbox::on(backend);
        for flag in ["--init-database", "--production"] {
            let run = sandbox.run(&[flag]);
            run.expect(0)
                .assert_mentions(&["first boot", "cannot register the organization"]);
            assert!(!sandbox.db_path().exists(), "{flag} created a database");
            assert_eq!(
                sandbox.rows_if_any(),
                None,
                "{backend:?} {flag} created a table"
            );
            assert_eq!(
                python_dotenv(&sandbox.env_path())["OPENROUTER_EXTERNAL_USER"],
                ACME_ID
            );
        }
    }
}

#[test]
fn require_database_turns_a_first_boot_into_exit_66() {
    for backend in backends("REQUIRE_DATABASE") {
        for flag in ["--init-database", "--production"] {
            let sandbox = Sandbox::on(backend);
            let run = sandbox.run_with(&[flag], &[("REQUIRE_DATABASE", "true")]);
            let (name, state) = match backend {
                Backend::Sqlite => ("webui.db", "does not exist yet"),
                Backend::Postgres => ("postgresql://postgres:***@127.0.0.1", "has no tables yet"),
            };
            run.expect(66)
                .assert_mentions(&["REQUIRE_DATABASE", name])
                .assert_last_line_mentions(&[
                    &format!("{state} and REQUIRE_DATABASE=true"),
                    "Start the application once so that it creates its schema",
                ]);
            assert!(!sandbox.db_path().exists(), "{flag}");
            assert_eq!(sandbox.rows_if_any(), None, "{backend:?} {flag}");
        }
    }
}

#[test]
fn check_and_dry_run_change_nothing_and_report_the_difference() {
    for (backend, shape) in backends_and_shapes("--check and --dry-run") {
        let context = format!("{backend:?} {shape:?}");
        let sandbox = Sandbox::with_shape_on(backend, shape);
        let before = Untouched::record(&sandbox);
        let run = sandbox.run(&["--production", "--check"]);
        run.expect(1)
            .assert_mentions(&["insert", "Run without --dry-run/--check"]);
        sandbox.run(&["--production", "--dry-run"]).expect(0);
        before.check(&sandbox, &context);
        sandbox.run(&["--production"]).expect(0);
        let after = Untouched::record(&sandbox);
        sandbox
            .run(&["--production", "--check"])
            .expect(0)
            .assert_mentions(&["Nothing to change"]);
        after.check(&sandbox, &context);
    }
}

#[test]
fn create_schema_builds_the_startup_shape_and_inserts() {
    let sandbox = Sandbox::new();
    sandbox
        .run_with(&["--production"], &[("CREATE_SCHEMA", "true")])
        .expect(0);
    let rows = sandbox.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, ACME_ID);
    let tables: Vec<String> = sandbox
        .db()
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        tables.contains(&"processed_generations".to_owned()),
        "{tables:?}"
    );
    assert!(
        !tables.contains(&"alembic_version".to_owned()),
        "{tables:?}"
    );
    let before = sandbox.snapshot();
    sandbox
        .run_with(&["--production"], &[("CREATE_SCHEMA", "true")])
        .expect(0);
    before.assert_same(&sandbox.snapshot(), "second create-schema run");
}

#[test]
fn unknown_keys_and_comments_in_the_env_are_kept() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    let existing = "# operator's notes\nexport CUSTOM_FLAG=\"yes please\"  # keep me\n\nOPENROUTER_HOST=https://old.example/api\nTRAILING='x'";
    sandbox.write_env(existing);
    sandbox.run(&["--production"]).expect(0);
    let text = sandbox.env_text();
    assert!(text.starts_with("# operator's notes\nexport CUSTOM_FLAG=\"yes please\"  # keep me\n\nOPENROUTER_HOST=https://openrouter.ai/api/v1\nTRAILING='x'\n"), "{text}");
    let values = python_dotenv(&sandbox.env_path());
    assert_eq!(values["CUSTOM_FLAG"], "yes please");
    assert_eq!(values["TRAILING"], "x");
    assert_eq!(
        std::fs::read_to_string(sandbox.backup_path()).unwrap(),
        existing
    );
}

#[test]
fn the_contract_test_vectors_become_the_ids() {
    for (name, id) in [
        ("Company_A", "mai_client_63a4eb6d"),
        ("ABC Company Sp. z o.o.", "mai_client_362862c8"),
        ("Acme", "mai_client_79d89452"),
    ] {
        let sandbox = Sandbox::with_shape(Shape::Startup);
        sandbox
            .run_with(&["--init-database"], &[("ORGANIZATION_NAME", name)])
            .expect(0);
        assert_eq!(sandbox.rows()[0].id, id);
        let values = python_dotenv(&sandbox.env_path());
        assert_eq!(values["OPENROUTER_EXTERNAL_USER"], id);
        assert_eq!(values["ORGANIZATION_NAME"], name);
    }
}

#[test]
fn the_env_holds_every_managed_key_in_the_contract_order() {
    let sandbox = Sandbox::new();
    sandbox
        .run_with(
            &[],
            &[
                ("MODEL_IDS", "openai/gpt-4o, anthropic/claude-3.5-sonnet"),
                ("SPENDING_LIMIT", "1000"),
            ],
        )
        .expect(0);
    let text = sandbox.env_text();
    let keys: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('=').next())
        .collect();
    assert_eq!(
        keys,
        [
            "OPENROUTER_API_KEY",
            "OPENROUTER_HOST",
            "OPENROUTER_EXTERNAL_USER",
            "ENABLE_OPENAI_API",
            "OPENAI_API_BASE_URL",
            "OPENAI_API_KEY",
            "ORGANIZATION_NAME",
            "SPENDING_LIMIT",
            "ENABLE_MODEL_FILTER",
            "BYPASS_MODEL_ACCESS_CONTROL",
            "OPENAI_API_CONFIGS",
            "WEBUI_SECRET_KEY",
        ]
    );
    let values = python_dotenv(&sandbox.env_path());
    assert_eq!(values["SPENDING_LIMIT"], "1000.0");
    assert_eq!(values["ENABLE_OPENAI_API"], "True");
    assert_eq!(
        values["OPENAI_API_BASE_URL"],
        "https://openrouter.ai/api/v1"
    );
    assert_eq!(values["OPENAI_API_KEY"], KEY);
    assert_eq!(
        values["OPENAI_API_CONFIGS"],
        r#"{"0":{"enable":true,"model_ids":["openai/gpt-4o","anthropic/claude-3.5-sonnet"]}}"#
    );
    assert_eq!(values["WEBUI_SECRET_KEY"], SECRET_KEY);
}

#[test]
fn the_env_and_its_backup_have_the_configured_mode() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    sandbox.write_env("A=1\n");
    sandbox
        .run_with(&[], &[("ENV_FILE_MODE", "0640")])
        .expect(0);
    for path in [sandbox.env_path(), sandbox.backup_path()] {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{}", path.display());
    }
}

#[test]
fn a_generated_secret_key_is_stored_and_reused() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.command();
    cmd.env_remove("WEBUI_SECRET_KEY");
    let run = Run::from(cmd.output().unwrap());
    run.expect(0);
    let stored = std::fs::read_to_string(sandbox.secret_store()).unwrap();
    assert_eq!(stored.len(), 64, "32 bytes, hex");
    assert_eq!(
        std::fs::metadata(sandbox.secret_store())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        python_dotenv(&sandbox.env_path())["WEBUI_SECRET_KEY"],
        stored
    );
    assert!(!run.output().contains(&stored), "the generated key leaked");

    // A lost .env (an emptyDir after a restart) gets the same key back.
    std::fs::remove_file(sandbox.env_path()).unwrap();
    let mut cmd = sandbox.command();
    cmd.env_remove("WEBUI_SECRET_KEY");
    Run::from(cmd.output().unwrap()).expect(0);
    assert_eq!(
        python_dotenv(&sandbox.env_path())["WEBUI_SECRET_KEY"],
        stored
    );
}
