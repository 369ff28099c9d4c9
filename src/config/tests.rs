use super::*;
use crate::openrouter::LimitReset;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

/// Recognisable fake secrets: no error message may ever contain them.
const KEY: &str = "sk-or-v1-UNITFAKE0000aaaa1111bbbb2222cccc3333dddd4444";
const SECRET: &str = "UNIT-webui-secret-Zq8Xw3Rt";

fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    pairs
        .iter()
        .map(|(n, v)| (OsString::from(n), OsString::from(v)))
        .collect()
}

/// A minimal valid environment with `changes` applied: a pair replaces the
/// base variable of the same name, or adds a new one.
fn env(changes: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    let mut pairs: Vec<(&str, &str)> =
        vec![("ORGANIZATION_NAME", "Acme"), ("OPENROUTER_API_KEY", KEY)];
    for (name, value) in changes {
        pairs.retain(|(n, _)| n != name);
        pairs.push((name, value));
    }
    os(&pairs)
}

/// The valid environment less `removed`, plus `added`.
fn env_without(removed: &[&str], added: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    let mut vars = env(added);
    vars.retain(|(n, _)| !removed.iter().any(|r| OsStr::new(r) == n));
    vars
}

/// The given OpenRouter key of a configuration without a management key.
#[track_caller]
fn given(config: &Config) -> &str {
    config
        .key_source
        .given()
        .unwrap_or_else(|| panic!("no given key: {config:?}"))
        .expose()
}

#[track_caller]
fn ok(changes: &[(&str, &str)]) -> Config {
    from_vars(env(changes)).unwrap_or_else(|e| panic!("{changes:?} was refused: {e}"))
}

#[track_caller]
fn err(changes: &[(&str, &str)]) -> ConfigError {
    match from_vars(env(changes)) {
        Ok(config) => panic!("{changes:?} was accepted: {config:?}"),
        Err(e) => e,
    }
}

/// Assert `e` is `Invalid` for `var`, that its problem mentions `problem`,
/// that it says what to do, and that the message starts with the name.
#[track_caller]
fn assert_invalid(e: &ConfigError, var: &str, problem: &str) {
    let ConfigError::Invalid {
        var: got,
        problem: text,
        fix,
    } = e
    else {
        panic!("expected Invalid for {var}, got {e:?}");
    };
    assert_eq!(*got, var, "{e}");
    assert!(text.contains(problem), "{var}: {text:?} lacks {problem:?}");
    assert!(fix.len() > 10, "{var}: no advice in {e}");
    assert!(e.to_string().starts_with(var), "{e}");
}

/// Assert that the message of `e` holds every one of `words`: the rule's
/// wording, which the black-box tests no longer repeat.
#[track_caller]
fn assert_says(e: &ConfigError, words: &[&str]) {
    let text = e.to_string();
    for word in words {
        assert!(text.contains(word), "{text:?} lacks {word:?}");
    }
}

/// Neither the message nor the debug form of `e` may hold `secret`.
#[track_caller]
fn assert_hides(e: &ConfigError, secret: &str) {
    assert!(!e.to_string().contains(secret), "leaked in Display: {e}");
    assert!(!format!("{e:?}").contains(secret), "leaked in Debug: {e:?}");
}

fn temp_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.path().join(name);
    fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

#[track_caller]
fn assert_secret_file_error(e: &ConfigError, var: &str, problem: &str) {
    let ConfigError::SecretFile {
        var: got,
        problem: text,
        fix,
        ..
    } = e
    else {
        panic!("expected SecretFile for {var}, got {e:?}");
    };
    assert_eq!(*got, var);
    assert!(text.contains(problem), "{text:?} lacks {problem:?}");
    assert!(!fix.is_empty());
    assert!(e.to_string().starts_with(&format!("{var}=")), "{e}");
}

// ---------------------------------------------------------------- defaults

#[test]
fn a_minimal_environment_gets_every_default() {
    let config = ok(&[]);
    assert_eq!(config.organization_name, "Acme");
    assert_eq!(given(&config), KEY);
    assert_eq!(config.external_user, None);
    assert_eq!(config.host, DEFAULT_HOST);
    assert_eq!(
        config.markup_rate,
        MarkupRate {
            value: 1.3,
            explicit: false
        }
    );
    assert_eq!(config.spending_limit, "unlimited");
    assert_eq!(config.model_ids, None);
    assert!(config.webui_secret_key.is_none());
    assert_eq!(config.data_dir, Path::new("/app/backend/data"));
    assert_eq!(
        config.database_path,
        Path::new("/app/backend/data/webui.db")
    );
    assert_eq!(config.env_file, Path::new(".env"));
    assert_eq!(config.env_file_mode, 0o600);
    assert_eq!(config.lock_timeout, Duration::from_secs(60));
    assert!(!config.create_schema);
    assert!(!config.require_database);
    assert_eq!(config.mode, None);
    assert_eq!(config.wait_for_database, None);
    assert_eq!(
        config.secret_key_store.clone(),
        Path::new("/app/backend/data/.webui_secret_key")
    );
    assert_eq!(config.database_dir(), Path::new("/app/backend/data"));
}

#[test]
fn the_debug_form_of_a_config_hides_both_secrets() {
    let config = ok(&[("WEBUI_SECRET_KEY", SECRET)]);
    let shown = format!("{config:?}");
    assert!(!shown.contains(&KEY[9..]), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
}

// ---------------------------------------------------------- ORGANIZATION_NAME

#[test]
fn organization_name_is_required() {
    let e = from_vars(env_without(&["ORGANIZATION_NAME"], &[])).unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::Missing {
                var: "ORGANIZATION_NAME",
                ..
            }
        ),
        "{e:?}"
    );
    assert_says(
        &e,
        &["ORGANIZATION_NAME is not set. Set it to the client organization's name"],
    );
}

#[test]
fn organization_name_is_trimmed() {
    assert_eq!(
        ok(&[("ORGANIZATION_NAME", "  Acme Inc.\t ")]).organization_name,
        "Acme Inc."
    );
    assert_eq!(
        ok(&[("ORGANIZATION_NAME", "\u{a0}Acme\u{a0}")]).organization_name,
        "Acme"
    );
}

#[test]
fn organization_name_has_3_to_100_characters_after_trimming() {
    assert_eq!(ok(&[("ORGANIZATION_NAME", "Abc")]).organization_name, "Abc");
    let hundred = "x".repeat(100);
    assert_eq!(
        ok(&[("ORGANIZATION_NAME", &hundred)]).organization_name,
        hundred
    );
    // Characters, not bytes: 100 two-byte letters fit.
    let polish = "ż".repeat(100);
    assert_eq!(
        ok(&[("ORGANIZATION_NAME", &polish)]).organization_name,
        polish
    );

    for (value, count) in [
        ("Ab", "has 2"),
        ("   Ab   ", "has 2"),
        ("  ", "has 0"),
        (&"x".repeat(101), "has 101"),
        (&"ż".repeat(101), "has 101"),
    ] {
        let e = err(&[("ORGANIZATION_NAME", value)]);
        assert_invalid(&e, "ORGANIZATION_NAME", "3 to 100 characters");
        assert_says(&e, &[count, "Use the organization's full name"]);
        if value.len() > 100 {
            assert_hides(&e, &value[..8]);
        }
    }
}

#[test]
fn organization_name_refuses_control_characters() {
    for (value, code) in [
        ("Acme\nEVIL=1", "U+000A"),
        ("Acme\tInc", "U+0009"),
        ("Acme\rInc", "U+000D"),
        ("Acme\u{1b}[31mInc", "U+001B"),
        ("Acme\u{7f}Inc", "U+007F"),
        ("Acme\u{85}Inc", "U+0085"),
        ("Ac\0me", "U+0000"),
    ] {
        let e = err(&[("ORGANIZATION_NAME", value)]);
        assert_invalid(&e, "ORGANIZATION_NAME", code);
        assert_says(
            &e,
            &[
                "printable characters only",
                "escape sequences are not allowed",
            ],
        );
        assert_hides(&e, value);
    }
}

#[test]
fn organization_name_refuses_invisible_characters() {
    for (value, code) in [
        ("Ac\u{200B}me", "U+200B"),
        ("\u{200B}Acme", "U+200B"),
        ("Acme\u{200D}Inc", "U+200D"),
        ("Acme\u{200F}Inc", "U+200F"),
        ("Acme\u{2028}Inc", "U+2028"),
        ("Acme\u{202E}Inc", "U+202E"),
        ("Acme\u{2060}Inc", "U+2060"),
        ("Acme\u{2066}Inc", "U+2066"),
        ("Acme\u{2069}Inc", "U+2069"),
        ("\u{FEFF}Acme", "U+FEFF"),
    ] {
        let e = err(&[("ORGANIZATION_NAME", value)]);
        assert_invalid(&e, "ORGANIZATION_NAME", code);
        assert_says(
            &e,
            &[
                &format!("invisible character {code}"),
                "printable characters only",
            ],
        );
        assert!(!e.to_string().chars().any(is_invisible), "{e:?}");
    }
    // Ordinary non-ASCII letters and punctuation are fine.
    for value in [
        "Zürich AG",
        "ABC Company Sp. z o.o.",
        "Łódź & Co",
        "株式会社テスト",
        "Bob's shop",
        "Cost $5 #1",
    ] {
        assert_eq!(ok(&[("ORGANIZATION_NAME", value)]).organization_name, value);
    }
}

