-- core update 1: record when each account was created.
ALTER TABLE core_users ADD COLUMN created INTEGER NOT NULL DEFAULT 0;
UPDATE core_users SET created = CAST(strftime('%s', 'now') AS INTEGER) WHERE created = 0;
