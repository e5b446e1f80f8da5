-- Version 7: PostgreSQL keeps change documents and metric samples' GPUs as JSON text;
-- SQLite always has (TEXT). Nothing changes here: the version keeps both dialects'
-- schemas in step.
SELECT 1;
