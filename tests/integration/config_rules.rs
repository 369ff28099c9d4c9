//! Every configuration rule against the built binary, one test each: the
//! exit code, a message that names the variable and says what to do, no
//! secret in the output, and a deployment left exactly as it was.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::common::*;

const CONFIG: i32 = 78;
const NO_PERMISSION: i32 = 77;
const USAGE: i32 = 64;

/// `common::refused_by`, and the `.env` still exactly the one `deployment`
/// wrote.
#[track_caller]
fn refused_by(sandbox: &Sandbox, cmd: Command, case: &str, code: i32, needles: &[&str]) -> Run {
    let run = crate::common::refused_by(sandbox, cmd, case, code, needles);
    assert_eq!(sandbox.env_text(), existing_env(), "{case}");
    run
}

/// A `--production` run of a fresh deployment with `vars` set on top of a
/// valid configuration, refused with `code`.
#[track_caller]
fn refused(vars: &[(&str, &str)], code: i32, needles: &[&str]) -> Run {
    refused_without(&[], vars, code, needles)
}

/// Like `refused`, with the variables in `removed` unset first.
#[track_caller]
fn refused_without(removed: &[&str], vars: &[(&str, &str)], code: i32, needles: &[&str]) -> Run {
    let sandbox = deployment();
    let mut cmd = sandbox.command();
    for name in removed {
        cmd.env_remove(name);
    }
    cmd.arg("--production").envs(vars.iter().copied());
    let set: Vec<String> = vars
        .iter()
        .map(|(n, v)| format!("{n}={}", short(v)))
        .collect();
    refused_by(
        &sandbox,
        cmd,
        &format!("{set:?} without {removed:?}"),
        code,
        needles,
    )
}

/// A value for a failure message: long ones cut to their start.
fn short(value: &str) -> String {
    match value.char_indices().nth(40) {
        Some((end, _)) => format!("{:?}… ({} bytes)", &value[..end], value.len()),
        None => format!("{value:?}"),
    }
}

/// Like `refused` for each value of `var` in turn; a failure names the value.
#[track_caller]
fn refused_values(var: &str, values: &[&str], needles: &[&str]) {
    let sandbox = deployment();
    for value in values {
        let mut cmd = sandbox.command();
        cmd.arg("--production").env(var, value);
        let mut all = vec![var];
        all.extend_from_slice(needles);
        refused_by(
            &sandbox,
            cmd,
            &format!("{var}={}", short(value)),
            CONFIG,
            &all,
        );
    }
}

#[track_caller]
fn assert_absent(run: &Run, text: &str) {
    assert!(
        !run.output().contains(text),
        "{text:?} appears in the output:\n{}",
        run.output()
    );
}

/// A mode 000 file holding `content`, in the sandbox.
fn locked_file(sandbox: &Sandbox, name: &str, content: &str) -> String {
    let path = sandbox.path().join(name);
    fs::write(&path, content).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    path.to_str().unwrap().to_owned()
}

// ---------------------------------------------------------- ORGANIZATION_NAME

#[test]
fn organization_name_is_required() {
    refused_without(
        &["ORGANIZATION_NAME"],
        &[],
        CONFIG,
        &[
            "ORGANIZATION_NAME is not set",
            "Set it to the client organization's name",
        ],
    );
}

#[test]
fn an_empty_organization_name_counts_as_unset() {
    refused(
        &[("ORGANIZATION_NAME", "")],
        CONFIG,
        &["ORGANIZATION_NAME is not set", "Set it"],
    );
}

#[test]
fn organization_name_has_at_least_3_characters_after_trimming() {
    refused(
        &[("ORGANIZATION_NAME", "   Ab   ")],
        CONFIG,
        &[
            "ORGANIZATION_NAME",
            "3 to 100 characters",
            "has 2",
            "Use the organization's full name",
        ],
    );
}

#[test]
fn organization_name_has_at_most_100_characters() {
    let name = "N".repeat(101);
    let run = refused(
        &[("ORGANIZATION_NAME", &name)],
        CONFIG,
        &[
            "ORGANIZATION_NAME",
            "3 to 100 characters",
            "has 101",
            "Use the organization's full name",
        ],
    );
    assert_absent(&run, &name);
}

