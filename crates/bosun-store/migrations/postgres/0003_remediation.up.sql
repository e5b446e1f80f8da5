-- Version 3: graded remediation. Nodes keep their last remediation step (reset GPU,
-- reboot, replace), and RESET_GPU is a kind of command.
ALTER TABLE nodes ADD COLUMN remediation JSONB;

ALTER TABLE commands DROP CONSTRAINT commands_kind_check;
ALTER TABLE commands ADD CONSTRAINT commands_kind_check
    CHECK (kind IN ('CORDON', 'UNCORDON', 'DRAIN', 'TERMINATE', 'RUN_DIAGNOSTIC', 'REBOOT', 'RESET_GPU', 'CUSTOM'));
