//! The configuration's refusals through the built binary: one table of
//! `(command line, variables, exit code, words in the message)`.
//!
//! Every rule of the configuration, and its wording, is a unit test in
//! src/config/tests.rs. A rule has a row here where the binary's behaviour
//! matters beyond the rule (tests/integration/RULES.md lists where each
//! rule is tested): a secret file that must not hang the job or be read
//! whole; a value that is not UTF-8 or is over 64 KiB; a value that would
//! forge a `.env` line or reach the terminal raw; a secret that must not be
//! echoed; a rule the run checks against the file system; the command
//! line; and one row per kind of error, so that each reaches stderr with
//! its exit code.
//!
//! Each row runs on a deployment with something to spoil and goes through
//! `refused_by`: the exit code, every word, no secret, and every file of
//! the deployment exactly as it was. It must also print no control
//! character and nothing the row hides, end stderr with the error (clap's
//! usage errors aside), and take less than 10 s.

use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use mai_provision::config::VARIABLES;

const CONFIG: i32 = 78;
const NO_PERMISSION: i32 = 77;
const USAGE: i32 = 64;

const EVIL_HOST: &str = "https://evil.example";

/// Longer than any refusal takes on a loaded machine; a secret file that
/// is read whole, or blocks, takes longer.
const QUICK: Duration = Duration::from_secs(10);