#[test]
fn organization_name_refuses_control_characters() {
    let run = refused(
        &[(
            "ORGANIZATION_NAME",
            "Acme\nOPENROUTER_HOST=https://evil.example",
        )],
        CONFIG,
        &["ORGANIZATION_NAME", "U+000A", "printable characters only"],
    );
    assert_absent(&run, "evil.example");
}

#[test]
fn organization_name_refuses_invisible_characters() {
    refused(
        &[("ORGANIZATION_NAME", "Ac\u{202E}me")],
        CONFIG,
        &[
            "ORGANIZATION_NAME",
            "invisible character U+202E",
            "printable characters only",
        ],
    );
}

#[test]
fn organization_name_must_read_back_the_same_from_the_env_file() {
    refused_values(
        "ORGANIZATION_NAME",
        &["Acme ${HOME}", "Acme \\", "Bob's $5 shop"],
        &["Change the value"],
    );
}

// -------------------------------------------------------- OPENROUTER_API_KEY

#[test]
fn api_key_is_required() {
    refused_without(
        &["OPENROUTER_API_KEY"],
        &[],
        CONFIG,
        &[
            "OPENROUTER_API_KEY is not set",
            "OPENROUTER_API_KEY_FILE to a file",
        ],
    );
}

#[test]
fn api_key_and_its_file_are_not_both_set() {
    let sandbox = deployment();
    let path = sandbox.path().join("key");
    fs::write(&path, KEY).unwrap();
    let mut cmd = sandbox.command();
    cmd.arg("--production")
        .env("OPENROUTER_API_KEY_FILE", &path);
    refused_by(
        &sandbox,
        cmd,
        "both",
        CONFIG,
        &[
            "OPENROUTER_API_KEY and OPENROUTER_API_KEY_FILE are both set",
            "Set only one",
        ],
    );
}

#[test]
fn api_key_starts_with_sk_or() {
    let value = "sk-ant-LEAKPROBE00aaaa1111bbbb2222";
    let run = refused(
        &[("OPENROUTER_API_KEY", value)],
        CONFIG,
        &[
            "OPENROUTER_API_KEY",
            "does not start with `sk-or-`",
            "https://openrouter.ai/settings/keys",
        ],
    );
    assert_absent(&run, "LEAKPROBE");
}

#[test]
fn api_key_has_at_least_20_characters() {
    let run = refused(
        &[("OPENROUTER_API_KEY", "sk-or-v1-LEAKPROBE")],
        CONFIG,
        &[
            "OPENROUTER_API_KEY",
            "shorter than 20 characters",
            "Copy the key",
        ],
    );
    assert_absent(&run, "LEAKPROBE");
}

#[test]
fn api_key_holds_only_letters_digits_dash_and_underscore() {
    for value in [
        format!("{KEY} "),
        format!("{KEY}\n"),
        format!("sk-or-v1-LEAKPROBE {}", &KEY[9..]),
    ] {
        let run = refused(
            &[("OPENROUTER_API_KEY", &value)],
            CONFIG,
            &[
                "OPENROUTER_API_KEY",
                "other than A-Z, a-z, 0-9",
                "Copy the key",
            ],
        );
        assert_absent(&run, "LEAKPROBE");
    }
}

#[test]
fn api_key_file_must_exist() {
    refused_without(
        &["OPENROUTER_API_KEY"],
        &[("OPENROUTER_API_KEY_FILE", "/nonexistent/openrouter_api_key")],
        CONFIG,
        &[
            "OPENROUTER_API_KEY_FILE=/nonexistent/openrouter_api_key",
            "it does not exist",
            "Point it at the mounted secret file",
        ],
    );
}

#[test]
fn api_key_file_must_not_be_a_directory() {
    let sandbox = deployment();
    let mut cmd = sandbox.command();
    cmd.env_remove("OPENROUTER_API_KEY")
        .env("OPENROUTER_API_KEY_FILE", sandbox.path().join("shared"))
        .arg("--production");
    refused_by(
        &sandbox,
        cmd,
        "directory",
        CONFIG,
        &[
            "OPENROUTER_API_KEY_FILE=",
            "is a directory",
            "not at the folder",
        ],
    );
}

