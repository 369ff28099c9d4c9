//! The minted key, black-box: the built binary with a management key,
//! against the stand-in for OpenRouter's key-management API
//! (`common/openrouter_standin.rs`). One live key per organization, whose
//! secret the key store, the row and the `.env` hold, whatever happens; the
//! no-op run makes exactly one request; a changed limit is a PATCH, never a
//! new key; a key gone on OpenRouter is replaced, with a warning.

use std::time::{Duration, Instant};

use crate::common::*;

/// Variables a run adds to the sandbox's.
type Vars<'a> = &'a [(&'a str, &'a str)];

/// A deployment whose application has migrated: the row is written too.
fn deployment_with_key(standin: &StandIn) -> Sandbox {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.mint(standin, &["--production"], &[]).expect(0);
    sandbox
}

#[test]
fn ten_runs_leave_one_key_and_the_no_op_run_makes_one_request() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let sandbox = Sandbox::with_shape(Shape::Startup);
    let first = sandbox.mint(
        &standin,
        &["--production", "--output", "json"],
        &[("SPENDING_LIMIT", "1000")],
    );
    first.expect(0);
    assert_hides_keys(&first, &sandbox, &standin);
    let key = assert_one_key_everywhere(&sandbox, &standin);
    assert_eq!(
        (key.limit, key.limit_reset.as_deref()),
        (Some(1000.0), None)
    );
    let report = first.json();
    assert_eq!(report["openrouter_key"]["action"], "minted");
    assert_eq!(report["openrouter_key"]["reason"], "no_key");
    assert_eq!(report["openrouter_key"]["hash"], key.hash.as_str());
    assert_eq!(
        standin.requests(),
        [
            "GET /api/v1/keys?include_disabled=true&offset=0",
            "POST /api/v1/keys"
        ]
    );
    first.assert_mentions(&[
        "OpenRouter key minted",
        &format!("minted the OpenRouter key {}", key.hash),
    ]);
    assert!(
        sandbox
            .termination_message()
            .contains("OpenRouter key minted"),
        "{}",
        sandbox.termination_message()
    );

    for run_number in 2..=10 {
        standin.clear_log();
        let started = Instant::now();
        let run = sandbox.mint(
            &standin,
            &["--production", "--output", "json"],
            &[("SPENDING_LIMIT", "1000")],
        );
        let took = started.elapsed();
        run.expect(0);
        assert_hides_keys(&run, &sandbox, &standin);
        assert_eq!(
            standin.requests(),
            [format!("GET /api/v1/keys/{}", key.hash)],
            "run {run_number}"
        );
        let report = run.json();
        assert_eq!(report["status"], "unchanged", "run {run_number}");
        assert_eq!(report["openrouter_key"]["action"], "reused");
        assert_eq!(report["openrouter_key"]["requests"], 1);
        assert_eq!(assert_one_key_everywhere(&sandbox, &standin), key);
        if run_number == 10 {
            println!(
                "no-op run with a management key: {} ms, 1 request",
                took.as_millis()
            );
            assert!(
                run.stderr
                    .contains(&format!("nothing to do for {ACME_ID}: OpenRouter key kept")),
                "{}",
                run.stderr
            );
        }
    }
    assert_eq!(standin.all_keys().len(), 1, "one key was ever created");
}

#[test]
fn an_env_only_run_mints_too_and_keeps_the_store_beside_the_data() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let sandbox = Sandbox::new();
    sandbox.mint(&standin, &[], &[]).expect(0);
    let key = assert_one_key_everywhere(&sandbox, &standin);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(sandbox.key_store())
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the key store's mode");
    standin.clear_log();
    sandbox.mint(&standin, &[], &[]).expect(0);
    assert_eq!(
        standin.requests(),
        [format!("GET /api/v1/keys/{}", key.hash)]
    );
    sandbox.assert_secrets_only_where_they_belong(&[&key.secret[9..], &MANAGEMENT_KEY[9..]]);
}

