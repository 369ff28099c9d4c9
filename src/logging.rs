//! Logs go to stderr, as text or one JSON object per line, so that stdout
//! stays free for the plan and the JSON report.

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;

/// A LOG_FORMAT or LOG_LEVEL that is not one of the known words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var} {problem}. {fix}")]
pub struct SettingsError {
    pub var: &'static str,
    pub problem: &'static str,
    pub fix: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub format: Format,
    pub level: LevelFilter,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            format: Format::Text,
            level: LevelFilter::INFO,
        }
    }
}

impl Settings {
    pub(crate) fn parse(format: Option<&str>, level: Option<&str>) -> Result<Self, SettingsError> {
        let format = match format.map(|f| f.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "text") => Format::Text,
            Some("json") => Format::Json,
            Some(_) => {
                return Err(SettingsError {
                    var: "LOG_FORMAT",
                    problem: "must be text or json",
                    fix: "e.g. LOG_FORMAT=json for log collectors",
                });
            }
        };
        let level = match level.map(|l| l.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") => LevelFilter::INFO,
            Some(name @ ("off" | "error" | "warn" | "info" | "debug" | "trace")) => {
                name.parse().unwrap_or(LevelFilter::INFO)
            }
            Some(_) => {
                return Err(SettingsError {
                    var: "LOG_LEVEL",
                    problem: "must be error, warn, info, debug, trace or off",
                    fix: "e.g. LOG_LEVEL=debug",
                });
            }
        };
        Ok(Self { format, level })
    }

    /// The settings to log with before the configuration is validated: an
    /// invalid value falls back to the default here and is reported as a
    /// configuration error right after.
    pub fn from_env_or_default() -> Self {
        let var = |name| std::env::var(name).ok();
        Self::parse(var("LOG_FORMAT").as_deref(), var("LOG_LEVEL").as_deref()).unwrap_or_default()
    }
}

pub fn init(settings: Settings) {
    let builder = tracing_subscriber::fmt()
        .with_writer(|| LossyStderr)
        .with_max_level(settings.level)
        .with_target(false)
        // Its own report of a failed write goes to stderr with `eprintln!`,
        // which panics when stderr is gone.
        .log_internal_errors(false);
    let installed = match settings.format {
        Format::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    // Only fails if a subscriber is already set, which then keeps logging.
    let _ = installed;
}

/// stderr that never fails: a log line that cannot be written (a closed
/// pipe, a full disk behind `2>file`) is dropped. The run's outcome is its
/// exit code, which a lost log line must not change, and there is nowhere
/// left to report the loss.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Print `text` on stdout. A stdout that cannot take it (a closed pipe,
/// `/dev/full`) is logged, never a panic: the run already did its work,
/// and its exit code must stay the one it earned.
pub fn print_stdout(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        tracing::warn!(
            "cannot write the output to stdout ({e}); the exit code still says how the run ended"
        );
    }
}