#[test]
fn organization_name_must_survive_the_env_file() {
    // Names no quoting reads back the same in python-dotenv, Compose and sh
    // (`${` would also expand another variable, a key among them; `$(…)`
    // and backticks would run in sh), and a word their refusal must hold.
    for (value, problem) in [
        ("Acme ${HOME}", "${"),
        ("Price ${", "${"),
        ("${X} Corp", "${"),
        ("Acme ${OPENROUTER_API_KEY}", "${"),
        ("Acme ${WEBUI_SECRET_KEY:-x}", "${"),
        ("Acme \\", "backslash"),
        ("Acme\\", "backslash"),
        ("Acme \\   ", "backslash"),
        ("Double\\\\", "backslash"),
        ("Bob's $5 shop", "quoting"),
        ("O'Brien $5", "single quote"),
        ("It's $HOME", "single quote"),
        ("it's `cmd`", "single quote"),
        ("Acme' $(touch pwned) '", "single quote"),
        ("Acme' `touch pwned` '", "single quote"),
        ("C:\\\\Temp $5", "double backslash"),
    ] {
        assert!(
            crate::envfile::render_value(value.trim()).is_err(),
            "{value:?} renders"
        );
        let e = err(&[("ORGANIZATION_NAME", value)]);
        let ConfigError::Invalid {
            var, problem: text, ..
        } = &e
        else {
            panic!("{value:?}: {e:?}");
        };
        assert_eq!(*var, "ORGANIZATION_NAME", "{value:?}");
        assert!(text.contains(problem), "{value:?}: {text}");
        assert!(e.to_string().contains("Change the value"), "{e}");
    }
}

// -------------------------------------------------------- OPENROUTER_API_KEY

#[test]
fn api_key_is_required_directly_or_from_a_file() {
    let e = from_vars(env_without(&["OPENROUTER_API_KEY"], &[])).unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::Missing {
                var: "OPENROUTER_API_KEY",
                ..
            }
        ),
        "{e:?}"
    );
    assert_says(
        &e,
        &[
            "OPENROUTER_API_KEY is not set",
            "OPENROUTER_API_KEY_FILE to a file",
        ],
    );
    // Empty means unset.
    let e = err(&[("OPENROUTER_API_KEY", "")]);
    assert!(matches!(e, ConfigError::Missing { .. }), "{e:?}");
}

#[test]
fn api_key_and_its_file_are_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(&dir, "key", KEY.as_bytes());
    let e = err(&[("OPENROUTER_API_KEY_FILE", &path)]);
    assert!(
        matches!(
            e,
            ConfigError::BothSet {
                first: "OPENROUTER_API_KEY",
                second: "OPENROUTER_API_KEY_FILE"
            }
        ),
        "{e:?}"
    );
    assert_says(
        &e,
        &[
            "OPENROUTER_API_KEY and OPENROUTER_API_KEY_FILE are both set",
            "Set only one of them",
        ],
    );
    assert_hides(&e, &KEY[9..]);
    // An empty direct variable is unset, so the file alone counts.
    let config = ok(&[
        ("OPENROUTER_API_KEY", ""),
        ("OPENROUTER_API_KEY_FILE", &path),
    ]);
    assert_eq!(given(&config), KEY);
}

#[test]
fn api_key_starts_with_sk_or() {
    for value in [
        "sk-ant-UNITFAKE0000aaaa1111bbbb2222",
        "SK-OR-v1-UNITFAKE0000aaaa1111bbbb",
        " sk-or-v1-UNITFAKE0000aaaa1111bbbb",
        "UNITFAKE0000aaaa1111bbbb2222cccc",
        // Another provider's key, as an operator might paste it.
        "sk-proj-UNITFAKE0000aaaa1111bbbb",
    ] {
        let e = err(&[("OPENROUTER_API_KEY", value)]);
        assert_invalid(&e, "OPENROUTER_API_KEY", "does not start with `sk-or-`");
        assert_says(
            &e,
            &[
                "OPENROUTER_API_KEY does not start with `sk-or-`",
                "https://openrouter.ai/settings/keys",
            ],
        );
        assert_hides(&e, "UNITFAKE0000aaaa1111bbbb");
    }
    // `sk-or-` without `v1-` is accepted.
    ok(&[("OPENROUTER_API_KEY", "sk-or-UNITFAKE0000aaaa1111")]);
}

#[test]
fn api_key_has_at_least_20_characters() {
    let twenty = "sk-or-v1-UNITFAKE012";
    assert_eq!(twenty.len(), 20);
    assert_eq!(given(&ok(&[("OPENROUTER_API_KEY", twenty)])), twenty);
    let nineteen = &twenty[..19];
    let e = err(&[("OPENROUTER_API_KEY", nineteen)]);
    assert_invalid(&e, "OPENROUTER_API_KEY", "shorter than 20 characters");
    assert_says(&e, &["Copy the key"]);
    assert_hides(&e, "UNITFAKE01");
}

#[test]
fn api_key_holds_only_token_characters() {
    for value in [
        "sk-or-v1-UNITFAKE0000aaaa 1111",
        "sk-or-v1-UNITFAKE0000aaaa1111\n",
        "sk-or-v1-UNITFAKE0000aaaa1111\r",
        "sk-or-v1-UNITFAKE0000aaaa1111 ",
        "sk-or-v1-UNITFAKE0000aaaa.1111",
        "sk-or-v1-UNITFAKE0000aaaa1111=",
        "sk-or-v1-UNITFAKE0000aaaa1111\"",
        "sk-or-v1-UNITFAKE0000aaaaąąąą",
        "sk-or-v1-UNITFAKE0000aaaa1111'",
        "sk-or-v1-UNITFAKE0000aaaa1111$(id)",
    ] {
        let e = err(&[("OPENROUTER_API_KEY", value)]);
        assert_invalid(&e, "OPENROUTER_API_KEY", "other than A-Z, a-z, 0-9");
        assert_says(&e, &["Copy the key"]);
        assert_hides(&e, "UNITFAKE0000aaaa");
    }
    ok(&[("OPENROUTER_API_KEY", "sk-or-v1-Unit_Fake-0000aaaa1111")]);
}

#[test]
fn api_key_file_drops_one_trailing_newline_only() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("plain", KEY.to_owned()),
        ("lf", format!("{KEY}\n")),
        ("crlf", format!("{KEY}\r\n")),
    ] {
        let path = temp_file(&dir, name, bytes.as_bytes());
        let config = from_vars(env_without(
            &["OPENROUTER_API_KEY"],
            &[("OPENROUTER_API_KEY_FILE", &path)],
        ))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(given(&config), KEY, "{name}");
    }
    for (name, bytes) in [
        ("two-lf", format!("{KEY}\n\n")),
        ("leading-lf", format!("\n{KEY}")),
        ("trailing-space", format!("{KEY} \n")),
    ] {
        let path = temp_file(&dir, name, bytes.as_bytes());
        let e = from_vars(env_without(
            &["OPENROUTER_API_KEY"],
            &[("OPENROUTER_API_KEY_FILE", &path)],
        ))
        .unwrap_err();
        let ConfigError::Invalid { var, .. } = &e else {
            panic!("{name}: {e:?}");
        };
        assert_eq!(*var, "OPENROUTER_API_KEY_FILE", "{name}");
        if name == "two-lf" {
            assert_says(&e, &["other than A-Z", "line break"]);
        }
        assert_hides(&e, &KEY[9..]);
    }
}

#[test]
fn api_key_from_a_file_meets_the_same_rules() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content, problem) in [
        (
            "prefix",
            "UNITFAKE0000aaaa1111bbbb2222",
            "does not start with",
        ),
        ("short", "sk-or-UNITFAKE", "shorter than 20"),
        ("space", "sk-or-v1-UNITFAKE0000 aaaa1111", "other than A-Z"),
    ] {
        let path = temp_file(&dir, name, content.as_bytes());
        let e = from_vars(env_without(
            &["OPENROUTER_API_KEY"],
            &[("OPENROUTER_API_KEY_FILE", &path)],
        ))
        .unwrap_err();
        assert_invalid(&e, "OPENROUTER_API_KEY_FILE", problem);
        assert_hides(&e, "UNITFAKE");
        // It is the secret in the file that breaks the rule, not the file.
        let text = e.to_string();
        assert!(
            text.contains(&format!("names {path}, whose secret ")),
            "{text}"
        );
    }
}

/// Read `bytes` (or the path `path`) as OPENROUTER_API_KEY_FILE; the error.
fn api_key_file_error(path: &str) -> ConfigError {
    from_vars(env_without(
        &["OPENROUTER_API_KEY"],
        &[("OPENROUTER_API_KEY_FILE", path)],
    ))
    .unwrap_err()
}

#[test]
fn api_key_file_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing");
    let e = api_key_file_error(path.to_str().unwrap());
    assert_secret_file_error(&e, "OPENROUTER_API_KEY_FILE", "it does not exist");
    assert_says(
        &e,
        &[
            &format!("OPENROUTER_API_KEY_FILE={}", path.display()),
            "Point it at the mounted secret file",
        ],
    );
    assert!(
        matches!(&e, ConfigError::SecretFile { source: Some(s), .. } if s.kind() == io::ErrorKind::NotFound)
    );
}