#[test]
fn a_lost_create_answer_is_not_retried_and_the_next_run_deletes_the_orphan() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let sandbox = Sandbox::with_shape(Shape::Startup);
    standin.fail(Fault::new(Some("POST"), 1, FaultKind::DropAfterHandling));
    let lost = sandbox.mint(&standin, &["--production"], &[]);
    lost.expect(75).assert_mentions(&[
        "the answer to creating the key was lost",
        "It was not retried",
        "run the job again",
    ]);
    assert_hides_keys(&lost, &sandbox, &standin);
    assert_eq!(
        standin.requests_of(&["POST"]).len(),
        1,
        "the create was sent once"
    );
    let orphan = standin.live_keys();
    assert_eq!(orphan.len(), 1, "the lost create made a key");
    assert_eq!(sandbox.stored(), None, "whose secret the job never had");
    assert!(!sandbox.env_path().exists(), "and nothing else was written");

    standin.clear_log();
    let next = sandbox.mint(&standin, &["--production"], &[]);
    next.expect(0)
        .assert_mentions(&["hold a secret the job does not have", &orphan[0].hash]);
    assert_hides_keys(&next, &sandbox, &standin);
    assert_eq!(
        standin.requests_of(&["DELETE", "POST"]),
        [
            format!("DELETE /api/v1/keys/{}", orphan[0].hash),
            "POST /api/v1/keys".to_owned()
        ],
        "the orphan goes before the create"
    );
    let key = assert_one_key_everywhere(&sandbox, &standin);
    assert_ne!(key.hash, orphan[0].hash);
}

#[test]
fn a_changed_limit_or_reset_is_one_patch_and_no_new_key() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox
        .mint(&standin, &["--production"], &[("SPENDING_LIMIT", "1000")])
        .expect(0);
    let key = assert_one_key_everywhere(&sandbox, &standin);
    let steps: [(Vars, Option<f64>, Option<&str>, &str); 4] = [
        (&[("SPENDING_LIMIT", "2500")], Some(2500.0), None, "limit"),
        (
            &[
                ("SPENDING_LIMIT", "2500"),
                ("SPENDING_LIMIT_RESET", "monthly"),
            ],
            Some(2500.0),
            Some("monthly"),
            "limit_reset",
        ),
        (
            &[
                ("SPENDING_LIMIT", "2500"),
                ("SPENDING_LIMIT_RESET", "weekly"),
            ],
            Some(2500.0),
            Some("weekly"),
            "limit_reset",
        ),
        (
            &[("SPENDING_LIMIT", "unlimited")],
            None,
            None,
            "limit, limit_reset",
        ),
    ];
    for (vars, limit, reset, changed) in steps {
        // --check sees the difference, and only reads.
        standin.clear_log();
        let check = sandbox.mint(&standin, &["--production", "--check"], vars);
        check
            .expect(1)
            .assert_mentions(&[&format!("reconcile {changed} with one PATCH")]);
        assert_eq!(
            standin.requests(),
            [format!("GET /api/v1/keys/{}", key.hash)],
            "{vars:?}"
        );

        standin.clear_log();
        let run = sandbox.mint(&standin, &["--production", "--output", "json"], vars);
        run.expect(0);
        assert_hides_keys(&run, &sandbox, &standin);
        assert_eq!(
            standin.requests(),
            [
                format!("GET /api/v1/keys/{}", key.hash),
                format!("PATCH /api/v1/keys/{}", key.hash)
            ],
            "{vars:?}"
        );
        let report = run.json();
        assert_eq!(report["openrouter_key"]["action"], "reconciled");
        assert_eq!(
            report["openrouter_key"]["changed"]
                .as_array()
                .unwrap()
                .len(),
            changed.split(", ").count()
        );
        let now = assert_one_key_everywhere(&sandbox, &standin);
        assert_eq!(now.hash, key.hash, "the same key, {vars:?}");
        assert_eq!(
            (now.limit, now.limit_reset.as_deref()),
            (limit, reset),
            "{vars:?}"
        );
    }
    assert_eq!(
        sandbox.env_value("SPENDING_LIMIT").as_deref(),
        Some("unlimited")
    );
    assert_eq!(standin.all_keys().len(), 1, "no key was minted for a limit");
}

#[test]
fn a_key_deleted_or_disabled_on_openrouter_is_replaced_with_a_warning() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let sandbox = deployment_with_key(&standin);
    let first = assert_one_key_everywhere(&sandbox, &standin);

    standin.delete_key(&first.hash);
    let run = sandbox.mint(&standin, &["--production", "--output", "json"], &[]);
    run.expect(0).assert_mentions(&[&format!(
        "key {} was deleted on OpenRouter: minting a new one",
        first.hash
    )]);
    assert_eq!(run.json()["openrouter_key"]["reason"], "deleted");
    let second = assert_one_key_everywhere(&sandbox, &standin);
    assert_ne!(second.hash, first.hash);

    standin.set_disabled(&second.hash, true);
    let run = sandbox.mint(&standin, &["--production", "--output", "json"], &[]);
    run.expect(0)
        .assert_mentions(&[&format!("key {} is disabled on OpenRouter", second.hash)]);
    assert_eq!(run.json()["openrouter_key"]["reason"], "disabled");
    let third = assert_one_key_everywhere(&sandbox, &standin);
    assert_ne!(third.hash, second.hash);
    assert_eq!(
        standin.existing_keys().len(),
        1,
        "the disabled key was deleted: one key with the organization's name"
    );
    assert_hides_keys(&run, &sandbox, &standin);
}