/// How a row sets one variable.
enum Value {
    Text(String),
    /// Bytes that are not UTF-8.
    Bytes(&'static [u8]),
    /// Removed from the valid configuration.
    Unset,
    /// The path of a file in the sandbox that holds these bytes.
    File(Vec<u8>),
    /// The path of a mode 000 file holding these bytes; the run goes
    /// without root's power to read it anyway.
    Unreadable(Vec<u8>),
    /// The path of a named pipe that no one writes, outside the sandbox
    /// (whose snapshot would block reading it).
    Pipe,
    /// A path inside the sandbox.
    InSandbox(&'static str),
}

/// One refusal: a `--production` run (unless `args` says otherwise) of a
/// deployment, with `vars` on top of a valid configuration.
struct Row {
    args: &'static [&'static str],
    vars: Vec<(&'static str, Value)>,
    code: i32,
    words: Vec<String>,
    hidden: Vec<String>,
    /// Something the deployment holds before the run.
    prepare: Option<fn(&Sandbox)>,
    /// An empty volume and no `.env`, instead of a deployment.
    first_boot: bool,
}

impl Row {
    fn new(code: i32, words: &[&str]) -> Self {
        Self {
            args: &["--production"],
            vars: Vec::new(),
            code,
            words: words.iter().map(|w| w.to_string()).collect(),
            hidden: Vec::new(),
            prepare: None,
            first_boot: false,
        }
    }

    fn set(mut self, var: &'static str, value: impl Into<String>) -> Self {
        self.vars.push((var, Value::Text(value.into())));
        self
    }

    fn with(mut self, var: &'static str, value: Value) -> Self {
        self.vars.push((var, value));
        self
    }

    fn unset(self, var: &'static str) -> Self {
        self.with(var, Value::Unset)
    }

    fn args(mut self, args: &'static [&'static str]) -> Self {
        self.args = args;
        self
    }

    fn hides(mut self, text: impl Into<String>) -> Self {
        self.hidden.push(text.into());
        self
    }

    fn before(mut self, prepare: fn(&Sandbox)) -> Self {
        self.prepare = Some(prepare);
        self
    }

    fn on_first_boot(mut self) -> Self {
        self.first_boot = true;
        self
    }

    /// The row as a failure names it: arguments and variables, long
    /// values cut short.
    fn case(&self) -> String {
        let vars: Vec<String> = self
            .vars
            .iter()
            .map(|(var, value)| match value {
                Value::Text(text) => format!("{var}={}", short(text)),
                Value::Bytes(bytes) => format!("{var}={:?}", OsStr::from_bytes(bytes)),
                Value::Unset => format!("-{var}"),
                Value::File(bytes) => format!("{var}=<file of {} bytes>", bytes.len()),
                Value::Unreadable(_) => format!("{var}=<unreadable file>"),
                Value::Pipe => format!("{var}=<pipe>"),
                Value::InSandbox(path) => format!("{var}=<sandbox>/{path}"),
            })
            .collect();
        format!("{:?} {}", self.args, vars.join(" "))
    }

    #[track_caller]
    fn check(&self) {
        let sandbox = if self.first_boot {
            Sandbox::new()
        } else {
            deployment()
        };
        if let Some(prepare) = self.prepare {
            prepare(&sandbox);
        }
        let outside = tempfile::tempdir().unwrap();
        let mut cmd = sandbox.command();
        cmd.args(self.args);
        let mut unreadable = None;
        for (var, value) in &self.vars {
            let file = sandbox.path().join(var.to_lowercase());
            match value {
                Value::Text(text) => cmd.env(var, text),
                Value::Bytes(bytes) => cmd.env(var, OsStr::from_bytes(bytes)),
                Value::Unset => cmd.env_remove(var),
                Value::File(bytes) => {
                    fs::write(&file, bytes).unwrap();
                    cmd.env(var, &file)
                }
                Value::Unreadable(bytes) => {
                    fs::write(&file, bytes).unwrap();
                    fs::set_permissions(&file, fs::Permissions::from_mode(0o000)).unwrap();
                    unreadable = Some(file.to_str().unwrap().to_owned());
                    cmd.env(var, &file)
                }
                Value::Pipe => {
                    let pipe = outside.path().join(var);
                    mkfifo(&pipe);
                    cmd.env(var, pipe)
                }
                Value::InSandbox(path) => cmd.env(var, sandbox.path().join(path)),
            };
        }
        let cmd = match unreadable {
            Some(locked) => match without_dac_override(cmd, &locked) {
                Some(cmd) => cmd,
                None => return,
            },
            None => cmd,
        };
        let case = self.case();
        let words: Vec<&str> = self.words.iter().map(String::as_str).collect();
        let started = Instant::now();
        let run = refused_by(&sandbox, cmd, &case, self.code, &words);
        let took = started.elapsed();
        assert!(took < QUICK, "{case}: took {took:?}");
        for text in &self.hidden {
            run.assert_absent(text);
        }
        run.assert_no_control_characters();
        if self.code != USAGE {
            run.assert_last_line_mentions(&words);
        }
    }
}

/// A value for a failure message: long ones cut to their start.
fn short(value: &str) -> String {
    match value.char_indices().nth(40) {
        Some((end, _)) => format!("{:?}… ({} bytes)", &value[..end], value.len()),
        None => format!("{value:?}"),
    }
}

/// A row of a deployment switched to minting: a management key instead of
/// the given key, which must never be shown either.
fn minting(row: Row) -> Row {
    row.unset("OPENROUTER_API_KEY")
        .set("OPENROUTER_MANAGEMENT_KEY", MANAGEMENT_KEY)
        .hides(&MANAGEMENT_KEY[9..])
}

/// Every refusal. A value that would forge a `.env` line carries one that
/// would send the key to `EVIL_HOST`.
fn refusals() -> Vec<Row> {
    let forged = |value: &str| format!("{value}\nOPENROUTER_HOST={EVIL_HOST}");
    let oversized = format!("{KEY}{}", "Z".repeat(64 * 1024));
    let mut ten_mb = KEY.as_bytes().to_vec();
    ten_mb.resize(10 * 1024 * 1024, b'a');
    let mut rows = vec![
        // ------------------------------------------- each kind of error
        Row::new(
            CONFIG,
            &["ORGANIZATION_NAME is not set. Set it to the client organization's name"],
        )
        .unset("ORGANIZATION_NAME"),
        Row::new(
            CONFIG,
            &[
                "OPENROUTER_API_KEY and OPENROUTER_API_KEY_FILE are both set",
                "Set only one of them",
            ],
        )
        .with("OPENROUTER_API_KEY_FILE", Value::File(KEY.into())),
        Row::new(
            CONFIG,
            &[
                &format!("OPENROUTER_API_KEY is {} bytes long", oversized.len()),
                "more than the 65536 bytes allowed",
                "Check its value",
            ],
        )
        .set("OPENROUTER_API_KEY", oversized)
        .hides("ZZZZ"),
        Row::new(
            CONFIG,
            &[
                "OPENROUTER_API_KEY_FILE=/nonexistent/openrouter_api_key",
                "it does not exist",
                "Point it at the mounted secret file",
            ],
        )
        .unset("OPENROUTER_API_KEY")
        .set("OPENROUTER_API_KEY_FILE", "/nonexistent/openrouter_api_key"),
        Row::new(
            NO_PERMISSION,
            &[
                "OPENROUTER_API_KEY_FILE=",
                "permission denied",
                "cannot be read by this job, which runs as uid",
                "Make the file readable by the job's uid",
            ],
        )
        .unset("OPENROUTER_API_KEY")
        .with("OPENROUTER_API_KEY_FILE", Value::Unreadable(KEY.into())),
        Row::new(
            NO_PERMISSION,
            &["WEBUI_SECRET_KEY_FILE=", "permission denied"],
        )
        .unset("WEBUI_SECRET_KEY")
        .with(
            "WEBUI_SECRET_KEY_FILE",
            Value::Unreadable(SECRET_KEY.into()),
        ),
        // ------------- secret files that must not hang the job or be read whole
        Row::new(
            CONFIG,
            &[
                "OPENROUTER_API_KEY_FILE=/dev/zero",
                "not a regular file",
                "Point it at the mounted secret file",
            ],
        )
        .unset("OPENROUTER_API_KEY")
        .set("OPENROUTER_API_KEY_FILE", "/dev/zero"),
        Row::new(CONFIG, &["OPENROUTER_API_KEY_FILE=", "not a regular file"])
            .unset("OPENROUTER_API_KEY")
            .with("OPENROUTER_API_KEY_FILE", Value::Pipe),
        Row::new(
            CONFIG,
            &[
                "OPENROUTER_API_KEY_FILE=",
                "larger than 65536 bytes",
                "holds only the secret",
            ],
        )
        .unset("OPENROUTER_API_KEY")
        .with("OPENROUTER_API_KEY_FILE", Value::File(ten_mb)),
        Row::new(
            CONFIG,
            &[
                "OPENROUTER_API_KEY_FILE",
                "other than A-Z, a-z, 0-9",
                "Copy the key",
            ],
        )
        .unset("OPENROUTER_API_KEY")
        .with(
            "OPENROUTER_API_KEY_FILE",
            Value::File(format!("{}\0{}", &KEY[..30], &KEY[30..]).into()),
        )
        .hides(&KEY[9..30]),
        Row::new(
            CONFIG,
            &[
                "WEBUI_SECRET_KEY_FILE",
                "control character",
                "printable characters only",
            ],
        )
        .unset("WEBUI_SECRET_KEY")
        .with(
            "WEBUI_SECRET_KEY_FILE",
            Value::File(b"FAKE-webui-secret\0Qx7Zp9Lm2Vb8\n".to_vec()),
        ),
        // ------------- keys described without their value, even at trace level
        Row::new(
            CONFIG,
            &[
                "OPENROUTER_API_KEY",
                "does not start with `sk-or-`",
                "https://openrouter.ai/settings/keys",
            ],
        )
        .set("OPENROUTER_API_KEY", "sk-ant-LEAKPROBE00aaaa1111bbbb2222")
        .set("LOG_LEVEL", "trace")
        .hides("LEAKPROBE"),
        Row::new(
            CONFIG,
            &[
                "OPENROUTER_API_KEY",
                "shorter than 20 characters",
                "Copy the key",
            ],
        )
        .set("OPENROUTER_API_KEY", "sk-or-v1-LEAKPROBE")
        .set("LOG_LEVEL", "trace")
        .hides("LEAKPROBE"),
        Row::new(
            CONFIG,
            &[
                "OPENROUTER_API_KEY",
                "other than A-Z, a-z, 0-9",
                "Copy the key",
            ],
        )
        .set(
            "OPENROUTER_API_KEY",
            format!("sk-or-v1-LEAKPROBE {}", &KEY[9..]),
        )
        .set("LOG_LEVEL", "trace")
        .hides("LEAKPROBE"),
        Row::new(
            CONFIG,
            &[
                "DATABASE_URL uses the unsupported scheme `mysql`",
                "DATABASE_URL=sqlite:////app/backend/data/webui.db",
                "DATABASE_URL=postgresql://user:password@host:5432/database",
            ],
        )
        .set("DATABASE_URL", "mysql://mai:hunter2@db:3306/mai")
        .hides("hunter2"),
        // A PostgreSQL URL the job cannot use is refused before any
        // connection, and its password is never shown.
        Row::new(CONFIG, &["DATABASE_URL has sslmode `allow`", "verify-full"])
            .set(
                "DATABASE_URL",
                "postgres://mai:hunter2@db:5432/mai?sslmode=allow",
            )
            .hides("hunter2"),
        // ---------- values that would forge a line of the .env, or a log line
        Row::new(
            CONFIG,
            &["ORGANIZATION_NAME", "U+000A", "printable characters only"],
        )
        .set("ORGANIZATION_NAME", forged("Acme"))
        .hides("evil.example"),
        Row::new(CONFIG, &["ORGANIZATION_NAME", "printable characters only"])
            .set("ORGANIZATION_NAME", forged("Acme\r")),
        Row::new(CONFIG, &["ORGANIZATION_NAME", "printable characters only"]).set(
            "ORGANIZATION_NAME",
            format!("Acme'\nOPENROUTER_HOST='{EVIL_HOST}"),
        ),
        Row::new(
            CONFIG,
            &["ORGANIZATION_NAME", "U+000D", "printable characters only"],
        )
        .set("ORGANIZATION_NAME", "Acme\rFAKE log line"),
        // ESC [ (7-bit CSI), the 8-bit CSI U+009B, and an OSC title sequence.
        Row::new(
            CONFIG,
            &[
                "ORGANIZATION_NAME",
                "U+001B",
                "escape sequences are not allowed",
            ],
        )
        .set("ORGANIZATION_NAME", "Acme \u{1b}[2J\u{1b}[31mCorp"),
        Row::new(
            CONFIG,
            &[
                "ORGANIZATION_NAME",
                "U+009B",
                "escape sequences are not allowed",
            ],
        )
        .set("ORGANIZATION_NAME", "Acme \u{9b}31mCorp"),
        Row::new(
            CONFIG,
            &[
                "ORGANIZATION_NAME",
                "U+001B",
                "escape sequences are not allowed",
            ],
        )
        .set("ORGANIZATION_NAME", "Acme \u{1b}]0;pwned\u{7}"),
        // python-dotenv expands `${…}` in every quoting: the key would leak.
        Row::new(CONFIG, &["ORGANIZATION_NAME", "${", "Change the value"])
            .set("ORGANIZATION_NAME", "Acme ${OPENROUTER_API_KEY}"),
        Row::new(CONFIG, &["ORGANIZATION_NAME", "${", "Change the value"])
            .set("ORGANIZATION_NAME", "Acme ${WEBUI_SECRET_KEY:-x}")
            .args(&[])
            .on_first_boot(),
        // A quote that would close the quoting, with `$` that sh would expand.
        Row::new(
            CONFIG,
            &["ORGANIZATION_NAME", "single quote", "Change the value"],
        )
        .set("ORGANIZATION_NAME", "Acme' $(touch pwned) '"),
        Row::new(
            CONFIG,
            &["ORGANIZATION_NAME", "single quote", "Change the value"],
        )
        .set("ORGANIZATION_NAME", "Acme' `touch pwned` '"),
        Row::new(
            CONFIG,
            &[
                "OPENROUTER_API_KEY_FILE",
                "other than A-Z, a-z, 0-9",
                "line break",
            ],
        )
        .unset("OPENROUTER_API_KEY")
        .with(
            "OPENROUTER_API_KEY_FILE",
            Value::File(format!("{}\n", forged(KEY)).into()),
        ),
        Row::new(
            CONFIG,
            &[
                "WEBUI_SECRET_KEY_FILE",
                "control character",
                "printable characters only",
            ],
        )
        .unset("WEBUI_SECRET_KEY")
        .with(
            "WEBUI_SECRET_KEY_FILE",
            Value::File(format!("{}\n", forged("abc")).into()),
        ),
        Row::new(
            CONFIG,
            &["OPENROUTER_HOST", "single quote", "Change the value"],
        )
        .set("OPENROUTER_HOST", "https://openrouter.ai/'$(id)'"),
        // -------------------- checked by the run against the file system
        Row::new(CONFIG, &["WEBUI_SECRET_KEY_STORE", "the database"])
            .with("WEBUI_SECRET_KEY_STORE", Value::InSandbox("data/webui.db")),
        // ------------------------- the management key (none reaches the network)
        Row::new(
            CONFIG,
            &[
                "OPENROUTER_MANAGEMENT_KEY is set with a PostgreSQL database",
                "Set OPENROUTER_KEY_STORE to a file on a volume every replica mounts",
            ],
        )
        .unset("OPENROUTER_API_KEY")
        .set("OPENROUTER_MANAGEMENT_KEY", MANAGEMENT_KEY)
        .set("DATABASE_URL", "postgresql://mai:pw@127.0.0.1:1/mai")
        .hides("pw@"),
        Row::new(
            CONFIG,
            &[
                "OPENROUTER_API_KEY is set together with OPENROUTER_MANAGEMENT_KEY",
                "Remove OPENROUTER_API_KEY: with OPENROUTER_MANAGEMENT_KEY the job mints",
            ],
        )
        .set("OPENROUTER_MANAGEMENT_KEY", MANAGEMENT_KEY)
        .hides(&MANAGEMENT_KEY[9..]),
        minting(Row::new(
            CONFIG,
            &[
                "OPENROUTER_MANAGEMENT_KEY and OPENROUTER_PROVISIONING_KEY are both set",
                "Set only one of them",
            ],
        ))
        .set("OPENROUTER_PROVISIONING_KEY", MANAGEMENT_KEY),
        minting(Row::new(
            CONFIG,
            &[
                "OPENROUTER_HOST is plain http:// to openrouter.example",
                "only ever sent over HTTPS",
            ],
        ))
        .set("OPENROUTER_HOST", "http://openrouter.example/api/v1"),
        minting(Row::new(
            CONFIG,
            &["SPENDING_LIMIT_RESET must be daily, weekly or monthly"],
        ))
        .set("SPENDING_LIMIT_RESET", "yearly"),
        Row::new(
            CONFIG,
            &["SPENDING_LIMIT_RESET is set, but only a key the job mints can honour it"],
        )
        .set("SPENDING_LIMIT_RESET", "monthly"),
        Row::new(
            CONFIG,
            &["ROTATE_KEY is set, but only a key the job mints can honour it"],
        )
        .set("ROTATE_KEY", "2026-11-30"),
        minting(Row::new(
            CONFIG,
            &["ROTATE_KEY must be a token", "rotated once per token"],
        ))
        .set("ROTATE_KEY", "next monday"),
        Row::new(
            CONFIG,
            &[
                "--rotate-key asks to rotate the OpenRouter key",
                "Set OPENROUTER_MANAGEMENT_KEY",
            ],
        )
        .args(&["--production", "--rotate-key"]),
        Row::new(
            CONFIG,
            &[
                "OPENROUTER_MANAGEMENT_KEY does not start with `sk-or-`",
                "https://openrouter.ai/settings/management-keys",
            ],
        )
        .unset("OPENROUTER_API_KEY")
        .set(
            "OPENROUTER_MANAGEMENT_KEY",
            "mgmt-LEAKPROBE0000aaaa1111bbbb2222",
        )
        .set("LOG_LEVEL", "trace")
        .hides("LEAKPROBE"),
        Row::new(
            NO_PERMISSION,
            &[
                "OPENROUTER_MANAGEMENT_KEY_FILE=",
                "permission denied",
                "Make the file readable by the job's uid",
            ],
        )
        .unset("OPENROUTER_API_KEY")
        .with(
            "OPENROUTER_MANAGEMENT_KEY_FILE",
            Value::Unreadable(MANAGEMENT_KEY.into()),
        ),
        minting(Row::new(
            CONFIG,
            &[
                "SSL_CERT_FILE names",
                "which holds no certificate",
                "it replaces the bundled web PKI roots",
            ],
        ))
        .with(
            "SSL_CERT_FILE",
            Value::File(b"not a certificate\n".to_vec()),
        ),
        minting(Row::new(CONFIG, &["HTTPS_PROXY is not a usable proxy URL"]))
            .set("HTTPS_PROXY", "ftp://user:hunter2pass@proxy.example")
            .hides("hunter2pass"),
        minting(Row::new(CONFIG, &["ENV_FILE", "the OpenRouter key store"]))
            .with("ENV_FILE", Value::InSandbox("data/.openrouter_key")),
        minting(Row::new(CONFIG, &["OPENROUTER_KEY_STORE", "the database"]))
            .with("OPENROUTER_KEY_STORE", Value::InSandbox("data/webui.db")),
        // --------------------------------------------------- the command line
        Row::new(USAGE, &["--init-db", "try '--help'"]).args(&["--init-db"]),
        Row::new(
            USAGE,
            &[
                "'--init-database' cannot be used with '--production'",
                "try '--help'",
            ],
        )
        .args(&["--init-database", "--production"]),
        Row::new(USAGE, &["'xml'", "possible values: text, json"]).args(&["--output", "xml"]),
    ];
    // Injections through each variable that reaches the .env, each with the
    // words of its refusal.
    let injections: [(&str, Vec<String>, &[&str]); 6] = [
        (
            "OPENROUTER_API_KEY",
            vec![
                forged(KEY),
                format!("{KEY} OPENROUTER_HOST={EVIL_HOST}"),
                format!("{KEY}'"),
                format!("{KEY}$(id)"),
            ],
            &["other than A-Z, a-z, 0-9", "Copy the key"],
        ),
        (
            "OPENROUTER_EXTERNAL_USER",
            vec![
                forged("mai_client_x"),
                "mai_client_x OPENROUTER_HOST=x".into(),
                "mai_client_x'".into(),
                "mai_client_${OPENROUTER_API_KEY}".into(),
            ],
            &["3 to 64 characters from A-Z", "unset it to derive one"],
        ),
        (
            "OPENROUTER_HOST",
            vec![
                "https://openrouter.ai/api/v1\nOPENROUTER_API_KEY=sk-or-v1-evil".into(),
                "https://openrouter.ai/api/v1 OPENROUTER_API_KEY=sk-or-v1-evil".into(),
                "https://openrouter.ai/${OPENROUTER_API_KEY}".into(),
                "https://openrouter.ai/\"x".into(),
            ],
            &["which a URL cannot hold", "Use an http(s) URL"],
        ),
        (
            "SPENDING_LIMIT",
            vec![
                forged("1000"),
                "1000 # OPENROUTER_HOST=x".into(),
                "1000'".into(),
            ],
            &["is not a number", "SPENDING_LIMIT=1000"],
        ),
        (
            "MODEL_IDS",
            vec![
                forged("openai/gpt-4o"),
                "openai/gpt-4o\"]}}' OPENROUTER_HOST='x".into(),
                "openai/gpt-4o,${OPENROUTER_API_KEY}".into(),
            ],
            &["invalid model id", "separated by commas"],
        ),
        (
            "WEBUI_SECRET_KEY",
            vec![forged("abc"), format!("abc\rOPENROUTER_HOST={EVIL_HOST}")],
            &["control character", "printable characters only"],
        ),
    ];
    for (var, values, words) in injections {
        for value in values {
            let mut all = vec![var];
            all.extend_from_slice(words);
            let row = Row::new(CONFIG, &all).set(var, value);
            // MODEL_IDS shows the invalid id, escaped: no line is forged.
            rows.push(if var == "MODEL_IDS" {
                row
            } else {
                row.hides("evil.example")
            });
        }
    }
    for value in ["abc${OPENROUTER_API_KEY}", "abc' $(id) '"] {
        rows.push(
            Row::new(CONFIG, &["WEBUI_SECRET_KEY", "Change the value"])
                .set("WEBUI_SECRET_KEY", value),
        );
    }
    // DATA_DIR is read in every mode: the env mode reads the stored key
    // from it, the database modes the database too.
    for args in [&["--production"][..], &["--init-database"], &[]] {
        rows.push(
            Row::new(
                CONFIG,
                &[
                    "DATA_DIR",
                    "is not a directory",
                    "Point DATA_DIR at the application's data volume",
                ],
            )
            .with("DATA_DIR", Value::InSandbox("data/webui.db"))
            .args(args),
        );
    }
    // A .env written over another file of the job would destroy it.
    for (target, what) in [
        ("data/.webui_secret_key", "the key store"),
        ("data/webui.db", "the database"),
        ("data/.mai-provision.lock", "a lock file"),
        ("data/../data/webui.db", "the database"),
    ] {
        rows.push(
            Row::new(CONFIG, &["ENV_FILE", what])
                .with("ENV_FILE", Value::InSandbox(target))
                .before(|sandbox| fs::write(sandbox.secret_store(), SECRET_KEY).unwrap()),
        );
    }
    for args in [
        &["--wait-for-database=-1"][..],
        &["--wait-for-database=86401"],
        &["--wait-for-database=NaN"],
        &["--wait-for-database=soon"],
    ] {
        rows.push(Row::new(USAGE, &["--wait-for-database", "try '--help'"]).args(args));
    }
    // Not UTF-8, variable by variable: LOG_FORMAT and LOG_LEVEL are also
    // read before the configuration, to set up logging.
    for var in VARIABLES {
        rows.push(
            Row::new(
                CONFIG,
                &[
                    &format!("{} is not valid UTF-8", var.name),
                    "Set it to UTF-8 text",
                ],
            )
            .with(var.name, Value::Bytes(b"Acme \xff\xfe Corp")),
        );
    }
    rows
}

/// Every row, each on its own deployment. A failing row does not hide the
/// others: each failure is printed as it happens, and the test fails
/// naming them all.
#[test]
fn every_refusal_in_the_table() {
    let rows = refusals();
    let failed: Vec<String> = rows
        .iter()
        .filter(|row| catch_unwind(AssertUnwindSafe(|| row.check())).is_err())
        .map(Row::case)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} refusals failed (see above):\n{}",
        failed.len(),
        rows.len(),
        failed.join("\n")
    );
}

