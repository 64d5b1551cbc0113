-- Schedules (a cron expression and the rollout it starts) and each due time, recorded once.
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    plan TEXT NOT NULL,
    cron TEXT NOT NULL,
    tz TEXT NOT NULL,
    args TEXT NOT NULL,
    missed TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    since TEXT NOT NULL,
    expires_at TEXT
);
CREATE TABLE IF NOT EXISTS schedule_fires (
    schedule TEXT NOT NULL,
    due_at TEXT NOT NULL,
    fired_at TEXT NOT NULL,
    by TEXT NOT NULL,
    outcome TEXT NOT NULL,
    run_id TEXT,
    detail TEXT,
    PRIMARY KEY (schedule, due_at)
);
