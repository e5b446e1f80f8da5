-- Version 7: PostgreSQL's change log keeps resource documents as JSON text; SQLite always
-- has (TEXT). Nothing changes here: the version keeps both dialects' schemas in step.
SELECT 1;
