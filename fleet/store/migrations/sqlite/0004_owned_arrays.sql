-- What fleet did to disks: the md arrays it created on each host (their identity, so that a
-- later run knows them as fleet's own), and the previews of destructive plans an operator
-- approves (per host, the digest of what its guard decided). Member serials and the preview's
-- hosts are JSON text.
CREATE TABLE IF NOT EXISTS owned_arrays (
    host TEXT NOT NULL,
    uuid TEXT NOT NULL,
    name TEXT NOT NULL,
    level TEXT NOT NULL,
    serials TEXT NOT NULL,
    run_id TEXT NOT NULL,
    fs_uuid TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (host, uuid)
);
CREATE TABLE IF NOT EXISTS previews (
    id TEXT PRIMARY KEY,
    plan_hash TEXT NOT NULL,
    hosts TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