#[test]
fn keys_the_job_did_not_mint_are_left_alone() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let old_generator = standin.add_key("mAI Client: Acme");
    let other = standin.add_key("mAI Client: Other (mai_client_00000000)");
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.mint(&standin, &["--production"], &[]).expect(0);
    assert_one_key_everywhere(&sandbox, &standin);
    let live: Vec<String> = standin.live_keys().into_iter().map(|k| k.hash).collect();
    assert!(
        live.contains(&old_generator.hash) && live.contains(&other.hash),
        "{live:?}"
    );
    assert!(standin.requests_of(&["DELETE"]).is_empty());
}

#[test]
fn openrouter_down_with_a_key_exits_0_and_without_one_75() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let sandbox = deployment_with_key(&standin);
    let key = assert_one_key_everywhere(&sandbox, &standin);
    let fresh = Sandbox::with_shape(Shape::Startup);
    let mut cmd = sandbox.minting_command(&standin);
    cmd.env("OPENROUTER_TIMEOUT", "2")
        .args(["--production", "--output", "json"]);
    let mut fresh_cmd = fresh.minting_command(&standin);
    fresh_cmd.env("OPENROUTER_TIMEOUT", "2").arg("--production");
    drop(standin);
    let before = sandbox.snapshot();
    let started = Instant::now();
    let run = Run::from(cmd.output().unwrap());
    run.expect(0).assert_mentions(&[
        "could not check the organization's OpenRouter key",
        "carrying on with the stored key",
        "OpenRouter unreachable",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let report = run.json();
    assert_eq!(report["openrouter_key"]["action"], "offline");
    assert_eq!(report["openrouter_key"]["hash"], key.hash.as_str());
    before.assert_same(&sandbox.snapshot(), "an outage changes nothing");
    assert!(!run.output().contains(&key.secret[9..]));

    let before = fresh.snapshot();
    let run = Run::from(fresh_cmd.output().unwrap());
    run.expect(75)
        .assert_last_line_mentions(&["OpenRouter is unreachable", "OPENROUTER_TIMEOUT (2 s)"]);
    before.assert_same(&fresh.snapshot(), "no key, nothing written");
}

/// A limit that cannot be set for an outage (500 until the deadline): the
/// run carries on with the key as it is, exit 0, and says so once, in its
/// log and in the JSON report.
#[test]
fn a_patch_lost_to_an_outage_warns_once_and_carries_on() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let sandbox = deployment_with_key(&standin);
    let key = assert_one_key_everywhere(&sandbox, &standin);
    standin.fail(Fault::status(Some("PATCH"), 1_000, 500));
    let run = sandbox.mint(
        &standin,
        &["--production", "--output", "json"],
        &[("SPENDING_LIMIT", "2500"), ("OPENROUTER_TIMEOUT", "2")],
    );
    run.expect(0);
    let warning = "could not set limit of the OpenRouter key";
    assert_eq!(
        run.stderr.matches(warning).count(),
        1,
        "the warning once in the log:\n{}",
        run.stderr
    );
    let report = run.json();
    assert_eq!(report["openrouter_key"]["action"], "offline");
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.as_str().unwrap().contains(warning))
            .count(),
        1,
        "{warnings:?}"
    );
    let now = assert_one_key_everywhere(&sandbox, &standin);
    assert_eq!((now.hash, now.limit), (key.hash, key.limit));
}