/// Refuse OPENROUTER_API_KEY_FILE holding `bytes`.
#[track_caller]
fn refused_key_file(bytes: &[u8], needles: &[&str]) -> Run {
    let sandbox = deployment();
    let path = sandbox.path().join("key");
    fs::write(&path, bytes).unwrap();
    let mut cmd = sandbox.command();
    cmd.env_remove("OPENROUTER_API_KEY")
        .env("OPENROUTER_API_KEY_FILE", &path)
        .arg("--production");
    let mut all = vec!["OPENROUTER_API_KEY_FILE"];
    all.extend_from_slice(needles);
    refused_by(
        &sandbox,
        cmd,
        &format!("{} bytes", bytes.len()),
        CONFIG,
        &all,
    )
}

#[test]
fn api_key_file_is_at_most_64_kib() {
    let mut bytes = KEY.as_bytes().to_vec();
    bytes.resize(64 * 1024 + 1, b'a');
    refused_key_file(
        &bytes,
        &["larger than 65536 bytes", "holds only the secret"],
    );
}

#[test]
fn api_key_file_dev_zero_is_refused_without_hanging() {
    refused_without(
        &["OPENROUTER_API_KEY"],
        &[("OPENROUTER_API_KEY_FILE", "/dev/zero")],
        CONFIG,
        &["OPENROUTER_API_KEY_FILE=/dev/zero", "not a regular file"],
    );
}

#[test]
fn api_key_file_must_not_be_empty() {
    refused_key_file(b"", &["is empty", "Put the secret in the file"]);
    refused_key_file(b"\n", &["is empty", "Put the secret in the file"]);
}

#[test]
fn api_key_file_must_be_utf8() {
    refused_key_file(
        b"sk-or-v1-\xff\xfe\xfd0000aaaa1111bbbb",
        &["is not UTF-8 text", "Store the secret as text"],
    );
}

#[test]
fn api_key_file_keeps_more_than_one_trailing_newline() {
    let run = refused_key_file(
        format!("{KEY}\n\n").as_bytes(),
        &["other than A-Z", "line break"],
    );
    assert_absent(&run, &KEY[9..]);
}

#[test]
fn api_key_file_is_read_with_one_trailing_newline_dropped() {
    let sandbox = deployment();
    let path = sandbox.path().join("key");
    fs::write(&path, format!("{KEY}\n")).unwrap();
    let mut cmd = sandbox.command();
    cmd.env_remove("OPENROUTER_API_KEY")
        .env("OPENROUTER_API_KEY_FILE", &path)
        .arg("--production");
    Run::from(cmd.output().unwrap()).expect(0);
    assert_eq!(
        python_dotenv(&sandbox.env_path())["OPENROUTER_API_KEY"],
        KEY
    );
    assert_eq!(sandbox.row(ACME_ID).api_key, KEY);
}

#[test]
fn an_unreadable_api_key_file_exits_77() {
    let sandbox = deployment();
    let locked = locked_file(&sandbox, "key", KEY);
    let mut cmd = sandbox.command();
    cmd.env_remove("OPENROUTER_API_KEY")
        .env("OPENROUTER_API_KEY_FILE", &locked)
        .arg("--production");
    let Some(cmd) = without_dac_override(cmd, &locked) else {
        return;
    };
    refused_by(
        &sandbox,
        cmd,
        "unreadable key file",
        NO_PERMISSION,
        &[
            "OPENROUTER_API_KEY_FILE=",
            "permission denied",
            "Point it at the mounted secret file",
        ],
    );
}

// -------------------------------------------------- OPENROUTER_EXTERNAL_USER

#[test]
fn external_user_is_3_to_64_letters_digits_dashes_or_underscores() {
    refused_values(
        "OPENROUTER_EXTERNAL_USER",
        &["ab", "mai client", "mai.client_63a4eb6d", &"x".repeat(65)],
        &[
            "3 to 64 characters",
            "unset it to derive one from ORGANIZATION_NAME",
        ],
    );
}

