-- Reverts version 3: forgets nodes' remediation steps and RESET_GPU commands (version 2
-- cannot hold them), and narrows the command kinds back.
DELETE FROM commands WHERE kind = 'RESET_GPU';
CREATE TABLE commands_v2 (
    command_id       TEXT PRIMARY KEY NOT NULL,
    node_id          TEXT NOT NULL REFERENCES nodes (node_id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('CORDON', 'UNCORDON', 'DRAIN', 'TERMINATE', 'RUN_DIAGNOSTIC', 'REBOOT', 'CUSTOM')),
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
INSERT INTO commands_v2 SELECT * FROM commands;
CREATE TABLE command_events_v2 (
    command_id  TEXT NOT NULL REFERENCES commands_v2 (command_id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL CHECK (seq > 0),
    at          INTEGER NOT NULL,
    state       TEXT NOT NULL,
    actor       TEXT NOT NULL,
    message     TEXT NOT NULL,
    PRIMARY KEY (command_id, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO command_events_v2 SELECT * FROM command_events;
DROP TABLE command_events;
DROP TABLE commands;
ALTER TABLE commands_v2 RENAME TO commands;
ALTER TABLE command_events_v2 RENAME TO command_events;
CREATE INDEX commands_by_node ON commands (node_id, state, command_id);
CREATE INDEX commands_by_state ON commands (state, deadline);

ALTER TABLE nodes DROP COLUMN remediation;
