-- The first schema: runs and their journal, host leases with their fencing-token sequence,
-- quarantine, the global halt (which notifies every listening rollout) and pinned host keys.
-- Instants are timestamptz to the millisecond, taken from the server's clock (now()).
CREATE TABLE runs (
    id text PRIMARY KEY,
    plan_name text NOT NULL,
    plan_source text NOT NULL,
    plan_hash text NOT NULL,
    hosts json NOT NULL,
    options json NOT NULL,
    owner_user text NOT NULL,
    owner_machine text NOT NULL,
    owner_pid integer NOT NULL,
    owner_run_id text,
    state text NOT NULL,
    reason text,
    created_at timestamptz(3) NOT NULL,
    updated_at timestamptz(3) NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX runs_by_created ON runs (created_at, seq);

CREATE TABLE events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text NOT NULL,
    kind text NOT NULL,
    at timestamptz(3) NOT NULL,
    host text,
    stage text,
    step text,
    outcome text,
    exit_code integer,
    excerpt text,
    query_id text,
    data json
);
CREATE INDEX events_by_run ON events (run_id, seq);

CREATE SEQUENCE lease_tokens;
CREATE TABLE leases (
    host text PRIMARY KEY,
    owner_user text NOT NULL,
    owner_machine text NOT NULL,
    owner_pid integer NOT NULL,
    owner_run_id text,
    token bigint NOT NULL,
    taken_at timestamptz(3) NOT NULL,
    expires_at timestamptz(3) NOT NULL
);

CREATE TABLE quarantine (
    host text PRIMARY KEY,
    run_id text NOT NULL,
    reason text NOT NULL,
    at timestamptz(3) NOT NULL
);

CREATE TABLE halt (
    id integer PRIMARY KEY CHECK (id = 1),
    who text NOT NULL,
    reason text NOT NULL,
    at timestamptz(3) NOT NULL
);
-- Any change of the switch, by fleet or by hand, wakes every rollout waiting on it.
CREATE FUNCTION fleet_halt_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('fleet_halt', TG_OP);
    RETURN NULL;
END;
$$;
CREATE TRIGGER halt_notify AFTER INSERT OR UPDATE OR DELETE ON halt
    FOR EACH STATEMENT EXECUTE FUNCTION fleet_halt_notify();

CREATE TABLE host_keys (
    host text NOT NULL,
    role text NOT NULL,
    key_type text NOT NULL,
    blob text NOT NULL,
    pinned_at timestamptz(3) NOT NULL,
    PRIMARY KEY (host, role)
);
