-- Version 3: graded remediation. Nodes keep their last remediation step (reset GPU,
-- reboot, replace), and RESET_GPU is a kind of command.
ALTER TABLE nodes ADD COLUMN remediation TEXT CHECK (remediation IS NULL OR json_valid(remediation));

-- SQLite cannot alter a CHECK constraint: rebuild the commands table with the wider one.
-- command_events is rebuilt first, so that dropping the old commands table (which
-- cascades to the events that reference it) finds no events to take along.
CREATE TABLE commands_v3 (
    command_id       TEXT PRIMARY KEY NOT NULL,
    node_id          TEXT NOT NULL REFERENCES nodes (node_id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('CORDON', 'UNCORDON', 'DRAIN', 'TERMINATE', 'RUN_DIAGNOSTIC', 'REBOOT', 'RESET_GPU', 'CUSTOM')),
    custom_name      TEXT,
    parameters       TEXT NOT NULL CHECK (json_valid(parameters)),
    state            TEXT NOT NULL CHECK (state IN ('PENDING', 'DELIVERED', 'ACKED', 'SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELLED')),
    issued_by        TEXT NOT NULL,
    reason           TEXT NOT NULL,
    issued_at        INTEGER NOT NULL,
    deadline         INTEGER NOT NULL,
    delivered_at     INTEGER,
    delivery_count   INTEGER NOT NULL CHECK (delivery_count >= 0),
    acked_at         INTEGER,
    finished_at      INTEGER,
    outcome_message  TEXT NOT NULL,
    result           TEXT NOT NULL CHECK (json_valid(result)),
    revision         INTEGER NOT NULL CHECK (revision > 0),
    CHECK ((kind = 'CUSTOM') = (custom_name IS NOT NULL))
) STRICT;
INSERT INTO commands_v3 SELECT * FROM commands;
CREATE TABLE command_events_v3 (
    command_id  TEXT NOT NULL REFERENCES commands_v3 (command_id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL CHECK (seq > 0),
    at          INTEGER NOT NULL,
    state       TEXT NOT NULL,
    actor       TEXT NOT NULL,
    message     TEXT NOT NULL,
    PRIMARY KEY (command_id, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO command_events_v3 SELECT * FROM command_events;
DROP TABLE command_events;
DROP TABLE commands;
-- Renaming also renames the reference in command_events_v3.
ALTER TABLE commands_v3 RENAME TO commands;
ALTER TABLE command_events_v3 RENAME TO command_events;
CREATE INDEX commands_by_node ON commands (node_id, state, command_id);
CREATE INDEX commands_by_state ON commands (state, deadline);
