-- The run's lease (its one live owner, with a token from the lease counter, pushed by the
-- owner's heartbeat; NULL once released or broken), and the owners' process identity: the
-- process's start time and a nonce drawn once per process tell a live owner from a later
-- process that reuses its pid.
ALTER TABLE runs ADD COLUMN owner_started REAL;
ALTER TABLE runs ADD COLUMN owner_nonce TEXT;
ALTER TABLE runs ADD COLUMN lease_token INTEGER;
ALTER TABLE runs ADD COLUMN lease_expires_at TEXT;
ALTER TABLE leases ADD COLUMN owner_started REAL;
ALTER TABLE leases ADD COLUMN owner_nonce TEXT;
