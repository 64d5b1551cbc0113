-- What fleet did to disks: the md arrays it created on each host (their identity, so that a
-- later run knows them as fleet's own), and the previews of destructive plans an operator
-- approves (per host, the digest of what its guard decided).
CREATE TABLE owned_arrays (
    host text NOT NULL,
    uuid text NOT NULL,
    name text NOT NULL,
    level text NOT NULL,
    serials json NOT NULL,
    run_id text NOT NULL,
    fs_uuid text NOT NULL,
    created_at timestamptz(3) NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (host, uuid)
);
CREATE TABLE previews (
    id text PRIMARY KEY,
    plan_hash text NOT NULL,
    hosts json NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz(3) NOT NULL
);
