-- The audit trail: who (operator name, OS user, machine, process) did what, on which run or host.
CREATE TABLE audit (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz(3) NOT NULL,
    action text NOT NULL,
    operator text NOT NULL,
    os_user text NOT NULL,
    machine text NOT NULL,
    pid integer,
    run_id text,
    host text,
    detail json
);
CREATE INDEX audit_by_at ON audit (at, seq);