#[test]
fn a_refused_management_key_exits_77_naming_its_variable_with_nothing_written() {
    let standin = StandIn::start("sk-or-v1-SOMEOTHERMANAGEMENTKEY0000000000");
    for status in [401, 403] {
        let sandbox = Sandbox::with_shape(Shape::Startup);
        let file = sandbox.path().join("management-key");
        std::fs::write(&file, format!("{MANAGEMENT_KEY}\n")).unwrap();
        if status == 403 {
            standin.fail(Fault::refuse(
                None,
                403,
                "Only management keys can perform this operation",
            ));
        }
        let before = Untouched::record(&sandbox);
        let mut cmd = sandbox.minting_command(&standin);
        cmd.env_remove("OPENROUTER_MANAGEMENT_KEY")
            .env("OPENROUTER_MANAGEMENT_KEY_FILE", &file)
            .args(["--production", "--output", "json"]);
        let run = Run::from(cmd.output().unwrap());
        run.expect(77).assert_mentions(&[
            "OpenRouter refused OPENROUTER_MANAGEMENT_KEY_FILE",
            &format!("({status}: "),
            "https://openrouter.ai/settings/management-keys",
            "Nothing was changed",
        ]);
        assert_eq!(run.json()["exit_code"], 77);
        assert_hides_keys(&run, &sandbox, &standin);
        before.check(&sandbox, &format!("{status}"));
        assert!(!sandbox.key_store().exists());
        standin.clear_faults();
    }
}

#[test]
fn a_request_refused_as_invalid_exits_78_with_the_api_s_reason() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    standin.fail(Fault::refuse(
        Some("POST"),
        400,
        "Limit exceeds the workspace's budget",
    ));
    let sandbox = Sandbox::with_shape(Shape::Startup);
    let before = Untouched::record(&sandbox);
    let run = sandbox.mint(
        &standin,
        &["--production"],
        &[("SPENDING_LIMIT", "1000000")],
    );
    run.expect(78).assert_last_line_mentions(&[
        "OpenRouter refused the request POST /keys as invalid",
        "(400: Limit exceeds the workspace's budget)",
        "SPENDING_LIMIT",
    ]);
    before.check(&sandbox, "400");
    assert!(standin.live_keys().is_empty());
}

#[test]
fn rate_limits_and_server_errors_are_retried_within_the_deadline() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    // A create refused with 429 created nothing: it may be sent again.
    standin.fail(Fault::new(
        Some("POST"),
        1,
        FaultKind::Status {
            code: 429,
            retry_after: Some(1),
        },
    ));
    let sandbox = Sandbox::with_shape(Shape::Startup);
    let started = Instant::now();
    let run = sandbox.mint(&standin, &["--production"], &[]);
    run.expect(0)
        .assert_mentions(&["429 injected failure; trying again in 1000 ms"]);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not waited for"
    );
    assert_eq!(standin.requests_of(&["POST"]).len(), 2);
    let key = assert_one_key_everywhere(&sandbox, &standin);

    // 500 and 503 on a read are tried again.
    standin.fail(Fault::status(Some("GET"), 1, 500));
    standin.fail(Fault::new(
        Some("GET"),
        1,
        FaultKind::Status {
            code: 503,
            retry_after: Some(1),
        },
    ));
    standin.clear_log();
    sandbox.mint(&standin, &["--production"], &[]).expect(0);
    assert_eq!(
        standin.requests(),
        vec![format!("GET /api/v1/keys/{}", key.hash); 3]
    );

    // A 500 on a create may have created the key: never sent again, 75.
    let fresh = Sandbox::with_shape(Shape::Startup);
    standin.fail(Fault::status(Some("POST"), 1, 500));
    standin.clear_log();
    fresh
        .mint(&standin, &["--production"], &[])
        .expect(75)
        .assert_mentions(&["the answer to creating the key was lost (500 injected failure)"]);
    assert_eq!(standin.requests_of(&["POST"]).len(), 1);
}

