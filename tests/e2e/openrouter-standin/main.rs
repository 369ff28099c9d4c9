//! The stand-in for OpenRouter's key-management API as a program, for the
//! end-to-end test: the same stand-in the integration tests use
//! (tests/integration/common/openrouter_standin.rs), serving plain HTTP on
//! a loopback port of the host, which the job's container reaches through
//! `network_mode: host`. It reports each fact on stdout, one
//! `openrouter-standin:` line per fact: that it listens, every request
//! (method and path), and every key created, with the fingerprint of its
//! secret as the job and the mAI stand-in print it (never the secret).
//!
//!   openrouter-standin PORT MANAGEMENT_KEY_FILE
//!
//! It runs until SIGTERM or SIGINT.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use mai_provision::secret::Secret;
use mai_provision::signals;

#[allow(dead_code)]
#[path = "../../integration/common/openrouter_standin.rs"]
mod standin;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(port), Some(key_file)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: openrouter-standin PORT MANAGEMENT_KEY_FILE");
        return ExitCode::from(64);
    };
    let key = match std::fs::read_to_string(key_file) {
        Ok(text) => text.trim_end().to_owned(),
        Err(e) => {
            eprintln!("openrouter-standin: FAILED: cannot read {key_file}: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = signals::install() {
        eprintln!("openrouter-standin: FAILED: signal handlers: {e}");
        return ExitCode::from(1);
    }
    let standin = standin::StandIn::start_on(&format!("127.0.0.1:{port}"), &key, None);
    say(&format!("listening on {}", standin.base_url()));
    let (mut requests, mut keys) = (0, 0);
    while signals::received().is_none() {
        let log = standin.requests();
        for request in &log[requests..] {
            say(&format!("request {request}"));
        }
        requests = log.len();
        let all = standin.all_keys();
        for key in &all[keys..] {
            say(&format!(
                "created key {} fingerprint={} name={:?}",
                key.hash,
                Secret::new(key.secret.as_str()).fingerprint(),
                key.name
            ));
        }
        keys = all.len();
        std::thread::sleep(Duration::from_millis(20));
    }
    say("stopped");
    ExitCode::SUCCESS
}

fn say(fact: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "openrouter-standin: {fact}");
    let _ = out.flush();
}