// ----------------------------------------------------------- OPENROUTER_HOST

#[test]
fn host_starts_with_http_or_https() {
    refused_values(
        "OPENROUTER_HOST",
        &["openrouter.ai/api/v1", "ftp://openrouter.ai/api/v1"],
        &[
            "must start with https:// or http://",
            "Use an http(s) URL such as https://openrouter.ai/api/v1",
        ],
    );
}

#[test]
fn host_names_a_host() {
    refused_values(
        "OPENROUTER_HOST",
        &["https://", "https:///api/v1"],
        &["has no host name", "Use an http(s) URL"],
    );
}

#[test]
fn host_holds_only_url_characters() {
    refused_values(
        "OPENROUTER_HOST",
        &[
            "https://open router.ai/api/v1",
            "https://openrouter.ai/{v1}",
        ],
        &["which a URL cannot hold unescaped", "Use an http(s) URL"],
    );
}

// --------------------------------------------------------------- MARKUP_RATE

#[test]
fn markup_rate_is_finite() {
    refused_values(
        "MARKUP_RATE",
        &["NaN", "inf", "1e400"],
        &["must be a finite number", "MARKUP_RATE=1.3"],
    );
}

#[test]
fn markup_rate_is_greater_than_zero() {
    refused_values(
        "MARKUP_RATE",
        &["-1", "0"],
        &["must be greater than 0", "MARKUP_RATE=1.3"],
    );
}

#[test]
fn markup_rate_is_at_most_100() {
    refused_values(
        "MARKUP_RATE",
        &["100.5"],
        &["must be at most 100", "1.3 means a 30% markup"],
    );
}

#[test]
fn markup_rate_uses_a_dot_not_a_comma() {
    refused_values(
        "MARKUP_RATE",
        &["1,3"],
        &["uses a comma", "Write the decimal with a dot"],
    );
}

#[test]
fn markup_rate_is_a_number() {
    refused_values(
        "MARKUP_RATE",
        &["30%", "high"],
        &["is not a number", "Use a decimal number"],
    );
}

// ------------------------------------------------------------ SPENDING_LIMIT

#[test]
fn spending_limit_is_positive() {
    refused_values(
        "SPENDING_LIMIT",
        &["0", "-100"],
        &["must be greater than 0", "`unlimited`"],
    );
}

#[test]
fn spending_limit_is_a_finite_number_or_unlimited() {
    refused_values(
        "SPENDING_LIMIT",
        &["none", "1000 USD", "NaN", "1e400"],
        &["SPENDING_LIMIT=1000, or `unlimited`"],
    );
}

#[test]
fn spending_limit_uses_a_dot_not_a_comma() {
    refused_values(
        "SPENDING_LIMIT",
        &["1,000"],
        &["uses a comma", "Write the decimal with a dot"],
    );
}

#[test]
fn spending_limit_is_written_like_python_str_float() {
    let sandbox = Sandbox::new();
    // Right-hand sides from python3 -c 'print(str(float(x)))'.
    for (value, python) in [
        ("1000", "1000.0"),
        ("12.50", "12.5"),
        ("1e16", "1e+16"),
        ("1.5e-5", "1.5e-05"),
        ("0.0001", "0.0001"),
        ("123456789012345678", "1.2345678901234568e+17"),
        ("UNLIMITED", "unlimited"),
    ] {
        sandbox
            .run_with(&[], &[("SPENDING_LIMIT", value)])
            .expect(0);
        assert_eq!(
            python_dotenv(&sandbox.env_path())["SPENDING_LIMIT"],
            python,
            "SPENDING_LIMIT={value}"
        );
    }
}

// ------------------------------------------------------------------ MODEL_IDS

#[test]
fn model_ids_hold_valid_ids_only() {
    refused_values(
        "MODEL_IDS",
        &["openai/gpt-4o,gpt 4o", "openai/gpt-4o;rm"],
        &["holds an invalid model id", "separated by commas"],
    );
}