#[test]
fn everything_ends_by_the_deadline() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let sandbox = deployment_with_key(&standin);
    // A server that answers too slowly, always.
    standin.fail(Fault::new(
        None,
        usize::MAX,
        FaultKind::Slow(Duration::from_secs(8)),
    ));
    let started = Instant::now();
    sandbox
        .mint(&standin, &["--production"], &[("OPENROUTER_TIMEOUT", "2")])
        .expect(0)
        .assert_mentions(&["no answer within", "carrying on with the stored key"]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    println!(
        "a stalled OpenRouter with OPENROUTER_TIMEOUT=2: the run ended after {} ms",
        took.as_millis()
    );
    standin.clear_faults();

    // A Retry-After beyond the deadline is not waited for.
    standin.fail(Fault::new(
        None,
        usize::MAX,
        FaultKind::Status {
            code: 429,
            retry_after: Some(60),
        },
    ));
    let fresh = Sandbox::with_shape(Shape::Startup);
    let started = Instant::now();
    fresh
        .mint(&standin, &["--production"], &[("OPENROUTER_TIMEOUT", "3")])
        .expect(75)
        .assert_mentions(&[
            "429 injected failure",
            "no answer within OPENROUTER_TIMEOUT (3 s)",
        ]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn no_secret_reaches_any_output_at_any_level() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let sandbox = Sandbox::with_shape(Shape::Startup);
    // An error message that quotes both keys, as a careless server might.
    for level in ["trace", "debug", "info"] {
        for (args, vars) in [
            (
                &["--production", "--output", "json"][..],
                &[("SPENDING_LIMIT", "10")][..],
            ),
            (
                &["--production", "--output", "json"],
                &[("SPENDING_LIMIT", "20")],
            ),
            (&["--production", "--check"], &[("SPENDING_LIMIT", "30")]),
            (&["--production", "--dry-run"], &[("ROTATE_KEY", level)]),
            (
                &["--production", "--output", "json"],
                &[("ROTATE_KEY", level)],
            ),
        ] {
            let mut all: Vec<(&str, &str)> = vars.to_vec();
            all.push(("LOG_LEVEL", level));
            let run = sandbox.mint(&standin, args, &all);
            assert!(
                matches!(run.code, 0 | 1),
                "{level} {args:?}: {}",
                run.stderr
            );
            assert_hides_keys(&run, &sandbox, &standin);
        }
    }
    // Error bodies that echo the secrets are redacted before they are shown.
    let secret = sandbox.stored().unwrap().secret;
    standin.fail(Fault::refuse(
        Some("GET"),
        400,
        &format!("bad key {MANAGEMENT_KEY} for {secret}"),
    ));
    let run = sandbox.mint(
        &standin,
        &["--production", "--output", "json"],
        &[("LOG_LEVEL", "trace")],
    );
    run.expect(78)
        .assert_mentions(&["bad key [key …sha256:", "] for sk-or-…(redacted))"]);
    assert_hides_keys(&run, &sandbox, &standin);
    sandbox.assert_secrets_only_where_they_belong(&[&MANAGEMENT_KEY[9..]]);
}

#[test]
fn dry_run_and_check_never_change_a_key() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    // A deployment that was given its key, now switched to minting.
    let sandbox = deployment();
    let orphan = standin.add_key(ACME_KEY_NAME);
    let before = Untouched::record(&sandbox);
    let plan = sandbox.mint(&standin, &["--production", "--dry-run"], &[]);
    plan.expect(0).assert_mentions(&[
        "OpenRouter key: mint a new key (no key stored yet)",
        &format!(
            "OpenRouter keys whose secret is lost: delete {}",
            orphan.hash
        ),
        "change    OPENROUTER_API_KEY (secret, value hidden)",
        "add       OPENAI_API_KEY (secret, value hidden)",
        "update the organization row (openrouter_api_key",
    ]);
    sandbox
        .mint(&standin, &["--production", "--check"], &[])
        .expect(1);
    before.check(&sandbox, "a dry run on a first run");
    assert!(standin.requests_of(&["POST", "PATCH", "DELETE"]).is_empty());
    assert_eq!(
        standin.existing_keys().len(),
        1,
        "the orphan is still there"
    );

    sandbox.mint(&standin, &["--production"], &[]).expect(0);
    let key = assert_one_key_everywhere(&sandbox, &standin);
    standin.clear_log();
    let cases: [(Vars, &[&str], &str); 3] = [
        (&[], &[], "Nothing to change."),
        (
            &[("SPENDING_LIMIT", "5")],
            &["--check"],
            "reconcile limit with one PATCH",
        ),
        (
            &[("ROTATE_KEY", "2026-11-30")],
            &["--check"],
            "mint a new key (a rotation)",
        ),
    ];
    for (vars, extra, words) in cases {
        let before = Untouched::record(&sandbox);
        let mut args = vec!["--production", "--dry-run"];
        args.extend_from_slice(extra);
        let run = sandbox.mint(&standin, &args, vars);
        run.expect(if extra.is_empty() { 0 } else { 1 })
            .assert_mentions(&[words]);
        assert_hides_keys(&run, &sandbox, &standin);
        before.check(&sandbox, words);
    }
    standin.delete_key(&key.hash);
    sandbox
        .mint(&standin, &["--production", "--check"], &[])
        .expect(1)
        .assert_mentions(&["mint a new key (the stored key was deleted on OpenRouter)"]);
    assert!(
        standin.requests_of(&["POST", "PATCH", "DELETE"]).is_empty(),
        "{:?}",
        standin.requests()
    );
}

