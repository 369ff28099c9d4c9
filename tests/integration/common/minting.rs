//! Helpers for the suites of the minted key (a management key): a sandbox
//! run against the OpenRouter stand-in, the key store, and the checks that
//! one key lives and that the store, the row and the `.env` hold it.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use super::openrouter_standin::{Key, StandIn};
use super::{ACME_ID, Run, Sandbox};
use mai_provision::envfile::Document;

/// A recognisable fake management key: it must never appear in any output.
pub const MANAGEMENT_KEY: &str = "sk-or-v1-MGMTFAKE0000aaaa1111bbbb2222cccc3333dddd4444eeee5555";
/// The key name the job gives the organization `Acme`.
pub const ACME_KEY_NAME: &str = "mAI Client: Acme (mai_client_79d89452)";

/// What the key store holds, as far as the tests look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub hash: String,
    pub secret: String,
    pub previous: Option<String>,
}

impl Sandbox {
    /// The job, minting through `standin`: the given key is replaced by a
    /// management key; the termination message goes to `termination-log`.
    pub fn minting_command(&self, standin: &StandIn) -> Command {
        let mut cmd = self.command();
        let termination = self.termination_log();
        cmd.env_remove("OPENROUTER_API_KEY")
            .env("OPENROUTER_MANAGEMENT_KEY", MANAGEMENT_KEY)
            .env("OPENROUTER_HOST", standin.base_url())
            .env("OPENROUTER_TIMEOUT", "10")
            .env("MAI_PROVISION_TERMINATION_LOG", termination);
        cmd
    }

    pub fn mint(&self, standin: &StandIn, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let mut cmd = self.minting_command(standin);
        cmd.args(args);
        for (name, value) in vars {
            cmd.env(name, value);
        }
        Run::from(cmd.output().expect("run binary"))
    }

    pub fn key_store(&self) -> PathBuf {
        self.data_dir().join(".openrouter_key")
    }

    /// The key store's current key, if any.
    pub fn stored(&self) -> Option<Stored> {
        let text = fs::read_to_string(self.key_store()).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).expect("key store JSON");
        let current = json.get("current").filter(|c| !c.is_null())?;
        Some(Stored {
            hash: current["hash"].as_str().expect("hash").to_owned(),
            secret: current["key"].as_str().expect("key").to_owned(),
            previous: json["previous"]["hash"].as_str().map(str::to_owned),
        })
    }

    /// A managed value of the `.env`, as python-dotenv's port reads it.
    pub fn env_value(&self, key: &str) -> Option<String> {
        let text = fs::read_to_string(self.env_path()).ok()?;
        Document::parse(&text).value(key).map(str::to_owned)
    }

    /// The organization row's key and key hash.
    pub fn row_key(&self) -> Option<(String, Option<String>)> {
        self.rows_if_any()?;
        self.db()
            .query_row(
                "SELECT openrouter_api_key, openrouter_key_hash FROM client_organizations WHERE id = ?1",
                [ACME_ID],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok()
    }

    /// What the application's start-up initializer does on every start
    /// (docs/mai-contract.md, "The start-up initializer"): it writes the
    /// key from its environment, and `updated_at`, into the row.
    pub fn application_starts_with(&self, key: &str, updated_at: i64) {
        let changed = self
            .db()
            .execute(
                "UPDATE client_organizations SET openrouter_api_key = ?1, updated_at = ?2 WHERE id = ?3",
                rusqlite::params![key, updated_at, ACME_ID],
            )
            .expect("the application's update");
        assert_eq!(changed, 1, "no row to update");
    }
}

/// Exactly one live key with the organization's name exists, and the store,
/// the `.env` (both key variables) and, where there is one, the row hold
/// its secret and hash.
#[track_caller]
pub fn assert_one_key_everywhere(sandbox: &Sandbox, standin: &StandIn) -> Key {
    let live: Vec<Key> = standin
        .live_keys()
        .into_iter()
        .filter(|k| k.name == ACME_KEY_NAME)
        .collect();
    assert_eq!(live.len(), 1, "live keys: {live:#?}");
    let key = live[0].clone();
    let stored = sandbox.stored().expect("a key in the store");
    assert_eq!(
        (stored.hash.as_str(), stored.secret.as_str()),
        (key.hash.as_str(), key.secret.as_str()),
        "the store"
    );
    for var in ["OPENROUTER_API_KEY", "OPENAI_API_KEY"] {
        assert_eq!(
            sandbox.env_value(var).as_deref(),
            Some(key.secret.as_str()),
            "{var} in the .env"
        );
    }
    if let Some((row_key, row_hash)) = sandbox.row_key() {
        assert_eq!(row_key, key.secret, "the row's key");
        assert_eq!(
            row_hash.as_deref(),
            Some(key.hash.as_str()),
            "the row's key hash"
        );
    }
    key
}

/// Neither the management key nor any secret the stand-in ever handed out
/// appears in the run's output, nor in the termination message; plus the
/// checks every run gets (`Run::assert_no_secret`).
#[track_caller]
pub fn assert_hides_keys(run: &Run, sandbox: &Sandbox, standin: &StandIn) {
    run.assert_no_secret();
    let termination = sandbox.termination_message();
    let mut secrets = vec![MANAGEMENT_KEY.to_owned(), MANAGEMENT_KEY[9..].to_owned()];
    for key in standin.all_keys() {
        secrets.push(key.secret[9..].to_owned());
        // A long slice of it too: a prefix of a secret is still a leak.
        secrets.push(key.secret[9..40].to_owned());
    }
    for secret in &secrets {
        for (what, text) in [
            ("stdout", &run.stdout),
            ("stderr", &run.stderr),
            ("termination message", &termination),
        ] {
            assert!(
                !text.contains(secret.as_str()),
                "a secret reached the {what}:\n{text}"
            );
        }
    }
}

/// The clock in epoch seconds, as the job and the application's
/// `updated_at` count it.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}
