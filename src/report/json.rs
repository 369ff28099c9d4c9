//! `--output json`: one object on stdout, in the shape the README documents.

use std::time::Duration;

use super::Outcome;
use crate::error::Error;
use crate::exit::ExitCode;

pub(super) fn report(result: &Result<Outcome, Error>, code: ExitCode, elapsed: Duration) -> String {
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