#[test]
fn model_ids_list_at_least_one_model() {
    refused_values(
        "MODEL_IDS",
        &[",", " , "],
        &["lists no model", "unset MODEL_IDS to allow every model"],
    );
}

// ----------------------------------------------------------- WEBUI_SECRET_KEY

#[test]
fn webui_secret_key_and_its_file_are_not_both_set() {
    let sandbox = deployment();
    let path = sandbox.path().join("secret");
    fs::write(&path, SECRET_KEY).unwrap();
    let mut cmd = sandbox.command();
    cmd.arg("--production").env("WEBUI_SECRET_KEY_FILE", &path);
    refused_by(
        &sandbox,
        cmd,
        "both",
        CONFIG,
        &[
            "WEBUI_SECRET_KEY and WEBUI_SECRET_KEY_FILE are both set",
            "Set only one",
        ],
    );
}

#[test]
fn webui_secret_key_refuses_control_characters() {
    refused(
        &[("WEBUI_SECRET_KEY", &format!("{SECRET_KEY}\t"))],
        CONFIG,
        &[
            "WEBUI_SECRET_KEY",
            "contains a control character",
            "Use printable characters only",
        ],
    );
}

#[test]
fn webui_secret_key_has_at_most_4096_characters() {
    let value = format!("{SECRET_KEY}{}", "k".repeat(4096));
    let run = refused(
        &[("WEBUI_SECRET_KEY", &value)],
        CONFIG,
        &[
            "WEBUI_SECRET_KEY",
            "longer than 4096 characters",
            "Use a shorter key",
        ],
    );
    assert_absent(&run, &"k".repeat(32));
}

#[test]
fn webui_secret_key_must_read_back_the_same_from_the_env_file() {
    for value in [
        format!("{SECRET_KEY}${{X}}"),
        format!("{SECRET_KEY}\\"),
        format!("{SECRET_KEY}'$"),
    ] {
        refused(
            &[("WEBUI_SECRET_KEY", &value)],
            CONFIG,
            &["WEBUI_SECRET_KEY", "Change the value"],
        );
    }
}

#[test]
fn webui_secret_key_file_must_exist() {
    refused_without(
        &["WEBUI_SECRET_KEY"],
        &[("WEBUI_SECRET_KEY_FILE", "/nonexistent/webui_secret_key")],
        CONFIG,
        &[
            "WEBUI_SECRET_KEY_FILE=/nonexistent/webui_secret_key",
            "it does not exist",
            "mounted secret file",
        ],
    );
}

#[test]
fn an_unreadable_webui_secret_key_file_exits_77() {
    let sandbox = deployment();
    let locked = locked_file(&sandbox, "secret", SECRET_KEY);
    let mut cmd = sandbox.command();
    cmd.env_remove("WEBUI_SECRET_KEY")
        .env("WEBUI_SECRET_KEY_FILE", &locked)
        .arg("--production");
    let Some(cmd) = without_dac_override(cmd, &locked) else {
        return;
    };
    refused_by(
        &sandbox,
        cmd,
        "unreadable secret key file",
        NO_PERMISSION,
        &["WEBUI_SECRET_KEY_FILE=", "permission denied"],
    );
}

// --------------------------------------------------- DATABASE_URL, DATA_DIR

#[test]
fn database_url_supports_only_sqlite() {
    let run = refused(
        &[("DATABASE_URL", "postgres://mai:hunter2@db:5432/mai")],
        CONFIG,
        &[
            "DATABASE_URL",
            "unsupported scheme `postgres`",
            "supports only SQLite files",
            "DATABASE_URL=sqlite:////app/backend/data/webui.db",
        ],
    );
    assert_absent(&run, "hunter2");
}

#[test]
fn database_url_is_a_sqlite_url() {
    refused_values(
        "DATABASE_URL",
        &["/app/backend/data/webui.db", "sqlite://webui.db"],
        &["is not a SQLite file URL", "supports only SQLite files"],
    );
}