#[test]
fn thirty_two_replicas_create_one_key() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let sandbox = Sandbox::with_shape(Shape::Startup);
    let commands = (0..32)
        .map(|_| {
            let mut cmd = sandbox.minting_command(&standin);
            cmd.arg("--production").env("LOG_LEVEL", "debug");
            cmd
        })
        .collect();
    let runs = run_together(commands);
    for run in &runs {
        run.expect(0);
        assert_hides_keys(run, &sandbox, &standin);
    }
    assert_eq!(
        standin.requests_of(&["POST"]).len(),
        1,
        "{:?}",
        standin.requests()
    );
    assert_eq!(standin.all_keys().len(), 1);
    assert_one_key_everywhere(&sandbox, &standin);
    let minted = runs
        .iter()
        .filter(|r| r.stderr.contains("OpenRouter key minted ("))
        .count();
    assert_eq!(minted, 1, "one replica minted, the others found its key");
}

#[test]
fn a_rotation_runs_once_per_token_and_the_old_key_goes_once_the_application_moved() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let sandbox = deployment_with_key(&standin);
    let old = assert_one_key_everywhere(&sandbox, &standin);
    let rotate = [("ROTATE_KEY", "2026-11-30")];

    let run = sandbox.mint(&standin, &["--production", "--output", "json"], &rotate);
    run.expect(0)
        .assert_mentions(&["OpenRouter key rotated", "previous key", "still live"]);
    let report = run.json();
    assert_eq!(report["openrouter_key"]["action"], "rotated");
    assert_eq!(report["openrouter_key"]["previous"]["status"], "waiting");
    let new = assert_one_key_everywhere_but(&sandbox, &standin, &old);
    assert_eq!(
        sandbox.stored().unwrap().previous.as_deref(),
        Some(old.hash.as_str())
    );

    // The same token again rotates nothing; the old key waits for the
    // application, which has not started since.
    standin.clear_log();
    let again = sandbox.mint(
        &standin,
        &["--production"],
        &[rotate[0], ("KEY_ROTATION_GRACE", "0")],
    );
    again
        .expect(0)
        .assert_mentions(&[&format!("previous OpenRouter key {} is still live; waiting for the application to start with the new key", old.hash)]);
    assert_eq!(
        standin.requests(),
        [format!("GET /api/v1/keys/{}", new.hash)]
    );

    // The application starts with the new key: with the grace not over, it
    // still waits, and says for how long.
    sandbox.application_starts_with(&new.secret, now() + 5);
    sandbox
        .mint(&standin, &["--production"], &rotate)
        .expect(0)
        .assert_mentions(&["waiting for KEY_ROTATION_GRACE"]);
    assert_eq!(standin.live_keys().len(), 2);

    // Grace over: the old key is deleted, after the row and the .env.
    let run = sandbox.mint(
        &standin,
        &["--production", "--output", "json"],
        &[rotate[0], ("KEY_ROTATION_GRACE", "0")],
    );
    run.expect(0)
        .assert_mentions(&[&format!("deleted the previous OpenRouter key {}", old.hash)]);
    assert_eq!(
        run.json()["openrouter_key"]["previous"]["status"],
        "deleted"
    );
    assert_hides_keys(&run, &sandbox, &standin);
    assert_eq!(assert_one_key_everywhere(&sandbox, &standin), new);
    assert_eq!(sandbox.stored().unwrap().previous, None);

    // --rotate-key rotates whatever the token.
    sandbox
        .mint(&standin, &["--production", "--rotate-key"], &rotate)
        .expect(0);
    let newest = assert_one_key_everywhere_but(&sandbox, &standin, &new);
    assert_ne!(newest.hash, new.hash);
}

#[test]
fn in_env_mode_the_replaced_key_is_never_deleted_and_every_run_says_so() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let sandbox = Sandbox::new();
    sandbox.mint(&standin, &[], &[]).expect(0);
    let old = assert_one_key_everywhere(&sandbox, &standin);
    sandbox
        .mint(&standin, &[], &[("ROTATE_KEY", "t1")])
        .expect(0);
    for _ in 0..2 {
        sandbox
            .mint(
                &standin,
                &[],
                &[("ROTATE_KEY", "t1"), ("KEY_ROTATION_GRACE", "0")],
            )
            .expect(0)
            .assert_mentions(&[
                &format!("previous OpenRouter key {} is still live", old.hash),
                "in env mode",
            ]);
    }
    assert_eq!(standin.live_keys().len(), 2);
    // A second rotation waits while the first one's key is live.
    sandbox
        .mint(&standin, &["--rotate-key"], &[])
        .expect(0)
        .assert_mentions(&["the rotation waits until that key is deleted"]);
    assert_eq!(standin.live_keys().len(), 2);
}

