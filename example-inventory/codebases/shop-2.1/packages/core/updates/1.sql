-- core update 1: record when each account was created (accounts older
-- than the column get 2010-01-01, when it was introduced).
ALTER TABLE core_users ADD COLUMN created INTEGER NOT NULL DEFAULT 0;
UPDATE core_users SET created = 1262304000 WHERE created = 0;