#[test]
fn api_key_file_must_not_be_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let e = api_key_file_error(dir.path().to_str().unwrap());
    assert_secret_file_error(&e, "OPENROUTER_API_KEY_FILE", "is a directory");
    assert_says(
        &e,
        &["Point it at the file inside the mounted secret, not at the folder"],
    );
}

#[test]
fn api_key_file_is_at_most_64_kib() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(&dir, "big", &vec![b'a'; 64 * 1024 + 1]);
    let e = api_key_file_error(&path);
    assert_secret_file_error(&e, "OPENROUTER_API_KEY_FILE", "larger than 65536 bytes");
    assert_says(&e, &["holds only the secret"]);
    // Exactly 64 KiB is read (and then fails the key rules, not the size).
    let path = temp_file(&dir, "limit", &vec![b'a'; 64 * 1024]);
    assert_invalid(
        &api_key_file_error(&path),
        "OPENROUTER_API_KEY_FILE",
        "sk-or-",
    );
}

#[test]
fn api_key_file_devices_and_pipes_are_refused_without_opening() {
    for device in ["/dev/zero", "/dev/null"] {
        let e = api_key_file_error(device);
        assert_secret_file_error(&e, "OPENROUTER_API_KEY_FILE", "not a regular file");
        assert_says(
            &e,
            &[
                &format!("OPENROUTER_API_KEY_FILE={device}"),
                "Point it at the mounted secret file",
            ],
        );
    }
    // A named pipe without a writer would block `open` forever.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let e = api_key_file_error(fifo.to_str().unwrap());
    assert_secret_file_error(&e, "OPENROUTER_API_KEY_FILE", "not a regular file");
}

#[test]
fn api_key_file_must_not_be_empty() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("empty", &b""[..]),
        ("newline", &b"\n"[..]),
        ("crlf", &b"\r\n"[..]),
    ] {
        let path = temp_file(&dir, name, bytes);
        let e = api_key_file_error(&path);
        assert_secret_file_error(&e, "OPENROUTER_API_KEY_FILE", "is empty");
        assert_says(&e, &["Put the secret in the file"]);
    }
}

#[test]
fn api_key_file_must_be_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(&dir, "latin1", b"sk-or-v1-\xff\xfeUNITFAKE0000aaaa");
    let e = api_key_file_error(&path);
    assert_secret_file_error(&e, "OPENROUTER_API_KEY_FILE", "is not UTF-8 text");
    assert_says(&e, &["Store the secret as text"]);
    assert_hides(&e, "UNITFAKE");
}

#[test]
fn api_key_file_unreadable_is_a_permission_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(&dir, "locked", KEY.as_bytes());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    if File::open(&path).is_ok() {
        eprintln!(
            "SKIPPED api_key_file_unreadable_is_a_permission_error: running with CAP_DAC_OVERRIDE \
             (root), a mode 000 file is still readable; the mapping of such an error is checked by \
             a_permission_error_on_a_secret_file_exits_77_and_other_file_errors_78 and the binary by tests/integration/config_rules.rs"
        );
        return;
    }
    let e = api_key_file_error(&path);
    assert_secret_file_error(&e, "OPENROUTER_API_KEY_FILE", "permission denied");
    let error = crate::error::Error::Config(e);
    assert_eq!(
        crate::exit::for_error(&error),
        crate::exit::ExitCode::NoPermission
    );
}

#[test]
fn a_permission_error_on_a_secret_file_exits_77_and_other_file_errors_78() {
    let error = |kind: Option<io::ErrorKind>| {
        crate::error::Error::Config(ConfigError::SecretFile {
            var: "OPENROUTER_API_KEY_FILE",
            path: PathBuf::from("/run/secrets/key"),
            problem: "cannot open the file".into(),
            fix: "Fix it.",
            source: kind.map(io::Error::from),
        })
    };
    use crate::exit::{ExitCode, for_error};
    assert_eq!(
        for_error(&error(Some(io::ErrorKind::PermissionDenied))),
        ExitCode::NoPermission
    );
    assert_eq!(
        for_error(&error(Some(io::ErrorKind::NotFound))),
        ExitCode::Config
    );
    assert_eq!(for_error(&error(None)), ExitCode::Config);
    let invalid = crate::error::Error::Config(err(&[("MARKUP_RATE", "x")]));
    assert_eq!(for_error(&invalid), ExitCode::Config);
}

#[test]
fn io_reason_words_the_common_cases() {
    assert_eq!(
        io_reason(&io::Error::from(io::ErrorKind::NotFound)),
        "it does not exist"
    );
    assert_eq!(
        io_reason(&io::Error::from(io::ErrorKind::PermissionDenied)),
        "permission denied"
    );
    let other = io::Error::other("disk on fire");
    assert_eq!(io_reason(&other), "disk on fire");
}

#[test]
fn strip_one_newline_strips_exactly_one() {
    assert_eq!(strip_one_newline("a\n"), "a");
    assert_eq!(strip_one_newline("a\r\n"), "a");
    assert_eq!(strip_one_newline("a\n\n"), "a\n");
    assert_eq!(strip_one_newline("a\r"), "a\r");
    assert_eq!(strip_one_newline("a"), "a");
    assert_eq!(strip_one_newline("\n"), "");
}

#[test]
fn no_api_key_error_ever_contains_the_key() {
    let body = "LEAKPROBE7d3f9a2b8c4e1f06";
    let cases = [
        format!("sk-or-v1-{body}!"),
        format!("sk-or-v1-{body}\n"),
        format!("xx-or-v1-{body}"),
        format!("sk-or-{}", &body[..5]),
        format!("sk-or-v1-{body}{}", "z".repeat(64 * 1024)),
    ];
    for value in &cases {
        let e = err(&[("OPENROUTER_API_KEY", value)]);
        assert!(e.to_string().contains("OPENROUTER_API_KEY"), "{e}");
        assert_hides(&e, &body[..5]);
    }
}

// -------------------------------------------------- OPENROUTER_EXTERNAL_USER

#[test]
fn external_user_is_3_to_64_token_characters() {
    assert_eq!(ok(&[]).external_user, None);
    for value in ["abc", "mai_client_63a4eb6d", "A-b_C-9", &"x".repeat(64)] {
        assert_eq!(
            ok(&[("OPENROUTER_EXTERNAL_USER", value)])
                .external_user
                .as_deref(),
            Some(value)
        );
    }
    for value in [
        "ab",
        &"x".repeat(65),
        "mai client",
        "mai.client",
        "mai.client_63a4eb6d",
        "mai/client",
        "klient_ż",
        " abc",
    ] {
        let e = err(&[("OPENROUTER_EXTERNAL_USER", value)]);
        assert_invalid(&e, "OPENROUTER_EXTERNAL_USER", "3 to 64 characters");
        assert_says(
            &e,
            &[
                "3 to 64 characters from A-Z",
                "unset it to derive one from ORGANIZATION_NAME",
            ],
        );
    }
}

// ----------------------------------------------------------- OPENROUTER_HOST

#[test]
fn host_is_an_http_or_https_url() {
    for value in [
        "https://openrouter.ai/api/v1",
        "http://localhost:8080/v1",
        "https://proxy.example/openrouter/api/v1/",
        "https://[::1]:8443/v1",
        "HTTPS://openrouter.ai",
    ] {
        assert_eq!(ok(&[("OPENROUTER_HOST", value)]).host, value);
    }
    let rejected = |value: &str, problem: &str| {
        let e = err(&[("OPENROUTER_HOST", value)]);
        assert_invalid(&e, "OPENROUTER_HOST", problem);
        assert_says(
            &e,
            &["Use an http(s) URL such as https://openrouter.ai/api/v1"],
        );
    };
    for value in ["https://:443/v1", "https://user@/v1", "http://[]/"] {
        rejected(value, "has no host name");
    }
    for value in [
        "openrouter.ai/api/v1",
        "ftp://openrouter.ai",
        "ftp://openrouter.ai/api/v1",
        "//openrouter.ai",
    ] {
        rejected(value, "must start with https:// or http://");
    }
    for value in [
        "https://",
        "http:///api/v1",
        "https:///api/v1",
        "https://?q=1",
        "https://#x",
    ] {
        rejected(value, "has no host name");
    }
    for (value, code) in [
        ("https://open router.ai", "U+0020"),
        ("https://open router.ai/api/v1", "U+0020"),
        ("https://openrouter.ai/api\"", "U+0022"),
        ("https://openrouter.ai/{v1}", "U+007B"),
        ("https://openrouter.ai/\\", "U+005C"),
        ("https://openröuter.ai", "U+00F6"),
    ] {
        rejected(value, &format!("{code}, which a URL cannot hold unescaped"));
    }
}

// --------------------------------------------------------------- MARKUP_RATE

