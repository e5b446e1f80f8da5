-- Reverts version 7.
ALTER TABLE metric_samples ALTER COLUMN gpus TYPE JSONB USING gpus::jsonb;
ALTER TABLE changes
    ALTER COLUMN resource TYPE JSONB USING resource::jsonb,
    ALTER COLUMN kind TYPE TEXT COLLATE "default";