/// NUL cannot be in an environment variable at all: execve takes C strings,
/// so the value never reaches the job (Rust refuses to spawn it). Where a
/// NUL can arrive, in a secret file, rows of the table refuse it.
#[test]
fn a_nul_in_the_name_cannot_reach_the_job() {
    let sandbox = deployment();
    let before = Untouched::record(&sandbox);
    let mut cmd = sandbox.command();
    cmd.arg("--production").env("ORGANIZATION_NAME", "Ac\0me");
    let err = cmd
        .output()
        .expect_err("a NUL in a variable cannot be passed");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    before.check(&sandbox, "NUL in the name");
}

/// A 1 MB value. Linux refuses any one environment string over
/// MAX_ARG_STRLEN (32 pages: 128 KiB with 4 KiB pages) before the job
/// starts; where it does, the largest value that can arrive is used.
#[test]
fn a_1_mb_variable_is_refused() {
    let sandbox = deployment();
    let before = Untouched::record(&sandbox);
    let mut value = "N".repeat(1024 * 1024);
    let mut cmd = sandbox.command();
    cmd.arg("--production").env("ORGANIZATION_NAME", &value);
    let run = match cmd.output() {
        Ok(out) => Run::from(out),
        Err(e) if e.raw_os_error() == Some(7) => {
            // E2BIG: the kernel refused the exec, nothing ran. The largest
            // string is 128 KiB including `NAME=` and the NUL.
            before.check(&sandbox, "1 MB refused by execve");
            println!("execve refused 1 MiB (E2BIG); using the largest value it takes");
            value.truncate(128 * 1024 - "ORGANIZATION_NAME=".len() - 1);
            let mut cmd = sandbox.command();
            cmd.arg("--production").env("ORGANIZATION_NAME", &value);
            Run::from(cmd.output().expect("the largest variable execve takes"))
        }
        Err(e) => panic!("cannot run the binary: {e}"),
    };
    run.expect(CONFIG).assert_mentions(&[
        &format!("ORGANIZATION_NAME is {} bytes long", value.len()),
        "more than the 65536 bytes allowed",
        "Check its value",
    ]);
    run.assert_absent("NNNN");
    before.check(&sandbox, "1 MB variable");
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
fn empty_values_mean_unset() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    for v in VARIABLES {
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
fn help_lists_every_variable_with_its_default_and_every_exit_code() {
    let sandbox = deployment();
    let mut cmd = sandbox.command();
    cmd.arg("--help");
    let run = refused_by(&sandbox, cmd, "--help", 0, &["Usage: mai-provision"]);
    let help = &run.stdout;
    for v in VARIABLES {
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
