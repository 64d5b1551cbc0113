-- The first schema: runs and their journal, host leases with their token counter, quarantine,
-- the global halt and pinned host keys. Instants are UTC ISO-8601 text, JSON is text.
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    plan_name TEXT NOT NULL,
    plan_source TEXT NOT NULL,
    plan_hash TEXT NOT NULL,
    hosts TEXT NOT NULL,
    options TEXT NOT NULL,
    owner_user TEXT NOT NULL,
    owner_machine TEXT NOT NULL,
    owner_pid INTEGER NOT NULL,
    owner_run_id TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    host TEXT,
    stage TEXT,
    step TEXT,
    outcome TEXT,
    exit_code INTEGER,
    excerpt TEXT,
    query_id TEXT,
    data TEXT
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id);
CREATE TABLE IF NOT EXISTS leases (
    host TEXT PRIMARY KEY,
    owner_user TEXT NOT NULL,
    owner_machine TEXT NOT NULL,
    owner_pid INTEGER NOT NULL,
    owner_run_id TEXT,
    token INTEGER NOT NULL,
    taken_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lease_tokens (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);
INSERT OR IGNORE INTO lease_tokens (id, last) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS quarantine (
    host TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS halt (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    who TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS host_keys (
    host TEXT NOT NULL,
    role TEXT NOT NULL,
    key_type TEXT NOT NULL,
    blob TEXT NOT NULL,
    pinned_at TEXT NOT NULL,
    PRIMARY KEY (host, role)
);
