-- Reverts version 3: forgets nodes' remediation steps and RESET_GPU commands (version 2
-- cannot hold them), and narrows the command kinds back.
DELETE FROM commands WHERE kind = 'RESET_GPU';
ALTER TABLE commands DROP CONSTRAINT commands_kind_check;
ALTER TABLE commands ADD CONSTRAINT commands_kind_check
    CHECK (kind IN ('CORDON', 'UNCORDON', 'DRAIN', 'TERMINATE', 'RUN_DIAGNOSTIC', 'REBOOT', 'CUSTOM'));

ALTER TABLE nodes DROP COLUMN remediation;
