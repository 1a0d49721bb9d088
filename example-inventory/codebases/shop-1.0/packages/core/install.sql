-- core: tables at schema 2.
CREATE TABLE core_users (
  uid INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  mail TEXT NOT NULL DEFAULT '',
  pass TEXT NOT NULL DEFAULT '',
  status INTEGER NOT NULL DEFAULT 1,
  created INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE core_settings (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL DEFAULT ''
);
CREATE INDEX core_users_mail ON core_users (mail);
INSERT INTO core_settings (name, value) VALUES ('date_default_timezone', 'UTC'), ('user_register', 'admin_only');
