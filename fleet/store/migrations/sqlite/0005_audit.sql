-- The audit trail: who (operator name, OS user, machine, process) did what, on which run or
-- host. Actions recorded before this table existed are copied from the journal, with who as it
-- was written then (the OS user and machine were not kept apart).
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    operator TEXT NOT NULL,
    os_user TEXT NOT NULL,
    machine TEXT NOT NULL,
    pid INTEGER,
    run_id TEXT,
    host TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_at ON audit (at);
INSERT INTO audit (at, action, operator, os_user, machine, pid, run_id, host, detail)
SELECT at, action, operator, os_user, machine, pid, run_id, host, detail FROM (
    SELECT created_at AS at, 'run.start' AS action, owner_user AS operator,
           owner_user AS os_user, owner_machine AS machine, owner_pid AS pid, id AS run_id,
           NULL AS host, json_object('plan', plan_name, 'hosts', json_array_length(hosts)) AS detail,
           0 AS seq
      FROM runs
    UNION ALL
    SELECT at, kind, COALESCE(json_extract(data, '$.who'), json_extract(data, '$.to'), '?'),
           '', '', NULL,
           NULLIF(run_id, '-'), host, data, seq
      FROM events
     WHERE kind IN ('lease.break', 'halt.set', 'halt.clear', 'hostkey.forget',
                    'quarantine.clear', 'schedule.add', 'schedule.remove', 'schedule.pause',
                    'schedule.resume', 'run.lease.break', 'run.takeover')
) ORDER BY at, seq;