#[test]
fn markup_rate_remembers_whether_it_was_set() {
    assert_eq!(
        ok(&[("MARKUP_RATE", "1.3")]).markup_rate,
        MarkupRate {
            value: 1.3,
            explicit: true
        }
    );
    assert!(!ok(&[("MARKUP_RATE", "")]).markup_rate.explicit);
    for (text, value) in [
        ("2.5", 2.5),
        (" 1.5 ", 1.5),
        ("1", 1.0),
        ("100", 100.0),
        ("0.1", 0.1),
        ("1e1", 10.0),
        (".5", 0.5),
    ] {
        assert_eq!(
            ok(&[("MARKUP_RATE", text)]).markup_rate.value,
            value,
            "{text:?}"
        );
    }
}

#[test]
fn markup_rate_is_a_finite_number() {
    for value in ["NaN", "nan", "inf", "-inf", "infinity", "1e400"] {
        let e = err(&[("MARKUP_RATE", value)]);
        assert_invalid(&e, "MARKUP_RATE", "must be a finite number");
        assert_says(&e, &["MARKUP_RATE=1.3"]);
    }
    for value in ["abc", "high", "1.3x", "30%", "1_000", "0x10", "1.3.0"] {
        let e = err(&[("MARKUP_RATE", value)]);
        assert_invalid(&e, "MARKUP_RATE", "is not a number");
        assert_says(&e, &["Use a decimal number", "MARKUP_RATE=1.3"]);
    }
}

#[test]
fn markup_rate_is_greater_than_zero() {
    for value in ["0", "-1", "-0", "0.0", "1e-400", "-0.5"] {
        let e = err(&[("MARKUP_RATE", value)]);
        assert_invalid(&e, "MARKUP_RATE", "must be greater than 0");
        assert_says(&e, &["MARKUP_RATE=1.3"]);
    }
}

#[test]
fn markup_rate_is_at_least_a_tenth() {
    for value in ["0.0999", "0.01", "1e-300", "0.0001", "5e-324"] {
        let e = err(&[("MARKUP_RATE", value)]);
        assert_invalid(&e, "MARKUP_RATE", "at least 0.1");
        assert!(e.to_string().contains("bills at cost"), "{e}");
    }
}

#[test]
fn markup_rate_is_at_most_100() {
    assert_eq!(ok(&[("MARKUP_RATE", "100")]).markup_rate.value, 100.0);
    for value in ["100.0001", "100.5", "101", "1e3"] {
        let e = err(&[("MARKUP_RATE", value)]);
        assert_invalid(&e, "MARKUP_RATE", "must be at most 100");
        assert_says(&e, &["1.3 means a 30% markup"]);
    }
}

#[test]
fn markup_rate_uses_a_decimal_dot() {
    let e = err(&[("MARKUP_RATE", "1,3")]);
    assert_invalid(&e, "MARKUP_RATE", "comma");
    assert_says(
        &e,
        &[
            "MARKUP_RATE uses a comma. Write the decimal with a dot",
            "MARKUP_RATE=1.3",
        ],
    );
}

// ------------------------------------------------------------ SPENDING_LIMIT

#[test]
fn spending_limit_is_unlimited_by_default_and_by_name() {
    for value in ["", "unlimited", "UNLIMITED", " Unlimited "] {
        assert_eq!(
            ok(&[("SPENDING_LIMIT", value)]).spending_limit,
            "unlimited",
            "{value:?}"
        );
    }
}

#[test]
fn spending_limit_is_normalised_like_python_str_float() {
    // Expected values from python3 -c 'print(repr(float(x)))'.
    for (text, python) in [
        ("1000", "1000.0"),
        ("12.50", "12.5"),
        ("  12.50  ", "12.5"),
        ("1e16", "1e+16"),
        ("1.5e-5", "1.5e-05"),
        ("0.0001", "0.0001"),
        ("0.00001", "1e-05"),
        ("123456789012345678", "1.2345678901234568e+17"),
        ("1E3", "1000.0"),
        ("+2.5", "2.5"),
        (".5", "0.5"),
        ("5.", "5.0"),
    ] {
        assert_eq!(
            ok(&[("SPENDING_LIMIT", text)]).spending_limit,
            python,
            "{text:?}"
        );
    }
}

#[test]
fn spending_limit_is_a_positive_finite_decimal() {
    for (value, problem) in [
        ("0", "must be greater than 0"),
        ("-5", "must be greater than 0"),
        ("-100", "must be greater than 0"),
        ("1e-400", "must be greater than 0"),
        ("NaN", "must be a finite number"),
        ("inf", "must be a finite number"),
        ("1e400", "must be a finite number"),
        ("1,000", "uses a comma"),
        ("1000 USD", "is not a number"),
        ("none", "is not a number"),
        ("unlimitedd", "is not a number"),
    ] {
        let e = err(&[("SPENDING_LIMIT", value)]);
        assert_invalid(&e, "SPENDING_LIMIT", problem);
        assert_says(&e, &["SPENDING_LIMIT=1000, or `unlimited`"]);
        if problem == "uses a comma" {
            assert_says(&e, &["Write the decimal with a dot"]);
        }
    }
}

#[test]
fn python_float_repr_matches_python() {
    // Every right-hand side printed by python3 -c 'print(repr(float(x)))'.
    for (input, python) in [
        ("1000", "1000.0"),
        ("12.50", "12.5"),
        ("1e16", "1e+16"),
        ("1.5e-5", "1.5e-05"),
        ("0.0001", "0.0001"),
        ("123456789012345678", "1.2345678901234568e+17"),
        ("1", "1.0"),
        ("0.1", "0.1"),
        ("0.5", "0.5"),
        ("1.3", "1.3"),
        ("100", "100.0"),
        ("1e15", "1000000000000000.0"),
        ("9999999999999998", "9999999999999998.0"),
        ("9999999999999999", "1e+16"),
        ("1e-4", "0.0001"),
        ("0.00001", "1e-05"),
        ("1.0000000000000002", "1.0000000000000002"),
        ("5e-324", "5e-324"),
        ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ("2.5", "2.5"),
        ("1000000", "1000000.0"),
        ("12345.6789", "12345.6789"),
        ("0.1234567890123456789", "0.12345678901234568"),
        ("1e22", "1e+22"),
        ("1e21", "1e+21"),
        ("1.1e16", "1.1e+16"),
        ("123456789012345.6", "123456789012345.6"),
        ("1234567890123456.7", "1234567890123456.8"),
        ("0.000123", "0.000123"),
        ("3.14159", "3.14159"),
        ("2e-7", "2e-07"),
        ("1e100", "1e+100"),
        ("999999999999999.9", "999999999999999.9"),
        ("0.30000000000000004", "0.30000000000000004"),
        ("7", "7.0"),
        ("42.0", "42.0"),
        ("4.35", "4.35"),
        ("0.009999999999999998", "0.009999999999999998"),
        ("-1000", "-1000.0"),
        ("-1.5e-5", "-1.5e-05"),
        ("0", "0.0"),
        ("-0", "-0.0"),
    ] {
        let value: f64 = input.parse().unwrap();
        assert_eq!(python_float_repr(value), python, "{input}");
    }
}

proptest::proptest! {
    /// Whatever the value, the text reads back as the same float, and in
    /// Python's fixed range it is Rust's shortest form with `.0` added.
    #[test]
    fn python_float_repr_round_trips(value in proptest::num::f64::POSITIVE | proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL) {
        let text = python_float_repr(value);
        proptest::prop_assert_eq!(text.parse::<f64>().unwrap(), value, "{}", text);
        proptest::prop_assert!(text.contains('.') || text.contains("e+") || text.contains("e-"), "{}", text);
        if value != 0.0 && (1e-4..1e16).contains(&value.abs()) {
            let plain = format!("{value}");
            let expected = if plain.contains('.') { plain } else { format!("{plain}.0") };
            proptest::prop_assert_eq!(text, expected);
        }
    }
}

// ------------------------------------------------------------------ MODEL_IDS

#[test]
fn model_ids_are_a_trimmed_deduplicated_list() {
    assert_eq!(ok(&[]).model_ids, None);
    assert_eq!(ok(&[("MODEL_IDS", "")]).model_ids, None);
    assert_eq!(
        ok(&[(
            "MODEL_IDS",
            " openai/gpt-4o , anthropic/claude-3.5-sonnet,,openai/gpt-4o, "
        )])
        .model_ids,
        Some(vec![
            "openai/gpt-4o".to_owned(),
            "anthropic/claude-3.5-sonnet".to_owned()
        ])
    );
    assert_eq!(
        ok(&[(
            "MODEL_IDS",
            "openai/gpt-4o:free,meta-llama/llama-3@v1+x,a_b"
        )])
        .model_ids,
        Some(vec![
            "openai/gpt-4o:free".to_owned(),
            "meta-llama/llama-3@v1+x".to_owned(),
            "a_b".to_owned()
        ])
    );
}

#[test]
fn model_ids_must_list_a_model() {
    for value in [",", " , ", " , ,", "  "] {
        let e = err(&[("MODEL_IDS", value)]);
        assert_invalid(&e, "MODEL_IDS", "lists no model");
        assert_says(&e, &["unset MODEL_IDS to allow every model"]);
    }
}

