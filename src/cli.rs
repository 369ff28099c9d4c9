//! Command-line flags. The mode flags keep the old generator's names.

use std::io::Write as _;
use std::time::Duration;

use clap::{ArgGroup, CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::config::{MAX_WAIT_SECS, Mode, vars};
use crate::exit::{self, ExitCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Human-readable plan on stdout (with --dry-run or --check).
    #[default]
    Text,
    /// One JSON report on stdout.
    Json,
}

/// Provision a mAI deployment: write the .env the application loads and the
/// organization row in its SQLite database, linked by one organization id.
/// Safe to run again and again: a run that finds everything in place
/// changes nothing.
#[derive(Debug, Parser)]
#[command(
    name = "mai-provision",
    disable_version_flag = true,
    group = ArgGroup::new("mode").args(["init_database", "production"]).multiple(false),
)]
pub struct Cli {
    /// Write the .env and upsert the organization into the database.
    #[arg(long)]
    pub init_database: bool,

    /// Like --init-database, then read both back and verify every field.
    #[arg(long)]
    pub production: bool,

    /// Print what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Like --dry-run, and exit 1 when anything would change.
    #[arg(long)]
    pub check: bool,

    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,

    /// Wait up to SECONDS (default 300) for the application to create its
    /// schema before the database step (first boot).
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, require_equals = true, default_missing_value = DEFAULT_WAIT_TEXT)]
    pub wait_for_database: Option<f64>,

    /// Native sidecar: wait for the application's schema (as
    /// --wait-for-database does), provision, then stay idle until SIGTERM
    /// and exit 0.
    #[arg(long, conflicts_with_all = ["dry_run", "check"])]
    pub sidecar: bool,

    /// Replace the OpenRouter key the job minted with a new one, now (with
    /// a management key). For a setting that stays in a ConfigMap, use
    /// ROTATE_KEY, which rotates once per token.
    #[arg(long)]
    pub rotate_key: bool,

    /// Print the version and the SQLite version.
    #[arg(short = 'V', long)]
    pub version: bool,
}

/// The parsed flags, as the library takes them.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub mode: Option<Mode>,
    pub dry_run: bool,
    pub check: bool,
    pub output: OutputFormat,
    pub wait_for_database: Option<Duration>,
    /// Stay idle after provisioning until a termination signal.
    pub sidecar: bool,
    /// `--rotate-key`: replace the minted OpenRouter key on this run.
    pub rotate_key: bool,
}

/// clap wants the default as text; the test below keeps it equal to the
/// configuration's constant.
const DEFAULT_WAIT_TEXT: &str = "300";

impl Cli {
    /// Parse the process's arguments. `Err` carries the exit code after
    /// clap printed help (0) or a usage error (64).
    pub fn parse_args() -> Result<Self, ExitCode> {
        let command = Cli::command().after_help(after_help());
        let parsed = command
            .try_get_matches()
            .and_then(|matches| Cli::from_arg_matches(&matches));
        match parsed {
            Ok(cli) => cli.validated(),
            Err(e) => {
                let _ = e.print();
                Err(if e.use_stderr() {
                    ExitCode::Usage
                } else {
                    ExitCode::Ok
                })
            }
        }
    }

    fn validated(self) -> Result<Self, ExitCode> {
        if let Some(seconds) = self.wait_for_database
            && (!seconds.is_finite() || !(0.0..=MAX_WAIT_SECS).contains(&seconds))
        {
            // Not eprintln!: it panics when stderr is closed.
            let _ = writeln!(
                std::io::stderr(),
                "error: --wait-for-database takes 0 to {MAX_WAIT_SECS} seconds\n\nFor more information, try '--help'."
            );
            return Err(ExitCode::Usage);
        }
        Ok(self)
    }

    pub fn options(&self) -> Options {
        let mode = if self.production {
            Some(Mode::Production)
        } else if self.init_database {
            Some(Mode::Database)
        } else {
            None
        };
        Options {
            mode,
            dry_run: self.dry_run || self.check,
            check: self.check,
            output: self.output,
            wait_for_database: self.wait_for_database.map(Duration::from_secs_f64),
            sidecar: self.sidecar,
            rotate_key: self.rotate_key,
        }
    }
}

pub fn version_text() -> String {
    format!(
        "mai-provision {} (SQLite {})",
        env!("CARGO_PKG_VERSION"),
        rusqlite::version()
    )
}

fn after_help() -> String {
    let mut text = vars::help_table();
    text.push_str("\nModes: no flag writes the .env only (PROVISION_MODE=env); a flag wins over PROVISION_MODE.\n");
    text.push_str("\nExit codes:\n");
    for (code, meaning) in exit::TABLE {
        text.push_str(&format!("  {:>3}  {meaning}\n", code.code()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_WAIT_FOR_DATABASE;

    #[test]
    fn the_default_wait_is_the_configuration_s() {
        let seconds: u64 = DEFAULT_WAIT_TEXT.parse().unwrap();
        assert_eq!(Duration::from_secs(seconds), DEFAULT_WAIT_FOR_DATABASE);
    }
}
