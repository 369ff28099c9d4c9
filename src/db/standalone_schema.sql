-- The usage-tracking tables in the shape the newest mAI start-up code creates
-- (tests/fixtures/mai-startup-schema.sql), for CREATE_SCHEMA=true only.
-- There is deliberately no alembic_version here: this database is standalone,
-- and the application's migration would fail on these tables anyway.
CREATE TABLE IF NOT EXISTS client_organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    openrouter_api_key TEXT NOT NULL UNIQUE,
    openrouter_key_hash TEXT,
    markup_rate REAL DEFAULT 1.3,
    monthly_limit REAL,
    billing_email TEXT,
    timezone TEXT DEFAULT 'Europe/Warsaw',
    is_active INTEGER DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS user_client_mapping (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    client_org_id TEXT NOT NULL,
    openrouter_user_id TEXT NOT NULL,
    is_active INTEGER DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    FOREIGN KEY (client_org_id) REFERENCES client_organizations(id)
);
CREATE TABLE IF NOT EXISTS client_daily_usage (
    id TEXT PRIMARY KEY,
    client_org_id TEXT NOT NULL,
    usage_date DATE NOT NULL,
    total_tokens INTEGER DEFAULT 0,
    total_requests INTEGER DEFAULT 0,
    raw_cost REAL DEFAULT 0.0,
    markup_cost REAL DEFAULT 0.0,
    primary_model TEXT,
    unique_users INTEGER DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    FOREIGN KEY (client_org_id) REFERENCES client_organizations(id)
);
CREATE TABLE IF NOT EXISTS client_user_daily_usage (
    id TEXT PRIMARY KEY,
    client_org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    usage_date DATE NOT NULL,
    openrouter_user_id TEXT NOT NULL,
    total_tokens INTEGER DEFAULT 0,
    total_requests INTEGER DEFAULT 0,
    raw_cost REAL DEFAULT 0.0,
    markup_cost REAL DEFAULT 0.0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    FOREIGN KEY (client_org_id) REFERENCES client_organizations(id)
);
CREATE TABLE IF NOT EXISTS client_model_daily_usage (
    id TEXT PRIMARY KEY,
    client_org_id TEXT NOT NULL,
    model_name TEXT NOT NULL,
    usage_date DATE NOT NULL,
    total_tokens INTEGER DEFAULT 0,
    total_requests INTEGER DEFAULT 0,
    raw_cost REAL DEFAULT 0.0,
    markup_cost REAL DEFAULT 0.0,
    provider TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    FOREIGN KEY (client_org_id) REFERENCES client_organizations(id)
);
CREATE TABLE IF NOT EXISTS processed_generations (
    id TEXT PRIMARY KEY,
    client_org_id TEXT NOT NULL,
    generation_date DATE NOT NULL,
    processed_at INTEGER NOT NULL,
    total_cost REAL NOT NULL,
    total_tokens INTEGER NOT NULL,
    FOREIGN KEY (client_org_id) REFERENCES client_organizations(id)
);
CREATE TABLE IF NOT EXISTS processed_generation_cleanup_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cleanup_date DATE NOT NULL,
    cutoff_date DATE NOT NULL,
    days_retained INTEGER NOT NULL,
    records_before INTEGER NOT NULL,
    records_deleted INTEGER NOT NULL,
    records_remaining INTEGER NOT NULL,
    old_tokens_removed INTEGER NOT NULL,
    old_cost_removed REAL NOT NULL,
    storage_saved_kb REAL NOT NULL,
    cleanup_duration_seconds REAL NOT NULL,
    success INTEGER NOT NULL DEFAULT 1,
    error_message TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_api_key ON client_organizations(openrouter_api_key);
CREATE INDEX IF NOT EXISTS idx_active ON client_organizations(is_active);
CREATE INDEX IF NOT EXISTS idx_user_daily_client_user_date ON client_user_daily_usage(client_org_id, user_id, usage_date);
CREATE INDEX IF NOT EXISTS idx_user_daily_user_date ON client_user_daily_usage(user_id, usage_date);
CREATE INDEX IF NOT EXISTS idx_model_daily_client_model_date ON client_model_daily_usage(client_org_id, model_name, usage_date);
CREATE INDEX IF NOT EXISTS idx_model_daily_model_date ON client_model_daily_usage(model_name, usage_date);
CREATE INDEX IF NOT EXISTS idx_proc_client_date ON processed_generations(client_org_id, generation_date);
CREATE INDEX IF NOT EXISTS idx_proc_processed_at ON processed_generations(processed_at);