#[test]
fn model_ids_hold_only_valid_ids() {
    let long = format!("a/{}", "x".repeat(199));
    ok(&[("MODEL_IDS", &long[..200])]);
    for (value, shown) in [
        ("openai/gpt 4o", "`openai/gpt 4o`"),
        ("openai/gpt-4o,gpt 4o", "`gpt 4o`"),
        ("openai/gpt-4o;rm", "`openai/gpt-4o;rm`"),
        ("ok/one,bad;rm -rf", "`bad;rm -rf`"),
        ("x\"y", "`x\\\"y`"),
        ("model\u{200B}", "`model\\u{200b}`"),
        (&long, "invalid model id"),
    ] {
        let e = err(&[("MODEL_IDS", value)]);
        assert_invalid(&e, "MODEL_IDS", shown);
        assert_says(&e, &["holds an invalid model id", "separated by commas"]);
    }
}

// ----------------------------------------------------------- WEBUI_SECRET_KEY

#[test]
fn webui_secret_key_is_optional() {
    assert!(ok(&[]).webui_secret_key.is_none());
    assert!(ok(&[("WEBUI_SECRET_KEY", "")]).webui_secret_key.is_none());
    let config = ok(&[("WEBUI_SECRET_KEY", SECRET)]);
    assert_eq!(
        config.webui_secret_key.as_ref().map(Secret::expose),
        Some(SECRET)
    );
}

#[test]
fn webui_secret_key_and_its_file_are_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(&dir, "secret", SECRET.as_bytes());
    let e = err(&[
        ("WEBUI_SECRET_KEY", SECRET),
        ("WEBUI_SECRET_KEY_FILE", &path),
    ]);
    assert!(
        matches!(
            e,
            ConfigError::BothSet {
                first: "WEBUI_SECRET_KEY",
                second: "WEBUI_SECRET_KEY_FILE"
            }
        ),
        "{e:?}"
    );
    assert_says(
        &e,
        &[
            "WEBUI_SECRET_KEY and WEBUI_SECRET_KEY_FILE are both set",
            "Set only one of them",
        ],
    );
    assert_hides(&e, SECRET);
}

#[test]
fn webui_secret_key_file_drops_one_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(&dir, "secret", format!("{SECRET}\n").as_bytes());
    let config = ok(&[("WEBUI_SECRET_KEY_FILE", &path)]);
    assert_eq!(
        config.webui_secret_key.as_ref().map(Secret::expose),
        Some(SECRET)
    );

    let path = temp_file(&dir, "two", format!("{SECRET}\n\n").as_bytes());
    let e = err(&[("WEBUI_SECRET_KEY_FILE", &path)]);
    assert_invalid(&e, "WEBUI_SECRET_KEY_FILE", "control character");
    assert_hides(&e, SECRET);
}

#[test]
fn webui_secret_key_file_is_read_with_the_same_checks() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    for (path, problem) in [
        (missing.to_str().unwrap().to_owned(), "it does not exist"),
        (dir.path().to_str().unwrap().to_owned(), "is a directory"),
        ("/dev/zero".to_owned(), "not a regular file"),
        (
            temp_file(&dir, "large", &vec![b'a'; 64 * 1024 + 1]),
            "larger than",
        ),
        (temp_file(&dir, "empty", b""), "is empty"),
        (temp_file(&dir, "binary", b"\xff\xfe\xfd"), "not UTF-8"),
    ] {
        let e = err(&[("WEBUI_SECRET_KEY_FILE", &path)]);
        assert_secret_file_error(&e, "WEBUI_SECRET_KEY_FILE", problem);
        if problem == "it does not exist" {
            assert_says(
                &e,
                &[
                    &format!("WEBUI_SECRET_KEY_FILE={path}"),
                    "Point it at the mounted secret file",
                ],
            );
        }
    }
}

#[test]
fn webui_secret_key_refuses_control_characters() {
    for value in [
        format!("{SECRET}\n"),
        format!("{SECRET}\tx"),
        format!("\u{1b}{SECRET}"),
        format!("{SECRET}\u{7f}"),
    ] {
        let e = err(&[("WEBUI_SECRET_KEY", &value)]);
        assert_invalid(&e, "WEBUI_SECRET_KEY", "contains a control character");
        assert_says(&e, &["Use printable characters only"]);
        assert_hides(&e, &SECRET[5..]);
    }
}

#[test]
fn webui_secret_key_has_at_most_4096_characters() {
    let limit = "k".repeat(4096);
    assert_eq!(
        ok(&[("WEBUI_SECRET_KEY", &limit)])
            .webui_secret_key
            .map(|s| s.expose().len()),
        Some(4096)
    );
    let e = err(&[("WEBUI_SECRET_KEY", &format!("{limit}k"))]);
    assert_invalid(&e, "WEBUI_SECRET_KEY", "longer than 4096 characters");
    assert_says(&e, &["Use a shorter key"]);
    assert_hides(&e, &"k".repeat(32));
}

#[test]
fn webui_secret_key_must_survive_the_env_file() {
    for (value, problem) in [
        (format!("{SECRET}${{HOME}}"), "${"),
        (format!("{SECRET}\\"), "backslash"),
        (format!("{SECRET}'$x"), "quoting"),
    ] {
        let e = err(&[("WEBUI_SECRET_KEY", &value)]);
        assert_invalid(&e, "WEBUI_SECRET_KEY", problem);
        assert_says(&e, &["Change the value"]);
        assert_hides(&e, &SECRET[5..]);
    }
    // Quotes and dollars on their own can be quoted.
    for value in ["a'b\"c", "p$ss", "x`y", "spaces are fine", "#hash"] {
        ok(&[("WEBUI_SECRET_KEY", value)]);
    }
}

// --------------------------------------------------- DATABASE_URL, DATA_DIR

#[test]
fn data_dir_locates_the_database_and_the_secret_key_store() {
    let config = ok(&[("DATA_DIR", "./data")]);
    assert_eq!(config.data_dir, Path::new("./data"));
    assert_eq!(config.database_path, Path::new("./data/webui.db"));
    assert_eq!(config.database_dir(), Path::new("./data"));
    assert_eq!(
        config.secret_key_store.clone(),
        Path::new("./data/.webui_secret_key")
    );
    // Empty means unset: the image's default.
    assert_eq!(
        ok(&[("DATA_DIR", "")]).data_dir,
        Path::new(DEFAULT_DATA_DIR)
    );
}

#[test]
fn database_url_takes_absolute_and_relative_sqlite_paths() {
    let config = ok(&[
        ("DATABASE_URL", "sqlite:////app/backend/data/webui.db"),
        ("DATA_DIR", "/elsewhere"),
    ]);
    assert_eq!(
        config.database_path,
        Path::new("/app/backend/data/webui.db")
    );
    assert_eq!(config.database_dir(), Path::new("/app/backend/data"));
    // DATA_DIR still holds the stored secret key.
    assert_eq!(
        config.secret_key_store.clone(),
        Path::new("/elsewhere/.webui_secret_key")
    );

    let config = ok(&[("DATABASE_URL", "sqlite:///data/webui.db")]);
    assert_eq!(config.database_path, Path::new("data/webui.db"));
    let config = ok(&[("DATABASE_URL", "sqlite:///webui.db")]);
    assert_eq!(config.database_path, Path::new("webui.db"));
    assert_eq!(config.database_dir(), Path::new("."));
}

#[test]
fn database_url_names_an_unsupported_scheme() {
    for (url, scheme) in [
        ("mysql://mai:hunter2@db/mai", "`mysql`"),
        ("mssql+pyodbc://mai:hunter2@db/mai", "`mssql+pyodbc`"),
    ] {
        let e = err(&[("DATABASE_URL", url)]);
        assert_invalid(&e, "DATABASE_URL", &format!("unsupported scheme {scheme}"));
        assert_says(
            &e,
            &[
                &format!("DATABASE_URL uses the unsupported scheme {scheme}"),
                "DATABASE_URL=sqlite:////app/backend/data/webui.db",
                "DATABASE_URL=postgresql://user:password@host:5432/database",
            ],
        );
        assert_hides(&e, "hunter2");
    }
}

#[test]
fn a_postgresql_url_selects_postgresql_and_is_shown_without_its_password() {
    for url in [
        "postgres://mai:hunter2@db:5432/mai",
        "postgresql+psycopg2://mai:hunter2@db:5432/mai",
    ] {
        let config = ok(&[("DATABASE_URL", url)]);
        let target = config.postgres.as_ref().expect("PostgreSQL");
        assert_eq!(target.password.as_ref().unwrap().expose(), "hunter2");
        let shown = config.database_path.display().to_string();
        assert_eq!(shown, "postgresql://mai:***@db:5432/mai?sslmode=prefer");
        assert!(!config.describe().contains("hunter2"));
    }
    let e = err(&[
        ("DATABASE_URL", "postgresql://mai:hunter2@db/mai"),
        ("CREATE_SCHEMA", "true"),
    ]);
    assert_invalid(&e, "CREATE_SCHEMA", "the database is PostgreSQL");
}

