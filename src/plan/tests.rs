use std::ffi::OsString;
use std::path::PathBuf;

use super::*;
use crate::config;
use crate::db::{OrgRow, OtherOrg, Schema};
use crate::envfile::KeyStatus;

const KEY: &str = "sk-or-v1-0123456789abcdef0123456789abcdef";
const NOW: i64 = 1_800_000_000;

fn config(extra: &[(&str, &str)]) -> Config {
    let mut vars: Vec<(OsString, OsString)> = vec![
        ("ORGANIZATION_NAME".into(), "Acme".into()),
        ("OPENROUTER_API_KEY".into(), KEY.into()),
        ("WEBUI_SECRET_KEY".into(), "session-secret".into()),
        ("DATA_DIR".into(), "/data".into()),
    ];
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    config::from_vars(vars).unwrap()
}

fn world(env_text: Option<&str>, database: DatabaseState) -> World {
    World {
        env_file: PathBuf::from("/shared/.env"),
        env_text: env_text.map(str::to_owned),
        env_mode: env_text.map(|_| 0o600),
        // The store holds the configured key, as after a first run.
        stored_secret: StoredKey::Key(Secret::new("session-secret")),
        store_dir_exists: true,
        database,
    }
}

/// The configured key, as the run hands it to the plan.
fn given_key() -> ApiKey {
    ApiKey {
        value: Secret::new(KEY),
        hash: None,
    }
}

fn no_secret() -> Result<Secret, Error> {
    panic!("a secret key was generated although one was available")
}

fn plan(config: &Config, world: &World) -> Result<Plan, Error> {
    let id = OrgId::resolve(config.external_user.as_deref(), &config.organization_name);
    build(
        config,
        Mode::Production,
        id,
        world,
        given_key(),
        NOW,
        no_secret,
    )
}

/// A database whose table has every column the application reads.
fn snapshot(row: Option<OrgRow>) -> DatabaseState {
    snapshot_lacking(&[], row)
}

