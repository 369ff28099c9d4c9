//! The table of variables: one source for `--help`, the README check and the
//! filter that keeps unrelated variables out of the configuration.

pub struct Variable {
    pub name: &'static str,
    pub default: &'static str,
    pub example: &'static str,
    pub about: &'static str,
}

pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "ORGANIZATION_NAME",
        default: "(required)",
        example: "ABC Company Sp. z o.o.",
        about: "client organization's name; trimmed, 3 to 100 characters",
    },
    Variable {
        name: "OPENROUTER_API_KEY",
        default: "(required, or _FILE, or a management key)",
        example: "sk-or-v1-…",
        about: "the organization's OpenRouter key",
    },
    Variable {
        name: "OPENROUTER_API_KEY_FILE",
        default: "(unset)",
        example: "/run/secrets/openrouter_api_key",
        about: "file holding the key instead (one trailing newline is dropped)",
    },
    Variable {
        name: "OPENROUTER_MANAGEMENT_KEY",
        default: "(unset)",
        example: "sk-or-v1-…",
        about: "an OpenRouter management key: the job mints the organization's key and manages it; never with OPENROUTER_API_KEY",
    },
    Variable {
        name: "OPENROUTER_MANAGEMENT_KEY_FILE",
        default: "(unset)",
        example: "/run/secrets/openrouter_management_key",
        about: "file holding the management key instead",
    },
    Variable {
        name: "OPENROUTER_PROVISIONING_KEY",
        default: "(unset)",
        example: "sk-or-v1-…",
        about: "alias of OPENROUTER_MANAGEMENT_KEY (OpenRouter's former name)",
    },
    Variable {
        name: "OPENROUTER_PROVISIONING_KEY_FILE",
        default: "(unset)",
        example: "/run/secrets/openrouter_provisioning_key",
        about: "alias of OPENROUTER_MANAGEMENT_KEY_FILE",
    },
    Variable {
        name: "OPENROUTER_EXTERNAL_USER",
        default: "derived from the name",
        example: "mai_client_63a4eb6d",
        about: "explicit organization id; always wins, confirms a rename",
    },
    Variable {
        name: "OPENROUTER_HOST",
        default: "https://openrouter.ai/api/v1",
        example: "https://openrouter.ai/api/v1",
        about: "OpenRouter API base URL (http or https; https only with a management key, but for loopback)",
    },
    Variable {
        name: "MARKUP_RATE",
        default: "1.3 (new rows only)",
        example: "1.5",
        about: "cost multiplier; when unset an existing row keeps its rate",
    },
    Variable {
        name: "SPENDING_LIMIT",
        default: "unlimited",
        example: "1000",
        about: "`unlimited` or a positive number, written as 1000.0; a minted key's limit in USD",
    },
    Variable {
        name: "SPENDING_LIMIT_RESET",
        default: "(unset: never resets)",
        example: "monthly",
        about: "daily, weekly or monthly: when a minted key's limit starts over (management key only)",
    },
    Variable {
        name: "ROTATE_KEY",
        default: "(unset)",
        example: "2026-11-30",
        about: "replace the minted key once per distinct token; false, 0, no, off mean no rotation (management key only)",
    },
    Variable {
        name: "KEY_ROTATION_GRACE",
        default: "3600",
        example: "600",
        about: "seconds a replaced key stays live at least, after the application started with the new one",
    },
    Variable {
        name: "OPENROUTER_TIMEOUT",
        default: "30",
        example: "60",
        about: "seconds for all calls to OpenRouter in one run, retries included",
    },
    Variable {
        name: "OPENROUTER_KEY_STORE",
        default: "$DATA_DIR/.openrouter_key",
        example: "/app/backend/data/.openrouter_key",
        about: "where the job keeps the minted key's secret and hash (mode 0600, JSON)",
    },
    Variable {
        name: "SSL_CERT_FILE",
        default: "(unset: bundled web PKI roots)",
        example: "/run/secrets/corporate-ca.pem",
        about: "PEM file of the CAs to trust for OpenRouter instead of the bundled roots",
    },
    Variable {
        name: "HTTPS_PROXY",
        default: "(unset)",
        example: "http://proxy.example:3128",
        about: "proxy for the calls to OpenRouter (never for loopback)",
    },
    Variable {
        name: "NO_PROXY",
        default: "(unset)",
        example: "internal.example,.corp",
        about: "hosts reached without the proxy; example.com covers its subdomains, * covers all",
    },
    Variable {
        name: "MODEL_IDS",
        default: "(unset: every model)",
        example: "openai/gpt-4o,anthropic/claude-3.5-sonnet",
        about: "comma-separated allow-list, written to OPENAI_API_CONFIGS",
    },
    Variable {
        name: "WEBUI_SECRET_KEY",
        default: "kept or generated",
        example: "(a long random string)",
        about: "session signing key; else the .env's, else the key store, else new",
    },
    Variable {
        name: "WEBUI_SECRET_KEY_FILE",
        default: "(unset)",
        example: "/run/secrets/webui_secret_key",
        about: "file holding WEBUI_SECRET_KEY instead",
    },
    Variable {
        name: "WEBUI_SECRET_KEY_STORE",
        default: "$DATA_DIR/.webui_secret_key",
        example: "/run/mai/.webui_secret_key",
        about: "where the job keeps WEBUI_SECRET_KEY; mount it read-only at /app/backend/.webui_secret_key",
    },
    Variable {
        name: "DATA_DIR",
        default: "/app/backend/data",
        example: "./data",
        about: "the application's data volume; the database is $DATA_DIR/webui.db",
    },
    Variable {
        name: "DATABASE_URL",
        default: "sqlite:///$DATA_DIR/webui.db",
        example: "postgresql://mai:…@db:5432/mai?sslmode=verify-full",
        about: "the database: sqlite:///path, or postgresql://user:password@host:port/name?sslmode=…",
    },
    Variable {
        name: "DATABASE_URL_FILE",
        default: "(unset)",
        example: "/run/secrets/database_url",
        about: "file holding DATABASE_URL instead (it may hold a password)",
    },
    Variable {
        name: "DATABASE_TYPE",
        default: "(unset)",
        example: "postgresql",
        about: "with all other DATABASE_* parts: the URL's scheme; the built URL wins over DATABASE_URL",
    },
    Variable {
        name: "DATABASE_USER",
        default: "(unset)",
        example: "mai",
        about: "part of the built URL: the user",
    },
    Variable {
        name: "DATABASE_PASSWORD",
        default: "(unset)",
        example: "(the password, percent-encoded)",
        about: "part of the built URL: the password, inserted as given",
    },
    Variable {
        name: "DATABASE_PASSWORD_FILE",
        default: "(unset)",
        example: "/run/secrets/database_password",
        about: "file holding DATABASE_PASSWORD instead",
    },
    Variable {
        name: "DATABASE_HOST",
        default: "(unset)",
        example: "postgres",
        about: "part of the built URL: the server's host",
    },
    Variable {
        name: "DATABASE_PORT",
        default: "(unset)",
        example: "5432",
        about: "part of the built URL: the server's port",
    },
    Variable {
        name: "DATABASE_NAME",
        default: "(unset)",
        example: "mai",
        about: "part of the built URL: the database",
    },
    Variable {
        name: "ENV_FILE",
        default: ".env",
        example: "/shared/.env",
        about: "the .env the application loads as /app/.env",
    },
    Variable {
        name: "ENV_FILE_MODE",
        default: "0600",
        example: "0640",
        about: "octal mode of the .env, its backup and temp files",
    },
    Variable {
        name: "LOCK_TIMEOUT",
        default: "60",
        example: "30",
        about: "seconds to wait in all: locks, a busy database, connecting to PostgreSQL",
    },
    Variable {
        name: "ORGANIZATION_ACTIVE",
        default: "(unset: keep the row's state)",
        example: "true",
        about: "true activates the row, false deactivates it; unset keeps it (new rows: active)",
    },
    Variable {
        name: "CREATE_SCHEMA",
        default: "false",
        example: "true",
        about: "create the usage tables in a missing or empty database (standalone only)",
    },
    Variable {
        name: "REQUIRE_DATABASE",
        default: "false",
        example: "true",
        about: "fail (exit 66) instead of skipping when the database is missing",
    },
    Variable {
        name: "PROVISION_MODE",
        default: "env",
        example: "production",
        about: "env, database or production; a flag wins",
    },
    Variable {
        name: "WAIT_FOR_DATABASE",
        default: "(unset: do not wait)",
        example: "300",
        about: "seconds to wait for the application to create its schema",
    },
    Variable {
        name: "LOG_FORMAT",
        default: "text",
        example: "json",
        about: "text, or one JSON object per line",
    },
    Variable {
        name: "LOG_LEVEL",
        default: "info",
        example: "debug",
        about: "error, warn, info, debug, trace or off",
    },
    Variable {
        name: "MAI_PROVISION_TERMINATION_LOG",
        default: "/dev/termination-log",
        example: "/tmp/termination-log",
        about: "file for the one-line outcome, written only when it exists (Kubernetes)",
    },
];

pub(crate) fn is_known(name: &str) -> bool {
    VARIABLES.iter().any(|v| v.name == name)
}

/// The variables as a table for `--help`.
pub(crate) fn help_table() -> String {
    let width = VARIABLES.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut out = String::from("Environment variables (default in brackets):\n");
    for v in VARIABLES {
        out.push_str(&format!(
            "  {:width$}  {} [{}]\n",
            v.name, v.about, v.default
        ));
    }
    out
}
