//! What the operator sees: the plan (`--dry-run`, `--check`), the JSON
//! report (`--output json`), the last log line that sums up the run, and the
//! termination message. No value of a managed key is ever shown here,
//! secret or not. The run's exit code is decided here too, from its outcome.

mod json;
mod key;
mod message;
mod text;

pub use key::{KeyReport, PreviousReport};
pub use message::early_message;
pub(crate) use text::{plan_text, summary};

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::apply::Applied;
use crate::cli::{Options, OutputFormat};
use crate::config::Mode;
use crate::envfile::KeyChange;
use crate::error::Error;
use crate::exit::ExitCode;
use crate::identity::IdSource;
use crate::plan::{DatabasePlan, Plan, RowAction, SecretKeySource};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Changes were made.
    Applied,
    /// Everything already matched.
    Unchanged,
    /// `--dry-run`/`--check`: nothing was done.
    Planned,
}

impl Status {
    /// The word the JSON report and the termination message use.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Applied => "applied",
            Status::Unchanged => "unchanged",
            Status::Planned => "planned",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseAction {
    Insert,
    Update,
    Unchanged,
    Skipped,
    NotInMode,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvReport {
    pub path: String,
    pub changed: bool,
    pub keys: Vec<KeyChange>,
    /// The file did not exist before: it is (or would be) created.
    #[serde(skip)]
    pub created: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseReport {
    pub path: String,
    /// What happens to the organization row.
    pub action: DatabaseAction,
    pub create_schema: bool,
    /// The row's columns that change.
    pub columns: Vec<&'static str>,
    /// Columns the application's ORM reads that were (or would be) added.
    pub repaired_columns: Vec<&'static str>,
    /// The row's `is_active` after the run; `false` means the application
    /// records no usage. `None` when the run does not reach the row.
    pub active: Option<bool>,
}

/// The stable shape of `--output json` (documented in the README).
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub status: Status,
    pub id: String,
    pub id_source: IdSource,
    pub mode: Mode,
    pub env: EnvReport,
    pub database: DatabaseReport,
    pub secret_key: SecretKeySource,
    pub secret_key_stored: bool,
    /// The OpenRouter key the job minted and manages; `null` when the key
    /// is given (OPENROUTER_API_KEY).
    pub openrouter_key: Option<KeyReport>,
    pub verified: bool,
    pub warnings: Vec<String>,
    /// True when a run would change something (what `--check` reports).
    #[serde(skip)]
    pub drift: bool,
    /// The plan as text, for `--dry-run` and `--check`.
    #[serde(skip)]
    pub plan_text: Option<String>,
}

impl Outcome {
    /// The outcome of a run that only planned.
    pub(crate) fn planned(plan: &Plan, database_path: &Path, key: Option<KeyReport>) -> Self {
        let mut outcome = Self::build(
            plan,
            &plan.database,
            database_path,
            plan.env.new_text.is_some(),
            false,
            false,
            Status::Planned,
        );
        outcome.plan_text = Some(plan_text(plan, database_path, key.as_ref()));
        outcome.drift |= key.as_ref().is_some_and(|k| k.changes);
        outcome.openrouter_key = key;
        outcome
    }

    pub(crate) fn applied(
        plan: &Plan,
        applied: &Applied,
        database_path: &Path,
        verified: bool,
        key: Option<KeyReport>,
    ) -> Self {
        let changed = applied.env_written
            || applied.secret_key_stored
            || matches!(applied.database, DatabasePlan::Write { .. })
            || key.as_ref().is_some_and(|k| k.changes);
        let status = if changed {
            Status::Applied
        } else {
            Status::Unchanged
        };
        let mut outcome = Self::build(
            plan,
            &applied.database,
            database_path,
            applied.env_written,
            applied.secret_key_stored,
            verified,
            status,
        );
        outcome.openrouter_key = key;
        outcome
    }

    fn build(
        plan: &Plan,
        database: &DatabasePlan,
        database_path: &Path,
        env_changed: bool,
        secret_key_stored: bool,
        verified: bool,
        status: Status,
    ) -> Self {
        let (action, create_schema, columns, repaired_columns) = match database {
            DatabasePlan::NotInMode => (DatabaseAction::NotInMode, false, vec![], vec![]),
            DatabasePlan::Skip { .. } => (DatabaseAction::Skipped, false, vec![], vec![]),
            DatabasePlan::Unchanged { .. } => (DatabaseAction::Unchanged, false, vec![], vec![]),
            DatabasePlan::Write {
                create_schema,
                add_columns,
                row,
                ..
            } => {
                let (action, columns) = match row.as_deref() {
                    Some(change) => (
                        match change.action {
                            RowAction::Insert => DatabaseAction::Insert,
                            RowAction::Update => DatabaseAction::Update,
                        },
                        change.columns.clone(),
                    ),
                    None => (DatabaseAction::Unchanged, vec![]),
                };
                (action, *create_schema, columns, add_columns.clone())
            }
        };
        Self {
            status,
            id: plan.id.value.clone(),
            id_source: plan.id.source,
            mode: plan.mode,
            env: EnvReport {
                path: plan.env.path.display().to_string(),
                changed: env_changed,
                keys: plan.env.changes.clone(),
                created: env_changed && plan.env.old_text.is_none(),
            },
            database: DatabaseReport {
                path: database_path.display().to_string(),
                action,
                create_schema,
                columns,
                repaired_columns,
                active: database.expected().map(|expected| expected.is_active),
            },
            secret_key: plan.secret_key.source,
            secret_key_stored,
            openrouter_key: None,
            verified,
            warnings: plan.warnings.clone(),
            drift: !plan.is_empty(),
            plan_text: None,
        }
    }
}

/// The code for a whole run; `check` makes a pending change a failure.
pub fn exit_code(result: &Result<Outcome, Error>, check: bool) -> ExitCode {
    match result {
        Ok(outcome) if check && outcome.drift => ExitCode::Drift,
        Ok(_) => ExitCode::Ok,
        Err(error) => crate::exit::for_error(error),
    }
}

/// Log the last line, print the JSON report or the plan, and leave the
/// outcome in the termination log.
pub fn finish(
    result: &Result<Outcome, Error>,
    code: ExitCode,
    elapsed: Duration,
    options: &Options,
) {
    match result {
        Ok(outcome) => {
            if let (OutputFormat::Text, Some(text)) = (options.output, &outcome.plan_text) {
                crate::logging::print_stdout(text);
            }
            tracing::info!(exit_code = code.code(), "{}", summary(outcome, elapsed));
        }
        Err(error) => {
            tracing::error!(
                exit_code = code.code(),
                "failed after {} ms: {error}",
                elapsed.as_millis()
            );
        }
    }
    if options.output == OutputFormat::Json {
        crate::logging::print_stdout(&format!("{}\n", json::report(result, code, elapsed)));
    }
    crate::termination::write(
        &crate::termination::path(),
        &message::line(result, code, elapsed),
    );
}