fn snapshot_lacking(missing: &[&'static str], row: Option<OrgRow>) -> DatabaseState {
    DatabaseState::Ready(Box::new(Snapshot {
        schema: Schema {
            missing_columns: missing.to_vec(),
            without_rowid: false,
        },
        row,
        key_owner: None,
        other_active: vec![],
        first_active: None,
    }))
}

fn stored_row() -> OrgRow {
    OrgRow {
        id: "mai_client_79d89452".into(),
        name: "Acme".into(),
        api_key: Secret::new(KEY),
        markup_rate: Value::Real(1.3),
        is_active: Value::Integer(1),
        created_at: Value::Integer(100),
        updated_at: Value::Integer(200),
        key_hash: Some("openrouter-hash-of-the-key".into()),
        timezone: Some("Europe/Warsaw".into()),
        not_text: vec![],
    }
}

/// The row change of a plan that writes one.
fn row_change(plan: &Plan) -> &RowChange {
    match &plan.database {
        DatabasePlan::Write {
            row: Some(change), ..
        } => change,
        other => panic!("no row change: {other:?}"),
    }
}

#[test]
fn a_matching_row_and_env_make_an_empty_plan() {
    let config = config(&[]);
    let first = plan(&config, &world(None, snapshot(Some(stored_row())))).unwrap();
    let text = first.env.new_text.clone().unwrap();
    let second = plan(&config, &world(Some(&text), snapshot(Some(stored_row())))).unwrap();
    assert!(second.is_empty(), "{second:?}");
    assert!(matches!(second.database, DatabasePlan::Unchanged { .. }));
    assert!(
        second
            .env
            .changes
            .iter()
            .all(|c| c.status == KeyStatus::Unchanged)
    );
}

#[test]
fn a_missing_row_is_inserted_with_every_column() {
    let plan = plan(&config(&[]), &world(None, snapshot(None))).unwrap();
    let change = row_change(&plan);
    assert_eq!(change.action, RowAction::Insert);
    assert!(matches!(
        plan.database,
        DatabasePlan::Write {
            create_schema: false,
            ..
        }
    ));
    let write = &change.write;
    assert_eq!((write.created_at, write.updated_at), (NOW, NOW));
    assert_eq!(write.markup_rate, 1.3);
    assert!(write.is_active, "a new row is active");
    assert_eq!(
        write.key_hash, None,
        "OpenRouter's hash of a given key is unknown"
    );
    assert_eq!(change.columns, crate::db::INSERT_COLUMNS);
}

#[test]
fn a_table_without_timezone_is_repaired_in_the_same_write() {
    let lacking = snapshot_lacking(&["timezone"], Some(stored_row()));
    let repair_only = plan(&config(&[]), &world(None, lacking)).unwrap();
    assert!(
        matches!(&repair_only.database, DatabasePlan::Write { add_columns, row: None, .. } if add_columns == &["timezone"]),
        "{:?}",
        repair_only.database
    );
    assert!(!repair_only.is_empty(), "a repair is drift for --check");
    let with_insert = plan(
        &config(&[]),
        &world(None, snapshot_lacking(&["timezone"], None)),
    )
    .unwrap();
    assert!(
        matches!(&with_insert.database, DatabasePlan::Write { add_columns, row: Some(_), .. } if add_columns == &["timezone"])
    );
}

#[test]
fn only_the_differing_columns_are_updated() {
    let mut row = stored_row();
    row.is_active = Value::Null;
    let plan = plan(&config(&[]), &world(None, snapshot(Some(row)))).unwrap();
    let change = row_change(&plan);
    assert_eq!(change.columns, ["is_active"]);
    assert_eq!(change.write.update_columns, ["is_active", "updated_at"]);
    assert!(change.write.is_active, "NULL is damage, repaired to active");
    assert_eq!(change.write.created_at, 100, "created_at is kept");
}

#[test]
fn an_inactive_row_stays_inactive_with_a_warning() {
    let mut row = stored_row();
    row.is_active = Value::Integer(0);
    let first = plan(&config(&[]), &world(None, snapshot(Some(row.clone())))).unwrap();
    let text = first.env.new_text.unwrap();
    let kept = plan(
        &config(&[]),
        &world(Some(&text), snapshot(Some(row.clone()))),
    )
    .unwrap();
    assert!(
        kept.is_empty(),
        "deactivation is deliberate, not drift: {kept:?}"
    );
    assert_eq!(kept.database.expected().map(|e| e.is_active), Some(false));
    assert!(
        kept.warnings
            .iter()
            .any(|w| w.contains("records NO usage") && w.contains("ORGANIZATION_ACTIVE=true")),
        "{:?}",
        kept.warnings
    );
    let activated = plan(
        &config(&[("ORGANIZATION_ACTIVE", "true")]),
        &world(None, snapshot(Some(row))),
    )
    .unwrap();
    assert_eq!(row_change(&activated).columns, ["is_active"]);
    assert!(row_change(&activated).write.is_active);
    assert!(!activated.warnings.iter().any(|w| w.contains("NO usage")));
}

#[test]
fn organization_active_false_deactivates_and_inserts_inactive() {
    let off = config(&[("ORGANIZATION_ACTIVE", "false")]);
    let deactivated = plan(&off, &world(None, snapshot(Some(stored_row())))).unwrap();
    assert_eq!(row_change(&deactivated).columns, ["is_active"]);
    assert!(!row_change(&deactivated).write.is_active);
    assert!(
        deactivated
            .warnings
            .iter()
            .any(|w| w.contains("ORGANIZATION_ACTIVE=false"))
    );
    let inserted = plan(&off, &world(None, snapshot(None))).unwrap();
    assert!(!row_change(&inserted).write.is_active);
}

#[test]
fn an_unset_markup_rate_keeps_the_stored_one_and_an_explicit_one_wins() {
    let mut row = stored_row();
    row.markup_rate = Value::Real(1.8);
    let kept = plan(&config(&[]), &world(None, snapshot(Some(row.clone())))).unwrap();
    assert!(
        matches!(kept.database, DatabasePlan::Unchanged { ref expected } if expected.markup_rate == 1.8)
    );
    let set = plan(
        &config(&[("MARKUP_RATE", "2")]),
        &world(None, snapshot(Some(row))),
    )
    .unwrap();
    assert_eq!(row_change(&set).columns, ["markup_rate"]);
    assert_eq!(row_change(&set).write.markup_rate, 2.0);
}

#[test]
fn a_new_key_clears_the_hash_of_the_old_one() {
    let mut row = stored_row();
    row.api_key = Secret::new("sk-or-v1-theoldkey000000000000000000");
    let plan = plan(&config(&[]), &world(None, snapshot(Some(row)))).unwrap();
    let change = row_change(&plan);
    assert_eq!(
        change.columns,
        ["openrouter_api_key", "openrouter_key_hash"]
    );
    assert_eq!(change.write.key_hash, None);
}

/// A key the job minted: its hash is OpenRouter's, and known.
fn minted_key(hash: &str) -> ApiKey {
    ApiKey {
        value: Secret::new("sk-or-v1-mintedkey0000000000000000000"),
        hash: Some(hash.into()),
    }
}

fn plan_with_key(world: &World, key: ApiKey) -> Plan {
    let config = config(&[]);
    let id = OrgId::resolve(None, "Acme");
    build(&config, Mode::Production, id, world, key, NOW, no_secret).unwrap()
}

#[test]
fn a_minted_key_brings_its_hash_into_a_new_row_and_an_old_one() {
    let inserted = plan_with_key(&world(None, snapshot(None)), minted_key("f01d5260"));
    assert_eq!(
        row_change(&inserted).write.key_hash.as_deref(),
        Some("f01d5260")
    );
    let updated = plan_with_key(
        &world(None, snapshot(Some(stored_row()))),
        minted_key("f01d5260"),
    );
    let change = row_change(&updated);
    assert_eq!(
        change.columns,
        ["openrouter_api_key", "openrouter_key_hash"]
    );
    assert_eq!(change.write.key_hash.as_deref(), Some("f01d5260"));
    // The same key with a hash that was cleared gets its hash back alone.
    let mut row = stored_row();
    row.api_key = minted_key("f01d5260").value;
    row.key_hash = None;
    let repaired = plan_with_key(&world(None, snapshot(Some(row))), minted_key("f01d5260"));
    assert_eq!(row_change(&repaired).columns, ["openrouter_key_hash"]);
    assert_eq!(
        plan_with_key(&world(None, snapshot(None)), minted_key("x")).api_key,
        minted_key("x")
    );
}

#[test]
fn the_env_gets_the_key_in_effect() {
    let plan = plan_with_key(&world(None, snapshot(None)), minted_key("f01d5260"));
    let text = plan.env.new_text.unwrap();
    assert!(
        text.contains("OPENROUTER_API_KEY=sk-or-v1-mintedkey"),
        "{text}"
    );
    assert!(text.contains("OPENAI_API_KEY=sk-or-v1-mintedkey"), "{text}");
    assert!(!text.contains(KEY), "{text}");
}

#[test]
fn text_timestamps_are_repaired_to_the_same_instant() {
    let mut row = stored_row();
    row.created_at = Value::Text("1970-01-02T00:00:00".into());
    row.updated_at = Value::Text("garbage".into());
    let plan = plan(&config(&[]), &world(None, snapshot(Some(row)))).unwrap();
    let change = row_change(&plan);
    assert_eq!(change.columns, ["created_at", "updated_at"]);
    assert_eq!(change.write.created_at, 86_400);
    assert_eq!(change.write.updated_at, NOW);
}

#[test]
fn values_the_application_does_not_read_as_text_are_written_again() {
    let mut row = stored_row();
    row.key_hash = None;
    row.not_text = vec!["name", "openrouter_api_key", "openrouter_key_hash"];
    let plan = plan(&config(&[]), &world(None, snapshot(Some(row)))).unwrap();
    let change = row_change(&plan);
    assert_eq!(
        change.columns,
        ["name", "openrouter_api_key", "openrouter_key_hash"]
    );
    assert_eq!(change.write.key_hash, None);
    assert!(
        change
            .write
            .update_columns
            .iter()
            .all(|c| *c != "created_at")
    );
}

#[test]
fn a_key_owned_by_another_row_is_refused() {
    let mut state = snapshot(None);
    if let DatabaseState::Ready(s) = &mut state {
        s.key_owner = Some(OtherOrg {
            id: "other".into(),
            name: "Other Corp".into(),
        });
    }
    let err = plan(&config(&[]), &world(None, state)).unwrap_err();
    assert!(err.to_string().contains("Other Corp"), "{err}");
}

#[test]
fn a_renamed_row_needs_the_explicit_id() {
    let mut row = stored_row();
    row.name = "Acme Old".into();
    let state = snapshot(Some(row));
    assert!(plan(&config(&[]), &world(None, state.clone())).is_err());
    let confirmed = config(&[("OPENROUTER_EXTERNAL_USER", "mai_client_79d89452")]);
    let plan = plan(&confirmed, &world(None, state)).unwrap();
    assert_eq!(row_change(&plan).columns, ["name"]);
}

#[test]
fn first_boot_skips_requires_or_creates() {
    let missing = DatabaseState::Missing { dir_exists: true };
    let skip = plan(&config(&[]), &world(None, missing.clone())).unwrap();
    assert!(matches!(skip.database, DatabasePlan::Skip { .. }));
    assert!(
        skip.warnings
            .iter()
            .any(|w| w.contains("does not exist yet (first boot)"))
    );
    assert!(skip.database.expected().is_none());
    let required = plan(
        &config(&[("REQUIRE_DATABASE", "true")]),
        &world(None, DatabaseState::Empty),
    );
    assert!(matches!(
        required,
        Err(Error::Db(crate::db::DbError::Required { .. }))
    ));
    let create = plan(&config(&[("CREATE_SCHEMA", "true")]), &world(None, missing)).unwrap();
    assert!(matches!(
        create.database,
        DatabasePlan::Write {
            create_schema: true,
            ..
        }
    ));
    assert_eq!(row_change(&create).action, RowAction::Insert);
    assert!(
        create
            .warnings
            .iter()
            .any(|w| w.contains("fails on every start") && w.contains("no later migration")),
        "{:?}",
        create.warnings
    );
}

#[test]
fn the_secret_key_comes_from_config_then_env_then_store_then_is_generated() {
    let mut config = config(&[]);
    let configured = plan(
        &config,
        &world(
            Some("WEBUI_SECRET_KEY=from-env\n"),
            DatabaseState::NotInMode,
        ),
    )
    .unwrap();
    assert_eq!(configured.secret_key.source, SecretKeySource::Configured);

    config.webui_secret_key = None;
    let from_env = plan(
        &config,
        &world(
            Some("WEBUI_SECRET_KEY=from-env\n"),
            DatabaseState::NotInMode,
        ),
    )
    .unwrap();
    assert_eq!(from_env.secret_key.source, SecretKeySource::EnvFile);
    assert_eq!(from_env.secret_key.value.expose(), "from-env");
    assert_eq!(
        from_env.secret_key.store_at,
        Some(PathBuf::from("/data/.webui_secret_key")),
        "the store must hold the key in effect, for the start script"
    );

    let mut stored = world(None, DatabaseState::NotInMode);
    stored.stored_secret = StoredKey::Key(Secret::new("from-store"));
    let from_store = plan(&config, &stored).unwrap();
    assert_eq!(from_store.secret_key.source, SecretKeySource::Stored);
    assert!(
        from_store.secret_key.store_at.is_none(),
        "the store holds it"
    );

    let id = OrgId::resolve(None, "Acme");
    let mut fresh = world(None, DatabaseState::NotInMode);
    fresh.stored_secret = StoredKey::Absent;
    let generated = build(
        &config,
        Mode::Env,
        id.clone(),
        &fresh,
        given_key(),
        NOW,
        || Ok(Secret::new("new")),
    )
    .unwrap();
    assert_eq!(generated.secret_key.source, SecretKeySource::Generated);
    assert_eq!(
        generated.secret_key.store_at,
        Some(PathBuf::from("/data/.webui_secret_key"))
    );

    let mut no_volume = fresh;
    no_volume.store_dir_exists = false;
    let err = build(&config, Mode::Env, id, &no_volume, given_key(), NOW, || {
        Ok(Secret::new("new"))
    })
    .unwrap_err();
    assert!(matches!(err, Error::SecretKeyHome { .. }));
}

#[test]
fn a_key_store_without_its_folder_is_a_warning_when_a_key_is_at_hand() {
    let mut no_volume = world(None, DatabaseState::NotInMode);
    no_volume.store_dir_exists = false;
    no_volume.stored_secret = StoredKey::Absent;
    let plan = plan(&config(&[]), &no_volume).unwrap();
    assert_eq!(plan.secret_key.store_at, None);
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("/data/.webui_secret_key") && w.contains("start script")),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn an_unusable_store_is_rewritten_when_a_key_is_at_hand_and_refused_otherwise() {
    let mut broken = world(None, DatabaseState::NotInMode);
    broken.stored_secret = StoredKey::Unusable {
        problem: "is not UTF-8 text".into(),
    };
    let rewritten = plan(&config(&[]), &broken).unwrap();
    assert_eq!(rewritten.secret_key.source, SecretKeySource::Configured);
    assert!(rewritten.secret_key.store_at.is_some());
    let err = build(
        &config_without_secret_key(),
        Mode::Env,
        OrgId::resolve(None, "Acme"),
        &broken,
        given_key(),
        NOW,
        no_secret,
    )
    .unwrap_err();
    assert!(matches!(err, Error::SecretKeyUnusable { .. }), "{err}");
}

#[test]
fn another_id_in_the_env_is_refused_before_anything_else() {
    let err = plan(
        &config(&[]),
        &world(
            Some("OPENROUTER_EXTERNAL_USER=someone_else\n"),
            snapshot(None),
        ),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Identity(_)), "{err}");
}

