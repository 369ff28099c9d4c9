//! The binary: flags, logging, signals, then the library; the error becomes
//! an exit code in `exit`, the one place that maps them. Every run that
//! ends, however it ends, leaves its outcome in the termination log (when
//! there is one; see `termination`).

use std::time::Instant;

use mai_provision::cli::Cli;
use mai_provision::{exit, logging, report, signals, termination};

fn main() -> std::process::ExitCode {
    let started = Instant::now();
    let cli = match Cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => {
            if code != exit::ExitCode::Ok {
                let message = report::early_message(
                    code,
                    "usage error: unknown flag, or two modes at once (see the log)",
                );
                termination::write(&termination::path(), &message);
            }
            return code.code().into();
        }
    };
    if cli.version {
        logging::print_stdout(&format!("{}\n", mai_provision::cli::version_text()));
        return exit::ExitCode::Ok.code().into();
    }
    logging::init(logging::Settings::from_env_or_default());
    install_panic_hook();
    if let Err(e) = signals::install() {
        tracing::error!("cannot install signal handlers: {e}");
        let message = report::early_message(
            exit::ExitCode::Internal,
            "internal error: cannot install signal handlers",
        );
        termination::write(&termination::path(), &message);
        return exit::ExitCode::Internal.code().into();
    }
    let options = cli.options();
    let result = mai_provision::run(&options);
    let code = report::exit_code(&result, options.check);
    report::finish(&result, code, started.elapsed(), &options);
    if options.sidecar && code == exit::ExitCode::Ok {
        return idle_until_stopped();
    }
    code.code().into()
}

/// A native sidecar's work is done once it provisioned, but the kubelet
/// restarts a sidecar that exits, whatever its code: stay until the pod
/// stops, and then stopping is the expected end, so it exits 0.
fn idle_until_stopped() -> std::process::ExitCode {
    tracing::info!("sidecar: provisioned; idle until the pod stops (SIGTERM)");
    let signal = signals::wait();
    tracing::info!("sidecar: stopped by {}", signals::signal_name(signal));
    exit::ExitCode::Ok.code().into()
}

/// A panic is a bug: report where, never the payload (it could hold a
/// formatted value), and exit with the internal-error code.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let place = info.location().map_or_else(
            || "unknown place".to_owned(),
            |l| format!("{}:{}", l.file(), l.line()),
        );
        tracing::error!("internal error (panic at {place}); this is a bug, please report it");
        termination::write(
            &termination::path(),
            &report::early_message(
                exit::ExitCode::Internal,
                &format!("internal error (panic at {place})"),
            ),
        );
        std::process::exit(i32::from(exit::ExitCode::Internal.code()));
    }));
}