/// After a rotation: the new key is the store's, the `.env`'s and the
/// row's; the old one still lives beside it.
#[track_caller]
fn assert_one_key_everywhere_but(
    sandbox: &Sandbox,
    standin: &StandIn,
    old: &openrouter_standin::Key,
) -> openrouter_standin::Key {
    let stored = sandbox.stored().unwrap();
    let live = standin.live_keys();
    assert_eq!(live.len(), 2, "{live:#?}");
    let new = live.into_iter().find(|k| k.hash != old.hash).unwrap();
    assert_eq!(
        (stored.hash.as_str(), stored.secret.as_str()),
        (new.hash.as_str(), new.secret.as_str())
    );
    assert_eq!(
        sandbox.env_value("OPENROUTER_API_KEY").as_deref(),
        Some(new.secret.as_str())
    );
    if let Some((key, hash)) = sandbox.row_key() {
        assert_eq!(
            (key.as_str(), hash.as_deref()),
            (new.secret.as_str(), Some(new.hash.as_str()))
        );
    }
    new
}

#[test]
fn https_to_a_private_ca_works_through_ssl_cert_file_and_fails_clearly_without() {
    let standin = StandIn::start_tls(MANAGEMENT_KEY);
    assert!(standin.base_url().starts_with("https://localhost:"));
    let sandbox = Sandbox::with_shape(Shape::Startup);
    let ca = sandbox.path().join("test-ca.pem");
    std::fs::write(&ca, standin.ca_pem().expect("the test CA")).unwrap();

    let before = Untouched::record(&sandbox);
    let untrusted = sandbox.mint(&standin, &["--production"], &[("OPENROUTER_TIMEOUT", "3")]);
    untrusted.expect(75).assert_last_line_mentions(&[
        "OpenRouter is unreachable",
        "certificate",
        "set SSL_CERT_FILE to its CA certificate",
    ]);
    before.check(&sandbox, "an untrusted server");
    assert!(
        standin.requests().is_empty(),
        "no request got through the handshake"
    );

    let trusted = sandbox.mint(
        &standin,
        &["--production"],
        &[("SSL_CERT_FILE", ca.to_str().unwrap())],
    );
    trusted.expect(0);
    assert_hides_keys(&trusted, &sandbox, &standin);
    let key = assert_one_key_everywhere(&sandbox, &standin);
    standin.clear_log();
    sandbox
        .mint(
            &standin,
            &["--production"],
            &[("SSL_CERT_FILE", ca.to_str().unwrap())],
        )
        .expect(0);
    assert_eq!(
        standin.requests(),
        [format!("GET /api/v1/keys/{}", key.hash)]
    );
}

