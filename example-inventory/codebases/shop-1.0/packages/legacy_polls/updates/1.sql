-- legacy_polls update 1: polls can close automatically after a runtime in seconds (0: never).
ALTER TABLE legacy_polls_polls ADD COLUMN runtime INTEGER NOT NULL DEFAULT 0;
