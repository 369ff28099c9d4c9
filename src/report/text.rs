//! The plan as text, and the one-line summary of a run.

use std::path::Path;
use std::time::Duration;

use super::{DatabaseAction, KeyReport, Outcome, Status};
use crate::envfile::{KeyStatus, backup_path};
use crate::identity::IdSource;
use crate::plan::{DatabasePlan, Plan, RowAction, SecretKeySource};

/// The plan as `--dry-run` prints it.
pub fn plan_text(plan: &Plan, database_path: &Path, key: Option<&KeyReport>) -> String {
    let mut out = format!(
        "Plan for organization {} ({}), mode {}:\n",
        plan.id.value,
        match plan.id.source {
            IdSource::Explicit => "from OPENROUTER_EXTERNAL_USER",
            IdSource::Derived => "derived from ORGANIZATION_NAME",
        },
        plan.mode.as_str()
    );
    if let Some(key) = key {
        out.push_str(&key.plan_lines());
    }
    out.push_str(&env_text(plan));
    out.push_str(&secret_text(plan));
    out.push_str(&database_text(&plan.database, database_path));
    for warning in &plan.warnings {
        out.push_str(&format!("  warning: {warning}\n"));
    }
    let key_changes = key.is_some_and(|k| k.changes);
    out.push_str(if plan.is_empty() && !key_changes {
        "Nothing to change.\n"
    } else {
        "Run without --dry-run/--check to apply.\n"
    });
    out
}

fn env_text(plan: &Plan) -> String {
    let path = plan.env.path.display();
    let mut out = match (&plan.env.new_text, &plan.env.old_text) {
        (None, _) => format!("  .env at {path}: unchanged\n"),
        (Some(_), None) => format!("  .env at {path}: create\n"),
        (Some(_), Some(_)) => format!(
            "  .env at {path}: rewrite (previous file kept as {})\n",
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
    // A plan speaks of what would happen; a run of what happened.
    let planned = outcome.status == Status::Planned;
    let done = |past: &str| {
        if planned {
            format!("would be {past}")
        } else {
            past.to_owned()
        }
    };
    let env = env_summary(outcome, &done);
    let repaired = match outcome.database.repaired_columns.as_slice() {
        [] => String::new(),
        [column] => format!("column {column} {}, ", done("added")),
        columns => format!("columns {} {}, ", columns.join(", "), done("added")),
    };
    let database = match outcome.database.action {
        DatabaseAction::Insert if outcome.database.create_schema => {
            format!("row {} into a new schema", done("inserted"))
        }
        DatabaseAction::Insert => format!("row {}", done("inserted")),
        DatabaseAction::Update => format!(
            "row {} ({})",
            done("updated"),
            outcome.database.columns.join(", ")
        ),
        DatabaseAction::Unchanged => "row unchanged".to_owned(),
        DatabaseAction::Skipped => format!("database step {} (first boot)", done("skipped")),
        DatabaseAction::NotInMode => "database not touched".to_owned(),
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
    let key = outcome
        .openrouter_key
        .as_ref()
        .map_or_else(String::new, |key| format!("{}, ", key.summary(&done)));
    format!(
        "{verb} {}: {key}{env}, {repaired}{database}{inactive}{verified} in {} ms",
        outcome.id,
        elapsed.as_millis()
    )
}

fn env_summary(outcome: &Outcome, done: &dyn Fn(&str) -> String) -> String {
    let env = &outcome.env;
    if !env.changed {
        return ".env unchanged".to_owned();
    }
    let count = |n: usize| {
        if n == 1 {
            "1 key".to_owned()
        } else {
            format!("{n} keys")
        }
    };
    if env.created {
        return format!(".env {} ({})", done("created"), count(env.keys.len()));
    }
    let changed = env
        .keys
        .iter()
        .filter(|k| k.status != KeyStatus::Unchanged)
        .count();
    if changed == 0 {
        // Only the file's mode, or a form some reader misreads, changes.
        return format!(".env {} (no value changed)", done("rewritten"));
    }
    format!(".env {} ({} changed)", done("written"), count(changed))
}