#[test]
fn a_wrong_file_mode_alone_rewrites_the_env() {
    let config = config(&[]);
    let first = plan(&config, &world(None, DatabaseState::NotInMode)).unwrap();
    let text = first.env.new_text.unwrap();
    let mut loose = world(Some(&text), DatabaseState::NotInMode);
    loose.env_mode = Some(0o644);
    let again = plan(&config, &loose).unwrap();
    assert_eq!(again.env.new_text.as_deref(), Some(text.as_str()));
}

#[test]
fn model_ids_write_the_allow_list_and_removing_them_removes_it() {
    let with = config(&[("MODEL_IDS", "a/b,c/d")]);
    let first = plan(&with, &world(None, DatabaseState::NotInMode)).unwrap();
    let text = first.env.new_text.unwrap();
    assert!(
        text.contains(r#"OPENAI_API_CONFIGS='{"0":{"enable":true,"model_ids":["a/b","c/d"]}}'"#),
        "{text}"
    );
    let without = plan(&config(&[]), &world(Some(&text), DatabaseState::NotInMode)).unwrap();
    let removed = without
        .env
        .changes
        .iter()
        .find(|c| c.key == "OPENAI_API_CONFIGS")
        .unwrap();
    assert_eq!(removed.status, KeyStatus::Removed);
    assert!(!without.env.new_text.unwrap().contains("OPENAI_API_CONFIGS"));
}

fn config_without_secret_key() -> Config {
    let vars: Vec<(OsString, OsString)> = vec![
        ("ORGANIZATION_NAME".into(), "Acme".into()),
        ("OPENROUTER_API_KEY".into(), KEY.into()),
        ("DATA_DIR".into(), "/data".into()),
    ];
    config::from_vars(vars).unwrap()
}

/// A secret key read from a file that no quoting can carry is refused,
/// naming the file; it is not an internal error.
#[test]
fn an_unwritable_secret_key_from_a_file_names_the_file() {
    let config = config_without_secret_key();
    let id = || OrgId::resolve(None, "Acme");
    let unusable_at = |err: &Error| match err {
        Error::SecretKeyUnusable { path, .. } => Some(path.clone()),
        _ => None,
    };

    let mut stored = world(None, DatabaseState::NotInMode);
    stored.stored_secret = StoredKey::Key(Secret::new("abc\nOPENROUTER_HOST=https://evil.example"));
    let err = build(
        &config,
        Mode::Env,
        id(),
        &stored,
        given_key(),
        NOW,
        no_secret,
    )
    .unwrap_err();
    assert_eq!(
        unusable_at(&err),
        Some(PathBuf::from("/data/.webui_secret_key")),
        "{err}"
    );

    // From the .env, a line that already holds the value is kept as it is...
    let kept = world(
        Some("WEBUI_SECRET_KEY=\"a\\nb\"\n"),
        DatabaseState::NotInMode,
    );
    assert!(build(&config, Mode::Env, id(), &kept, given_key(), NOW, no_secret).is_ok());
    // ...but another line cannot be rewritten to it.
    let twice = world(
        Some("WEBUI_SECRET_KEY=x\nWEBUI_SECRET_KEY=\"a\\nb\"\n"),
        DatabaseState::NotInMode,
    );
    let err = build(
        &config,
        Mode::Env,
        id(),
        &twice,
        given_key(),
        NOW,
        no_secret,
    )
    .unwrap_err();
    assert_eq!(
        unusable_at(&err),
        Some(PathBuf::from("/shared/.env")),
        "{err}"
    );
}