#[test]
fn database_url_names_a_file_without_parameters() {
    refused_values(
        "DATABASE_URL",
        &["sqlite:///", "sqlite:///data/webui.db?mode=ro"],
        &[
            "must name a database file, without query parameters",
            "unset DATABASE_URL",
        ],
    );
}

#[test]
fn database_url_refuses_the_in_memory_database() {
    let run = refused(
        &[
            ("DATABASE_URL", "sqlite:///:memory:"),
            ("CREATE_SCHEMA", "true"),
        ],
        CONFIG,
        &["DATABASE_URL", "in-memory", "supports only SQLite files"],
    );
    assert_absent(&run, "inserted");
}

#[test]
fn database_url_takes_absolute_and_relative_paths() {
    let sandbox = deployment();
    // Absolute: four slashes. DATA_DIR points elsewhere to prove the URL wins.
    let absolute = format!("sqlite:///{}", sandbox.db_path().display());
    assert!(absolute.starts_with("sqlite:////"), "{absolute}");
    sandbox
        .run_with(
            &["--production"],
            &[("DATABASE_URL", &absolute), ("DATA_DIR", "/nonexistent")],
        )
        .expect(0);
    assert_eq!(sandbox.row(ACME_ID).api_key, KEY);

    // Relative: three slashes, from the working directory (the sandbox).
    let other = deployment();
    other
        .run_with(
            &["--production"],
            &[("DATABASE_URL", "sqlite:///data/webui.db")],
        )
        .expect(0);
    assert_eq!(other.row(ACME_ID).api_key, KEY);
}

#[test]
fn data_dir_must_be_a_directory() {
    let sandbox = deployment();
    let mut cmd = sandbox.command();
    cmd.arg("--production").env("DATA_DIR", sandbox.db_path());
    refused_by(
        &sandbox,
        cmd,
        "DATA_DIR is a file",
        CONFIG,
        &[
            "DATA_DIR",
            "is not a directory",
            "Point DATA_DIR at the application's data volume",
        ],
    );
}

// ------------------------------------------------ ENV_FILE and ENV_FILE_MODE

#[test]
fn env_file_names_a_file_not_a_directory() {
    let sandbox = deployment();
    let mut cmd = sandbox.command();
    cmd.arg("--production").env(
        "ENV_FILE",
        format!("{}/", sandbox.path().join("shared").display()),
    );
    refused_by(
        &sandbox,
        cmd,
        "ENV_FILE=dir/",
        CONFIG,
        &["ENV_FILE", "names a directory", "ENV_FILE=/shared/.env"],
    );
}

#[test]
fn env_file_mode_is_an_octal_mode() {
    refused_values(
        "ENV_FILE_MODE",
        &["rw-------", "0800", "1777"],
        &["octal file mode", "keep it 0600"],
    );
}

#[test]
fn env_file_mode_lets_the_owner_read_and_write() {
    refused_values(
        "ENV_FILE_MODE",
        &["0400", "0040"],
        &["lets the owner read and write", "keep it 0600"],
    );
}

// ------------------------------------------------------------- LOCK_TIMEOUT

#[test]
fn lock_timeout_is_0_to_86400_seconds() {
    refused_values(
        "LOCK_TIMEOUT",
        &["-1", "86401", "NaN", "inf"],
        &["from 0 to 86400", "LOCK_TIMEOUT=60"],
    );
}

#[test]
fn lock_timeout_is_a_number() {
    refused_values(
        "LOCK_TIMEOUT",
        &["soon", "30s"],
        &["must be a number of seconds", "LOCK_TIMEOUT=60"],
    );
}

// ------------------------------------------------------ LOG_FORMAT, LOG_LEVEL

#[test]
fn log_format_is_text_or_json() {
    refused_values(
        "LOG_FORMAT",
        &["xml"],
        &["must be text or json", "LOG_FORMAT=json"],
    );
}

#[test]
fn log_level_is_a_known_level() {
    refused_values(
        "LOG_LEVEL",
        &["verbose"],
        &[
            "must be error, warn, info, debug, trace or off",
            "LOG_LEVEL=debug",
        ],
    );
}

// ----------------------------------------- CREATE_SCHEMA, REQUIRE_DATABASE

