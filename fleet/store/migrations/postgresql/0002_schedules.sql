-- Schedules (a cron expression and the rollout it starts) and each due time, recorded once.
CREATE TABLE schedules (
    name text PRIMARY KEY,
    plan text NOT NULL,
    cron text NOT NULL,
    tz text NOT NULL,
    args json NOT NULL,
    missed text NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    created_by text NOT NULL,
    created_at timestamptz(3) NOT NULL,
    since timestamptz(3) NOT NULL,
    expires_at timestamptz(3)
);
CREATE TABLE schedule_fires (
    schedule text NOT NULL,
    due_at timestamptz(3) NOT NULL,
    fired_at timestamptz(3) NOT NULL,
    by text NOT NULL,
    outcome text NOT NULL,
    run_id text,
    detail text,
    PRIMARY KEY (schedule, due_at)
);
