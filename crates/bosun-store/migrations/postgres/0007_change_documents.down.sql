-- Reverts version 7.
ALTER TABLE changes
    ALTER COLUMN resource TYPE JSONB USING resource::jsonb,
    ALTER COLUMN kind TYPE TEXT COLLATE "default";
