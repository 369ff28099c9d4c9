//! What the operator sees: the plan (`--dry-run`, `--check`), the JSON
//! report (`--output json`), and the last log line that sums up the run.
//! No value of a managed key is ever shown here, secret or not.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::apply::Applied;
use crate::cli::{Options, OutputFormat};
use crate::config::Mode;
use crate::envfile::backup_path;
use crate::envfile::{KeyChange, KeyStatus};
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
    pub fn planned(plan: &Plan, database_path: &Path) -> Self {
        let mut outcome = Self::build(
            plan,
            &plan.database,
            database_path,
            plan.env.new_text.is_some(),
            false,
            false,
            Status::Planned,
        );
        outcome.plan_text = Some(plan_text(plan, database_path));
        outcome
    }

    pub fn applied(plan: &Plan, applied: &Applied, database_path: &Path, verified: bool) -> Self {
        let changed = applied.env_written
            || applied.secret_key_stored
            || matches!(applied.database, DatabasePlan::Write { .. });
        let status = if changed {
            Status::Applied
        } else {
            Status::Unchanged
        };
        Self::build(
            plan,
            &applied.database,
            database_path,
            applied.env_written,
            applied.secret_key_stored,
            verified,
            status,
        )
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
            verified,
            warnings: plan.warnings.clone(),
            drift: !plan.is_empty(),
            plan_text: None,
        }
    }
}

/// The plan as `--dry-run` prints it.
pub fn plan_text(plan: &Plan, database_path: &Path) -> String {
    let mut out = format!(
        "Plan for organization {} ({}), mode {}:\n",
        plan.id.value,
        match plan.id.source {
            IdSource::Explicit => "from OPENROUTER_EXTERNAL_USER",
            IdSource::Derived => "derived from ORGANIZATION_NAME",
        },
        plan.mode.as_str()
    );
    out.push_str(&env_text(plan));
    out.push_str(&secret_text(plan));
    out.push_str(&database_text(&plan.database, database_path));
    for warning in &plan.warnings {
        out.push_str(&format!("  warning: {warning}\n"));
    }
    out.push_str(if plan.is_empty() {
        "Nothing to change.\n"
    } else {
        "Run without --dry-run/--check to apply.\n"
    });
    out
}

fn env_text(plan: &Plan) -> String {
    let path = plan.env.path.display();
    let mut out = match (&plan.env.new_text, &plan.env.old_text) {
        (None, _) => format!("  .env {path}: unchanged\n"),
        (Some(_), None) => format!("  .env {path}: create\n"),
        (Some(_), Some(_)) => format!(
            "  .env {path}: rewrite (previous file kept as {})\n",
            backup_path(&plan.env.path).display()
        ),
    };
    for change in &plan.env.changes {
        let secret = if change.secret {
            " (secret, value hidden)"
        } else {
            ""
        };
        out.push_str(&format!(
            "    {:<9} {}{secret}\n",
            status_word(change.status),
            change.key
        ));
    }
    out
}

fn status_word(status: KeyStatus) -> &'static str {
    match status {
        KeyStatus::Added => "add",
        KeyStatus::Changed => "change",
        KeyStatus::Unchanged => "unchanged",
        KeyStatus::Removed => "remove",
    }
}

fn secret_text(plan: &Plan) -> String {
    let source = match plan.secret_key.source {
        SecretKeySource::Configured => "from WEBUI_SECRET_KEY",
        SecretKeySource::EnvFile => "kept from the .env",
        SecretKeySource::Stored => "from the stored key file",
        SecretKeySource::Generated => "generated",
    };
    match &plan.secret_key.store_at {
        Some(path) => format!(
            "  WEBUI_SECRET_KEY: {source}, stored in {}\n",
            path.display()
        ),
        None => format!("  WEBUI_SECRET_KEY: {source}\n"),
    }
}

fn database_text(database: &DatabasePlan, path: &Path) -> String {
    let path = path.display();
    match database {
        DatabasePlan::NotInMode => "  database: not touched in env mode\n".to_owned(),
        DatabasePlan::Skip { .. } => {
            format!("  database {path}: skipped (first boot, see warning)\n")
        }
        DatabasePlan::Unchanged { .. } => {
            format!("  database {path}: organization row unchanged\n")
        }
        DatabasePlan::Write {
            create_schema,
            add_columns,
            row,
            ..
        } => {
            let mut steps = Vec::new();
            if *create_schema {
                steps.push("create the usage schema".to_owned());
            }
            if !add_columns.is_empty() {
                steps.push(format!(
                    "add the column {} that the application's ORM reads",
                    add_columns.join(", ")
                ));
            }
            if let Some(change) = row {
                let verb = match change.action {
                    RowAction::Insert => "insert",
                    RowAction::Update => "update",
                };
                steps.push(format!(
                    "{verb} the organization row ({})",
                    change.columns.join(", ")
                ));
            }
            format!("  database {path}: {}\n", steps.join(", then "))
        }
    }
}

/// One line for the log: what changed, in how many milliseconds.
pub fn summary(outcome: &Outcome, elapsed: Duration) -> String {
    let ms = elapsed.as_millis();
    let env = if outcome.env.changed {
        let changed = outcome
            .env
            .keys
            .iter()
            .filter(|k| k.status != KeyStatus::Unchanged)
            .count();
        format!(".env written ({changed} keys changed)")
    } else {
        ".env unchanged".to_owned()
    };
    let database = match outcome.database.action {
        DatabaseAction::Insert => format!(
            "row inserted{}",
            if outcome.database.create_schema {
                " into a new schema"
            } else {
                ""
            }
        ),
        DatabaseAction::Update => format!("row updated ({})", outcome.database.columns.join(", ")),
        DatabaseAction::Unchanged => "row unchanged".to_owned(),
        DatabaseAction::Skipped => "database step skipped (first boot)".to_owned(),
        DatabaseAction::NotInMode => "database not touched".to_owned(),
    };
    let repaired = match outcome.database.repaired_columns.as_slice() {
        [] => String::new(),
        columns => format!("column {} added, ", columns.join(", ")),
    };
    let inactive = if outcome.database.active == Some(false) {
        " (inactive: no usage is recorded)"
    } else {
        ""
    };
    let verb = match outcome.status {
        Status::Applied => "provisioned",
        Status::Unchanged => "nothing to do for",
        Status::Planned => "planned for",
    };
    let verified = if outcome.verified { ", verified" } else { "" };
    format!(
        "{verb} {}: {env}, {repaired}{database}{inactive}{verified} in {ms} ms",
        outcome.id
    )
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
        crate::logging::print_stdout(&format!("{}\n", json_report(result, code, elapsed)));
    }
    crate::termination::write(
        &crate::termination::path(),
        &crate::termination::message(result, code, elapsed),
    );
}

fn json_report(result: &Result<Outcome, Error>, code: ExitCode, elapsed: Duration) -> String {
    let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let value = match result {
        Ok(outcome) => {
            let mut value = serde_json::to_value(outcome).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.insert("exit_code".into(), code.code().into());
                map.insert("duration_ms".into(), duration_ms.into());
            }
            value
        }
        Err(error) => {
            let mut value = serde_json::json!({
                "status": "error",
                "exit_code": code.code(),
                "error": error.to_string(),
                "duration_ms": duration_ms,
            });
            if let (Error::PartlyApplied { done, not_done, .. }, Some(map)) =
                (error, value.as_object_mut())
            {
                map.insert(
                    "partly_applied".into(),
                    serde_json::json!({ "done": done, "not_done": not_done }),
                );
            }
            value
        }
    };
    value.to_string()
}