#[test]
fn the_database_url_and_its_password_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("url");
    std::fs::write(&url_file, "postgresql://mai:hunter2@db/mai\n").unwrap();
    let config = ok(&[("DATABASE_URL_FILE", url_file.to_str().unwrap())]);
    assert_eq!(config.postgres.unwrap().dbname, "mai");
    let password_file = dir.path().join("pw");
    std::fs::write(&password_file, "hunter2\n").unwrap();
    let config = ok(&[
        ("DATABASE_TYPE", "postgres"),
        ("DATABASE_USER", "mai"),
        ("DATABASE_PASSWORD_FILE", password_file.to_str().unwrap()),
        ("DATABASE_HOST", "db"),
        ("DATABASE_PORT", "5432"),
        ("DATABASE_NAME", "webui"),
    ]);
    let target = config.postgres.unwrap();
    assert_eq!(target.password.unwrap().expose(), "hunter2");
    assert_eq!(target.dbname, "webui");
    let e = err(&[
        ("DATABASE_PASSWORD", "hunter2"),
        ("DATABASE_PASSWORD_FILE", password_file.to_str().unwrap()),
    ]);
    assert!(matches!(e, ConfigError::BothSet { .. }), "{e}");
}

#[test]
fn database_url_must_be_a_sqlite_file_url() {
    for url in [
        "sqlite://",
        "sqlite://webui.db",
        "sqlite:/webui.db",
        "/app/backend/data/webui.db",
        "webui.db",
        "sqlite",
    ] {
        let e = err(&[("DATABASE_URL", url)]);
        assert_invalid(&e, "DATABASE_URL", "is not a SQLite file URL");
        assert_says(&e, &["Use a SQLite file"]);
    }
    for url in [
        "sqlite:///",
        "sqlite:///webui.db?mode=ro",
        "sqlite:///data/webui.db?mode=ro",
        "sqlite:////data/webui.db?timeout=5",
    ] {
        let e = err(&[("DATABASE_URL", url)]);
        assert_invalid(
            &e,
            "DATABASE_URL",
            "must name a database file, without query parameters",
        );
        assert_says(&e, &["unset DATABASE_URL"]);
    }
}

#[test]
fn database_url_refuses_the_in_memory_database() {
    let e = err(&[
        ("DATABASE_URL", "sqlite:///:memory:"),
        ("CREATE_SCHEMA", "true"),
    ]);
    assert_invalid(&e, "DATABASE_URL", "in-memory");
    assert_says(&e, &["Use a SQLite file"]);
}

// ------------------------------------------------ ENV_FILE and ENV_FILE_MODE

#[test]
fn env_file_names_a_file() {
    assert_eq!(
        ok(&[("ENV_FILE", "/shared/.env")]).env_file,
        Path::new("/shared/.env")
    );
    assert_eq!(ok(&[("ENV_FILE", "")]).env_file, Path::new(".env"));
    for value in ["/shared/", "dir/", "/"] {
        let e = err(&[("ENV_FILE", value)]);
        assert_invalid(&e, "ENV_FILE", "names a directory");
        assert_says(&e, &["ENV_FILE=/shared/.env"]);
    }
}

#[test]
fn env_file_mode_is_octal_and_owner_read_write() {
    for (text, mode) in [
        ("0600", 0o600),
        ("600", 0o600),
        ("0o640", 0o640),
        (" 0640 ", 0o640),
        ("0660", 0o660),
        ("0770", 0o770),
        ("00600", 0o600),
    ] {
        assert_eq!(
            ok(&[("ENV_FILE_MODE", text)]).env_file_mode,
            mode,
            "{text:?}"
        );
    }
    for value in [
        "0400",
        "0040",
        "0200",
        "0000",
        "0060",
        "0800",
        "rw-------",
        "1777",
        "4600",
        "0x180",
        "384",
        "-600",
        "0o",
    ] {
        let e = err(&[("ENV_FILE_MODE", value)]);
        assert_invalid(
            &e,
            "ENV_FILE_MODE",
            "octal file mode that lets the owner read and write",
        );
        assert_says(&e, &["keep it 0600"]);
    }
}

#[test]
fn env_file_mode_gives_others_nothing() {
    for value in ["0606", "0777", "0604", "0601", "0644"] {
        let e = err(&[("ENV_FILE_MODE", value)]);
        assert_invalid(&e, "ENV_FILE_MODE", "gives other users access");
        assert_says(&e, &["0640"]);
    }
}

// ------------------------------------------------------------- LOCK_TIMEOUT

#[test]
fn lock_timeout_is_0_to_86400_seconds() {
    for (text, duration) in [
        ("0", Duration::ZERO),
        ("0.5", Duration::from_millis(500)),
        (" 30 ", Duration::from_secs(30)),
        ("86400", Duration::from_secs(86_400)),
    ] {
        assert_eq!(
            ok(&[("LOCK_TIMEOUT", text)]).lock_timeout,
            duration,
            "{text:?}"
        );
    }
    for value in [
        "-1", "86400.5", "86401", "1e9", "NaN", "inf", "soon", "30s", "1,5",
    ] {
        let e = err(&[("LOCK_TIMEOUT", value)]);
        assert_invalid(
            &e,
            "LOCK_TIMEOUT",
            "must be a number of seconds from 0 to 86400",
        );
        assert_says(&e, &["LOCK_TIMEOUT=60"]);
    }
}

// ------------------------------------------------------ LOG_FORMAT, LOG_LEVEL

#[test]
fn log_format_is_text_or_json() {
    for value in ["text", "json", "JSON", " Text "] {
        ok(&[("LOG_FORMAT", value)]);
    }
    for value in ["xml", "logfmt", "jsonl"] {
        let e = err(&[("LOG_FORMAT", value)]);
        assert_invalid(&e, "LOG_FORMAT", "must be text or json");
        assert_says(&e, &["LOG_FORMAT=json"]);
    }
}

#[test]
fn log_level_is_a_known_level() {
    for value in ["error", "warn", "info", "debug", "trace", "off", "DEBUG"] {
        ok(&[("LOG_LEVEL", value)]);
    }
    for value in ["verbose", "warning", "5"] {
        let e = err(&[("LOG_LEVEL", value)]);
        assert_invalid(
            &e,
            "LOG_LEVEL",
            "must be error, warn, info, debug, trace or off",
        );
        assert_says(&e, &["LOG_LEVEL=debug"]);
    }
}

// ----------------------------------------- CREATE_SCHEMA, REQUIRE_DATABASE

#[test]
fn create_schema_and_require_database_are_booleans() {
    for var in ["CREATE_SCHEMA", "REQUIRE_DATABASE"] {
        for (text, value) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            (" yes ", true),
            ("on", true),
            ("false", false),
            ("0", false),
            ("no", false),
            ("OFF", false),
            ("", false),
        ] {
            let config = ok(&[(var, text)]);
            let got = if var == "CREATE_SCHEMA" {
                config.create_schema
            } else {
                config.require_database
            };
            assert_eq!(got, value, "{var}={text:?}");
        }
        for text in ["maybe", "2", "y", "enabled"] {
            let e = err(&[(var, text)]);
            assert_invalid(&e, var, "must be true or false");
            assert!(e.to_string().contains(&format!("{var}=true")), "{e}");
        }
    }
}

#[test]
fn create_schema_and_require_database_are_not_both_true() {
    let e = err(&[("CREATE_SCHEMA", "true"), ("REQUIRE_DATABASE", "yes")]);
    assert_invalid(&e, "CREATE_SCHEMA", "REQUIRE_DATABASE are both true");
    assert_says(
        &e,
        &[
            "CREATE_SCHEMA and REQUIRE_DATABASE are both true",
            "not both",
        ],
    );
    let config = ok(&[("CREATE_SCHEMA", "true"), ("REQUIRE_DATABASE", "false")]);
    assert!(config.create_schema && !config.require_database);
}

#[test]
fn organization_active_is_a_boolean() {
    assert_eq!(ok(&[]).organization_active, None);
    assert_eq!(ok(&[("ORGANIZATION_ACTIVE", "")]).organization_active, None);
    for (text, value) in [
        ("true", true),
        (" YES ", true),
        ("false", false),
        ("0", false),
    ] {
        assert_eq!(
            ok(&[("ORGANIZATION_ACTIVE", text)]).organization_active,
            Some(value),
            "{text:?}"
        );
    }
    for text in ["maybe", "2", "inactive"] {
        let e = err(&[("ORGANIZATION_ACTIVE", text)]);
        assert_invalid(&e, "ORGANIZATION_ACTIVE", "must be true or false");
        assert_says(&e, &["ORGANIZATION_ACTIVE=true"]);
    }
}

// ------------------------------------------ PROVISION_MODE, WAIT_FOR_DATABASE

#[test]
fn provision_mode_is_env_database_or_production() {
    for (text, mode) in [
        ("env", Mode::Env),
        ("Database", Mode::Database),
        (" PRODUCTION ", Mode::Production),
    ] {
        assert_eq!(ok(&[("PROVISION_MODE", text)]).mode, Some(mode), "{text:?}");
    }
    assert_eq!(ok(&[("PROVISION_MODE", "")]).mode, None);
    for value in ["prod", "db", "init-database", "--production"] {
        let e = err(&[("PROVISION_MODE", value)]);
        assert_invalid(&e, "PROVISION_MODE", "must be env, database or production");
        assert_says(&e, &["production also verifies both"]);
    }
}