#[test]
fn create_schema_is_a_boolean() {
    refused_values(
        "CREATE_SCHEMA",
        &["maybe", "2"],
        &["must be true or false", "CREATE_SCHEMA=true"],
    );
}

#[test]
fn require_database_is_a_boolean() {
    refused_values(
        "REQUIRE_DATABASE",
        &["maybe", "2"],
        &["must be true or false", "REQUIRE_DATABASE=true"],
    );
}

#[test]
fn create_schema_and_require_database_are_not_both_true() {
    refused(
        &[("CREATE_SCHEMA", "true"), ("REQUIRE_DATABASE", "true")],
        CONFIG,
        &[
            "CREATE_SCHEMA and REQUIRE_DATABASE are both true",
            "not both",
        ],
    );
}

// ------------------------------------------ PROVISION_MODE, WAIT_FOR_DATABASE

#[test]
fn provision_mode_is_env_database_or_production() {
    refused_values(
        "PROVISION_MODE",
        &["prod", "--production"],
        &[
            "must be env, database or production",
            "production also verifies both",
        ],
    );
}

#[test]
fn wait_for_database_is_a_boolean_or_seconds() {
    refused_values(
        "WAIT_FOR_DATABASE",
        &["soon", "-5", "86401"],
        &["from 0 to 86400", "WAIT_FOR_DATABASE=60"],
    );
}

// ------------------------------------------------- the environment as a whole

#[test]
fn empty_values_mean_unset() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    for v in mai_provision::config::VARIABLES {
        if !matches!(
            v.name,
            "ORGANIZATION_NAME" | "OPENROUTER_API_KEY" | "DATA_DIR" | "ENV_FILE"
        ) {
            cmd.env(v.name, "");
        }
    }
    let run = Run::from(cmd.output().unwrap());
    run.expect(0);
    let values = python_dotenv(&sandbox.env_path());
    assert_eq!(values["OPENROUTER_HOST"], "https://openrouter.ai/api/v1");
    assert_eq!(values["SPENDING_LIMIT"], "unlimited");
    assert_eq!(
        sandbox.row(ACME_ID).markup_rate,
        rusqlite::types::Value::Real(1.3)
    );
}

#[test]
fn invalid_utf8_in_one_of_our_variables_is_named() {
    let sandbox = deployment();
    let mut cmd = sandbox.command();
    cmd.arg("--production")
        .env("MARKUP_RATE", OsStr::from_bytes(b"1.\xff"));
    refused_by(
        &sandbox,
        cmd,
        "non-UTF-8 MARKUP_RATE",
        CONFIG,
        &["MARKUP_RATE is not valid UTF-8", "Set it to UTF-8 text"],
    );
}

#[test]
fn invalid_utf8_in_another_variable_is_ignored() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    let mut cmd = sandbox.command();
    cmd.arg("--production")
        .env("LANG", OsStr::from_bytes(b"pl_PL.\xff"))
        .env(OsStr::from_bytes(b"ODD_\xfe"), "x");
    Run::from(cmd.output().unwrap()).expect(0);
    assert_eq!(sandbox.row(ACME_ID).api_key, KEY);
}

#[test]
fn a_variable_over_64_kib_is_refused() {
    let value = "Q".repeat(64 * 1024 + 1);
    let run = refused(
        &[("MODEL_IDS", &value)],
        CONFIG,
        &[
            "MODEL_IDS is 65537 bytes long",
            "more than the 65536 bytes allowed",
            "Check its value",
        ],
    );
    assert_absent(&run, "QQQQ");
}

#[test]
fn an_oversized_api_key_is_refused_without_showing_it() {
    let value = format!("{KEY}{}", "Z".repeat(64 * 1024));
    let run = refused(
        &[("OPENROUTER_API_KEY", &value)],
        CONFIG,
        &[
            &format!("OPENROUTER_API_KEY is {} bytes long", value.len()),
            "Check its value",
        ],
    );
    assert_absent(&run, "ZZZZ");
}