#[test]
fn the_stand_in_follows_the_documented_shapes() {
    use crate::common::openrouter_standin::raw_request;
    let standin = StandIn::start(MANAGEMENT_KEY);
    let auth = format!("Authorization: Bearer {MANAGEMENT_KEY}\r\n");
    let request = |text: String| {
        let answer = raw_request(standin.port(), &text);
        let (head, body) = answer.split_once("\r\n\r\n").expect("an answer");
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        (
            status,
            serde_json::from_str::<serde_json::Value>(body).unwrap(),
        )
    };
    let (status, created) = request(format!(
        "POST /api/v1/keys HTTP/1.1\r\n{auth}Content-Length: 27\r\n\r\n{{\"name\":\"n\",\"limit\":12.5}}  "
    ));
    assert_eq!(status, 201);
    let hash = created["data"]["hash"].as_str().unwrap().to_owned();
    assert!(created["key"].as_str().unwrap().starts_with("sk-or-v1-"));
    assert_eq!(created["data"]["limit"], 12.5);
    let (status, got) = request(format!("GET /api/v1/keys/{hash} HTTP/1.1\r\n{auth}\r\n"));
    assert_eq!(status, 200);
    assert!(
        got["data"].get("key").is_none() && got.get("key").is_none(),
        "the secret is shown once"
    );
    for i in 0..150 {
        let key = standin.add_key(&format!("k{i}"));
        if i % 50 == 0 {
            standin.set_disabled(&key.hash, true);
        }
    }
    let page = |query: &str| {
        request(format!("GET /api/v1/keys?{query} HTTP/1.1\r\n{auth}\r\n")).1["data"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(page("offset=0"), 100);
    assert_eq!(
        page("include_disabled=true&offset=100"),
        51,
        "151 keys in all"
    );
    assert_eq!(
        page("offset=100"),
        48,
        "disabled keys are hidden by default"
    );
    let (_, newest) = request(format!("GET /api/v1/keys HTTP/1.1\r\n{auth}\r\n"));
    assert_eq!(newest["data"][0]["name"], "k149", "newest first");
    let (status, error) = request(format!("DELETE /api/v1/keys/{hash} HTTP/1.1\r\n{auth}\r\n"));
    assert_eq!((status, error["deleted"].as_bool()), (200, Some(true)));
    let (status, error) = request(format!("GET /api/v1/keys/{hash} HTTP/1.1\r\n{auth}\r\n"));
    assert_eq!((status, error["error"]["code"].as_u64()), (404, Some(404)));
    let (status, error) = request("GET /api/v1/keys HTTP/1.1\r\n\r\n".to_owned());
    assert_eq!(
        (status, error["error"]["message"].as_str()),
        (401, Some("Missing Authentication header"))
    );
    let (status, error) = request(format!(
        "PATCH /api/v1/keys/{} HTTP/1.1\r\n{auth}Content-Length: 2\r\n\r\n{{}}",
        standin.live_keys()[0].hash
    ));
    assert_eq!(
        (status, error["error"]["message"].as_str()),
        (400, Some("No update fields provided"))
    );
    assert_eq!(standin.requests().len(), 10);
}

#[test]
fn a_sigterm_during_the_create_keeps_the_key_it_made() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    standin.fail(Fault::new(
        Some("POST"),
        1,
        FaultKind::Slow(Duration::from_secs(2)),
    ));
    let sandbox = Sandbox::with_shape(Shape::Startup);
    let mut cmd = sandbox.minting_command(&standin);
    cmd.arg("--production");
    let live = spawn(cmd);
    let started = Instant::now();
    while !standin.requests().iter().any(|r| r.starts_with("POST ")) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no create was sent"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    live.signal("TERM");
    let ended = live.wait(Duration::from_secs(30));
    assert_eq!(ended.run.code, 143, "{}", ended.run.stderr);
    assert_hides_keys(&ended.run, &sandbox, &standin);
    let created = standin.live_keys();
    assert_eq!(created.len(), 1);
    assert_eq!(
        sandbox.stored().map(|s| s.hash),
        Some(created[0].hash.clone()),
        "the key was stored although SIGTERM came first"
    );
    standin.clear_log();
    sandbox.mint(&standin, &["--production"], &[]).expect(0);
    assert_eq!(
        standin.requests(),
        [format!("GET /api/v1/keys/{}", created[0].hash)]
    );
    assert_one_key_everywhere(&sandbox, &standin);
}

#[test]
fn a_previous_key_deleted_by_hand_is_forgotten_and_the_next_rotation_runs() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let sandbox = Sandbox::new();
    sandbox.mint(&standin, &[], &[]).expect(0);
    let old = assert_one_key_everywhere(&sandbox, &standin);
    sandbox
        .mint(&standin, &[], &[("ROTATE_KEY", "t1")])
        .expect(0);
    // In env mode the operator deletes the old key, as the warning says.
    standin.delete_key(&old.hash);
    sandbox
        .mint(&standin, &[], &[("ROTATE_KEY", "t1")])
        .expect(0)
        .assert_mentions(&[&format!(
            "the previous OpenRouter key {} was deleted on OpenRouter: no longer waiting for it",
            old.hash
        )])
        .assert_absent("is still live");
    assert_eq!(sandbox.stored().unwrap().previous, None);
    let current = assert_one_key_everywhere(&sandbox, &standin);
    // The next rotation is no longer held back.
    sandbox
        .mint(&standin, &[], &[("ROTATE_KEY", "t2")])
        .expect(0);
    assert_eq!(
        sandbox.stored().unwrap().previous.as_deref(),
        Some(current.hash.as_str())
    );
}

#[test]
fn loopback_is_never_proxied() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let sandbox = Sandbox::with_shape(Shape::Startup);
    // A proxy that does not exist: a call that went through it would fail.
    let proxy = [
        ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ("NO_PROXY", "internal.example"),
    ];
    sandbox.mint(&standin, &["--production"], &proxy).expect(0);
    assert_one_key_everywhere(&sandbox, &standin);
}