#[test]
fn wait_for_database_is_a_boolean_or_seconds() {
    for (text, wait) in [
        ("false", None),
        ("0", None),
        ("no", None),
        ("OFF", None),
        ("", None),
        ("true", Some(crate::config::DEFAULT_WAIT_FOR_DATABASE)),
        ("yes", Some(Duration::from_secs(300))),
        ("on", Some(Duration::from_secs(300))),
        ("1", Some(Duration::from_secs(1))),
        ("120", Some(Duration::from_secs(120))),
        ("2.5", Some(Duration::from_millis(2500))),
        ("86400", Some(Duration::from_secs(86_400))),
    ] {
        assert_eq!(
            ok(&[("WAIT_FOR_DATABASE", text)]).wait_for_database,
            wait,
            "{text:?}"
        );
    }
    for value in ["soon", "-5", "86401", "1e9", "NaN", "inf", "5m"] {
        let e = err(&[("WAIT_FOR_DATABASE", value)]);
        assert_invalid(&e, "WAIT_FOR_DATABASE", "from 0 to 86400");
        assert_says(&e, &["WAIT_FOR_DATABASE=60"]);
    }
}

// ------------------------------------------------- the environment as a whole

#[test]
fn an_empty_value_means_unset_for_every_variable() {
    let mut vars = env(&[]);
    for v in VARIABLES {
        if !matches!(v.name, "ORGANIZATION_NAME" | "OPENROUTER_API_KEY") {
            vars.push((OsString::from(v.name), OsString::new()));
        }
    }
    let config = from_vars(vars).unwrap();
    assert_eq!(config.host, DEFAULT_HOST);
    assert!(!config.markup_rate.explicit);
    assert_eq!(config.spending_limit, "unlimited");
    assert_eq!(config.env_file_mode, DEFAULT_ENV_FILE_MODE);
    assert_eq!(config.data_dir, Path::new(DEFAULT_DATA_DIR));
    assert_eq!(config.mode, None);
    assert_eq!(config.wait_for_database, None);

    let e = err(&[("ORGANIZATION_NAME", "")]);
    assert!(
        matches!(
            e,
            ConfigError::Missing {
                var: "ORGANIZATION_NAME",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn invalid_utf8_in_one_of_our_variables_is_named() {
    for v in VARIABLES {
        let mut vars = env(&[]);
        vars.retain(|(n, _)| n != v.name);
        vars.push((
            OsString::from(v.name),
            OsStr::from_bytes(b"Ac\xffme").to_owned(),
        ));
        let e = from_vars(vars).unwrap_err();
        assert!(
            matches!(&e, ConfigError::NotUtf8 { var } if var == v.name),
            "{}: {e:?}",
            v.name
        );
        assert_eq!(
            e.to_string(),
            format!("{} is not valid UTF-8. Set it to UTF-8 text.", v.name)
        );
    }
}

#[test]
fn invalid_utf8_in_another_variable_is_ignored() {
    let mut vars = env(&[]);
    vars.push((
        OsString::from("LANG"),
        OsStr::from_bytes(b"\xff\xfe").to_owned(),
    ));
    vars.push((
        OsStr::from_bytes(b"NAME_\xff").to_owned(),
        OsString::from("x"),
    ));
    vars.push((
        OsStr::from_bytes(b"\xfe").to_owned(),
        OsStr::from_bytes(b"\xfe").to_owned(),
    ));
    assert_eq!(from_vars(vars).unwrap().organization_name, "Acme");
}

#[test]
fn only_exact_variable_names_count() {
    // Lower case and look-alikes are other variables, not ours.
    let vars = env(&[
        ("markup_rate", "abc"),
        ("MARKUP_RATE_", "abc"),
        ("OPENROUTER_API_KEY_FILE_", "/nonexistent"),
    ]);
    assert!(!from_vars(vars).unwrap().markup_rate.explicit);
}

#[test]
fn a_variable_over_64_kib_is_refused_without_its_value() {
    let limit = 64 * 1024;
    for v in VARIABLES {
        let value = "Q".repeat(limit + 1);
        let e = err(&[(v.name, &value)]);
        assert!(
            matches!(&e, ConfigError::TooLong { var, len, max } if var == v.name && *len == limit + 1 && *max == limit),
            "{}: {e:?}",
            v.name
        );
        assert!(e.to_string().starts_with(v.name), "{e}");
        assert_says(
            &e,
            &[
                &format!("{} is 65537 bytes long", v.name),
                "more than the 65536 bytes allowed",
                "Check its value",
            ],
        );
        assert_hides(&e, "QQQQ");
    }
    // Exactly 64 KiB passes the size check and meets the variable's own rule.
    let e = err(&[("ORGANIZATION_NAME", &"x".repeat(limit))]);
    assert_invalid(&e, "ORGANIZATION_NAME", "has 65536");
    // Bytes, not characters: 32 Ki two-byte letters plus one byte is too long.
    let e = err(&[("ORGANIZATION_NAME", &format!("{}x", "ż".repeat(limit / 2)))]);
    assert!(matches!(e, ConfigError::TooLong { .. }), "{e:?}");
    // Another variable may be as long as it likes.
    let mut vars = env(&[]);
    vars.push((OsString::from("HUGE"), OsString::from("x".repeat(1 << 20))));
    from_vars(vars).unwrap();
}

#[test]
fn the_variable_table_is_complete_and_has_no_duplicates() {
    let mut names: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "a variable is listed twice");
    assert_eq!(before, 44);
    let help = vars::help_table();
    for v in VARIABLES {
        assert!(vars::is_known(v.name), "{}", v.name);
        assert!(!v.default.is_empty() && !v.about.is_empty(), "{}", v.name);
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{} ", v.name)))
            .unwrap_or_else(|| panic!("{} not in help", v.name));
        assert!(line.ends_with(&format!("[{}]", v.default)), "{line}");
    }
    assert!(!vars::is_known("PATH"));
    assert!(!vars::is_known("organization_name"));
}

#[test]
fn soft_hyphens_and_tag_characters_count_as_invisible() {
    for name in [
        "Ac\u{AD}me",
        "Acme\u{E0041}",
        "Ac\u{180E}me",
        "Ac\u{FFF9}me",
    ] {
        let e = err(&[("ORGANIZATION_NAME", name)]);
        assert!(e.to_string().contains("invisible"), "{name:?}: {e}");
    }
}

// ------------------------------------------------------ the management key

const MANAGEMENT: &str = "sk-or-v1-UNITMGMT0000aaaa1111bbbb2222cccc3333";

/// A valid environment that mints: the given key replaced by a management
/// key, plus `added`.
fn minting_env(added: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    let mut vars = env_without(
        &["OPENROUTER_API_KEY"],
        &[("OPENROUTER_MANAGEMENT_KEY", MANAGEMENT)],
    );
    for (name, value) in added {
        vars.retain(|(n, _)| n != name);
        vars.push((OsString::from(name), OsString::from(value)));
    }
    vars
}

#[track_caller]
fn minting_ok(added: &[(&str, &str)]) -> Minting {
    match from_vars(minting_env(added)) {
        Ok(Config {
            key_source: KeySource::Minted(minting),
            ..
        }) => *minting,
        other => panic!("{added:?}: {other:?}"),
    }
}

#[track_caller]
fn minting_err(added: &[(&str, &str)]) -> ConfigError {
    match from_vars(minting_env(added)) {
        Ok(config) => panic!("{added:?} was accepted: {config:?}"),
        Err(e) => e,
    }
}

/// On PostgreSQL replicas share no volume: minting needs a key store they
/// all mount, named on purpose.
#[test]
fn minting_on_postgresql_needs_a_shared_key_store() {
    let url = ("DATABASE_URL", "postgresql://mai:pw@db/mai");
    let e = minting_err(&[url]);
    assert_invalid(&e, "OPENROUTER_MANAGEMENT_KEY", "a PostgreSQL database");
    assert!(e.to_string().contains("OPENROUTER_KEY_STORE"), "{e}");
    let shared = minting_ok(&[url, ("OPENROUTER_KEY_STORE", "/shared/.openrouter_key")]);
    assert_eq!(shared.key_store, Path::new("/shared/.openrouter_key"));
}

#[test]
fn a_management_key_mints_with_every_default() {
    let minting = minting_ok(&[]);
    assert_eq!(minting.management_key.expose(), MANAGEMENT);
    assert_eq!(minting.key_var, "OPENROUTER_MANAGEMENT_KEY");
    assert_eq!(minting.limit, None);
    assert_eq!(minting.limit_reset, None);
    assert_eq!(minting.rotate_token, None);
    assert_eq!(minting.rotation_grace, Duration::from_secs(3600));
    assert_eq!(minting.timeout, Duration::from_secs(30));
    assert_eq!(
        minting.key_store,
        Path::new("/app/backend/data/.openrouter_key")
    );
    assert_eq!(minting.ssl_cert_file, None);
    assert!(minting.https_proxy.is_none() && minting.no_proxy.is_none());
    let minting = minting_ok(&[("SPENDING_LIMIT", "1000"), ("DATA_DIR", "/data")]);
    assert_eq!(minting.limit, Some(1000.0));
    assert_eq!(minting.key_store, Path::new("/data/.openrouter_key"));
}

#[test]
fn the_management_key_comes_from_a_variable_a_file_or_the_old_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = temp_file(&dir, "management", format!("{MANAGEMENT}\n").as_bytes());
    for (var, value) in [
        ("OPENROUTER_MANAGEMENT_KEY_FILE", file.as_str()),
        ("OPENROUTER_PROVISIONING_KEY", MANAGEMENT),
        ("OPENROUTER_PROVISIONING_KEY_FILE", file.as_str()),
    ] {
        let vars = env_without(&["OPENROUTER_API_KEY"], &[(var, value)]);
        let Ok(Config {
            key_source: KeySource::Minted(minting),
            ..
        }) = from_vars(vars)
        else {
            panic!("{var} was not taken");
        };
        assert_eq!(minting.management_key.expose(), MANAGEMENT, "{var}");
        assert_eq!(minting.key_var, var);
    }
}

#[test]
fn a_management_key_and_an_api_key_are_never_both_set() {
    for given in ["OPENROUTER_API_KEY", "OPENROUTER_API_KEY_FILE"] {
        let mut vars = minting_env(&[]);
        vars.push((OsString::from(given), OsString::from(KEY)));
        let e = from_vars(vars).unwrap_err();
        assert_invalid(&e, given, "is set together with OPENROUTER_MANAGEMENT_KEY");
        assert_says(
            &e,
            &[
                &format!("Remove {given}: with OPENROUTER_MANAGEMENT_KEY the job mints"),
                "remove OPENROUTER_MANAGEMENT_KEY",
            ],
        );
        assert_hides(&e, &MANAGEMENT[9..]);
        assert_hides(&e, &KEY[9..]);
    }
}

#[test]
fn only_one_management_key_variable_is_set() {
    for (first, second) in [
        (
            "OPENROUTER_MANAGEMENT_KEY",
            "OPENROUTER_MANAGEMENT_KEY_FILE",
        ),
        ("OPENROUTER_MANAGEMENT_KEY", "OPENROUTER_PROVISIONING_KEY"),
        (
            "OPENROUTER_MANAGEMENT_KEY",
            "OPENROUTER_PROVISIONING_KEY_FILE",
        ),
        (
            "OPENROUTER_PROVISIONING_KEY",
            "OPENROUTER_PROVISIONING_KEY_FILE",
        ),
    ] {
        let vars = env_without(
            &["OPENROUTER_API_KEY"],
            &[(first, MANAGEMENT), (second, "/nonexistent")],
        );
        let e = from_vars(vars).unwrap_err();
        assert!(
            matches!(e, ConfigError::BothSet { first: f, second: s } if f == first && s == second),
            "{first} + {second}: {e:?}"
        );
        assert_says(&e, &["Set only one of them"]);
    }
}

#[test]
fn a_management_key_meets_the_key_rules_and_says_where_to_get_one() {
    for (bad, problem) in [
        ("mgmt-0123456789abcdef0123", "does not start with `sk-or-`"),
        ("sk-or-v1-short", "shorter than 20 characters"),
        ("sk-or-v1-0123456789 abcdef012345", "other than A-Z"),
    ] {
        let e = minting_err(&[("OPENROUTER_MANAGEMENT_KEY", bad)]);
        assert_invalid(&e, "OPENROUTER_MANAGEMENT_KEY", problem);
        assert_says(&e, &["https://openrouter.ai/settings/management-keys"]);
        assert_hides(&e, &bad[6..]);
    }
}

#[test]
fn the_management_key_goes_over_https_or_to_loopback_only() {
    for host in [
        "https://openrouter.ai/api/v1",
        "https://proxy.internal.example/api/v1",
        "http://127.0.0.1:8080/api/v1",
        "http://127.9.9.9/api/v1",
        "http://[::1]:8080/api/v1",
        "http://localhost:8080/api/v1",
        "HTTP://LOCALHOST/api/v1",
    ] {
        minting_ok(&[("OPENROUTER_HOST", host)]);
    }
    for (host, shown) in [
        ("http://openrouter.ai/api/v1", "openrouter.ai"),
        ("http://10.0.0.1:8080/api/v1", "10.0.0.1"),
        (
            "http://localhost.evil.example/api/v1",
            "localhost.evil.example",
        ),
        ("http://[::2]/api/v1", "::2"),
    ] {
        let e = minting_err(&[("OPENROUTER_HOST", host)]);
        assert_invalid(
            &e,
            "OPENROUTER_HOST",
            &format!("is plain http:// to {shown}"),
        );
        assert_says(
            &e,
            &["only ever sent over HTTPS", "loopback", "Use https://"],
        );
    }
    // A given key may still go to any http(s) host, as before.
    ok(&[("OPENROUTER_HOST", "http://openrouter.internal/api/v1")]);
}

#[test]
fn spending_limit_reset_is_daily_weekly_or_monthly() {
    for (value, reset) in [
        ("daily", LimitReset::Daily),
        ("weekly", LimitReset::Weekly),
        ("Monthly", LimitReset::Monthly),
        (" monthly ", LimitReset::Monthly),
    ] {
        assert_eq!(
            minting_ok(&[("SPENDING_LIMIT_RESET", value)]).limit_reset,
            Some(reset)
        );
    }
    for bad in ["yearly", "none", "1"] {
        let e = minting_err(&[("SPENDING_LIMIT_RESET", bad)]);
        assert_invalid(
            &e,
            "SPENDING_LIMIT_RESET",
            "must be daily, weekly or monthly",
        );
        assert_says(&e, &["unset it for a limit that never resets"]);
    }
}

#[test]
fn settings_only_a_minted_key_honours_need_a_management_key() {
    for (var, value) in [("SPENDING_LIMIT_RESET", "monthly"), ("ROTATE_KEY", "true")] {
        let e = err(&[(var, value)]);
        assert_invalid(&e, var, "only a key the job mints can honour it");
        assert_says(
            &e,
            &["Set OPENROUTER_MANAGEMENT_KEY", &format!("or unset {var}")],
        );
    }
    // Switched off, ROTATE_KEY asks for nothing.
    ok(&[("ROTATE_KEY", "false")]);
    // Settings that only tune a mint are harmless without one.
    ok(&[
        ("KEY_ROTATION_GRACE", "0"),
        ("OPENROUTER_TIMEOUT", "5"),
        ("SSL_CERT_FILE", "/nonexistent.pem"),
        ("HTTPS_PROXY", "http://proxy.example:3128"),
    ]);
}

#[test]
fn rotate_key_is_a_token_and_false_means_no_rotation() {
    for token in ["true", "2026-11-30", "2026-11-30T12:00:00Z", "v2"] {
        assert_eq!(
            minting_ok(&[("ROTATE_KEY", token)]).rotate_token.as_deref(),
            Some(token)
        );
    }
    for off in ["false", "0", "no", "OFF"] {
        assert_eq!(
            minting_ok(&[("ROTATE_KEY", off)]).rotate_token,
            None,
            "{off}"
        );
    }
    let long = "x".repeat(129);
    for bad in ["two words", "tab\there", long.as_str()] {
        let e = minting_err(&[("ROTATE_KEY", bad)]);
        assert_invalid(&e, "ROTATE_KEY", "at most 128 characters");
        assert_says(&e, &["rotated once per token"]);
    }
}

#[test]
fn the_grace_and_the_timeout_are_bounded_seconds() {
    assert_eq!(
        minting_ok(&[("KEY_ROTATION_GRACE", "0")]).rotation_grace,
        Duration::ZERO
    );
    assert_eq!(
        minting_ok(&[("OPENROUTER_TIMEOUT", "0.5")]).timeout,
        Duration::from_millis(500)
    );
    for (var, bad, words) in [
        ("KEY_ROTATION_GRACE", "-1", "from 0 to 2592000"),
        ("KEY_ROTATION_GRACE", "2592001", "from 0 to 2592000"),
        ("KEY_ROTATION_GRACE", "an hour", "from 0 to 2592000"),
        ("OPENROUTER_TIMEOUT", "0", "from more than 0 to 600"),
        ("OPENROUTER_TIMEOUT", "601", "from more than 0 to 600"),
        ("OPENROUTER_TIMEOUT", "NaN", "from more than 0 to 600"),
    ] {
        let e = minting_err(&[(var, bad)]);
        assert_invalid(&e, var, words);
    }
}

#[test]
fn the_key_store_is_a_file_path() {
    assert_eq!(
        minting_ok(&[("OPENROUTER_KEY_STORE", "/run/mai/.openrouter_key")]).key_store,
        Path::new("/run/mai/.openrouter_key")
    );
    let e = minting_err(&[("OPENROUTER_KEY_STORE", "/run/mai/")]);
    assert_invalid(&e, "OPENROUTER_KEY_STORE", "names a directory");
}

#[test]
fn the_debug_form_of_a_minting_config_hides_the_management_key_and_the_proxy_password() {
    let config = from_vars(minting_env(&[(
        "HTTPS_PROXY",
        "http://user:hunter2pass@proxy.example:3128",
    )]))
    .unwrap();
    for shown in [format!("{config:?}"), config.describe()] {
        assert!(!shown.contains(&MANAGEMENT[9..]), "{shown}");
        assert!(!shown.contains("hunter2pass"), "{shown}");
    }
    assert!(
        config
            .describe()
            .contains("minted with OPENROUTER_MANAGEMENT_KEY")
    );
}