#[test]
fn a_configuration_error_in_the_json_report() {
    let sandbox = deployment();
    let mut cmd = sandbox.command();
    cmd.args(["--production", "--output", "json"])
        .env("MARKUP_RATE", "1,3");
    let run = refused_by(&sandbox, cmd, "json", CONFIG, &["MARKUP_RATE"]);
    let report: serde_json::Value =
        serde_json::from_str(run.stdout.trim()).expect("one JSON report on stdout");
    assert_eq!(report["status"], "error");
    assert_eq!(report["exit_code"], CONFIG);
    let error = report["error"].as_str().unwrap();
    assert!(error.starts_with("MARKUP_RATE uses a comma"), "{error}");
}

// --------------------------------------------------------- flags and usage

#[test]
fn an_unknown_flag_exits_64() {
    let sandbox = deployment();
    let mut cmd = sandbox.command();
    cmd.arg("--init-db");
    refused_by(
        &sandbox,
        cmd,
        "--init-db",
        USAGE,
        &["--init-db", "try '--help'"],
    );
}

#[test]
fn two_modes_at_once_exit_64() {
    let sandbox = deployment();
    let mut cmd = sandbox.command();
    cmd.args(["--init-database", "--production"]);
    refused_by(
        &sandbox,
        cmd,
        "two modes",
        USAGE,
        &[
            "'--init-database' cannot be used with '--production'",
            "try '--help'",
        ],
    );
}

#[test]
fn wait_for_database_flag_takes_0_to_86400_seconds() {
    let sandbox = deployment();
    for arg in [
        "--wait-for-database=-1",
        "--wait-for-database=86401",
        "--wait-for-database=NaN",
        "--wait-for-database=soon",
    ] {
        let mut cmd = sandbox.command();
        cmd.arg(arg);
        refused_by(
            &sandbox,
            cmd,
            arg,
            USAGE,
            &["--wait-for-database", "try '--help'"],
        );
    }
}

#[test]
fn an_unknown_output_format_exits_64() {
    let sandbox = deployment();
    let mut cmd = sandbox.command();
    cmd.args(["--output", "xml"]);
    refused_by(
        &sandbox,
        cmd,
        "--output xml",
        USAGE,
        &["'xml'", "possible values: text, json"],
    );
}

#[test]
fn help_lists_every_variable_with_its_default_and_every_exit_code() {
    let sandbox = deployment();
    let mut cmd = sandbox.command();
    cmd.arg("--help");
    let run = refused_by(&sandbox, cmd, "--help", 0, &["Usage: mai-provision"]);
    let help = &run.stdout;
    for v in mai_provision::config::VARIABLES {
        let line = help
            .lines()
            .find(|l| l.split_whitespace().next() == Some(v.name))
            .unwrap_or_else(|| panic!("--help does not list {}:\n{help}", v.name));
        assert!(
            line.contains(&format!("[{}]", v.default)),
            "{}: no default in {line:?}",
            v.name
        );
    }
    for (code, meaning) in mai_provision::exit::TABLE {
        let code = code.code().to_string();
        assert!(
            help.lines()
                .any(|l| l.split_whitespace().next() == Some(code.as_str()) && l.contains(meaning)),
            "--help does not list exit code {code} ({meaning}):\n{help}"
        );
    }
    for flag in [
        "--init-database",
        "--production",
        "--dry-run",
        "--check",
        "--output",
        "--wait-for-database",
        "--version",
    ] {
        assert!(help.contains(flag), "--help does not list {flag}");
    }
}

#[test]
fn help_needs_no_configuration() {
    let out = Command::new(BIN)
        .env_clear()
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ORGANIZATION_NAME"));
}

#[test]
fn version_prints_the_crate_and_sqlite_versions() {
    let sandbox = deployment();
    let mut cmd = sandbox.command();
    cmd.arg("--version");
    let run = refused_by(&sandbox, cmd, "--version", 0, &[]);
    let line = run.stdout.trim();
    assert!(
        line.starts_with(&format!("mai-provision {} ", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    assert!(line.contains("SQLite 3."), "{line}");
    // Without any configuration too, and as -V.
    let out = Command::new(BIN).env_clear().arg("-V").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), line);
}
