-- core: tables at schema 2.
CREATE TABLE core_users (
  uid INTEGER PRIMARY KEY,
  name VARCHAR(191) NOT NULL UNIQUE,
  mail VARCHAR(191) NOT NULL DEFAULT '',
  pass VARCHAR(1024) NOT NULL DEFAULT '',
  status INTEGER NOT NULL DEFAULT 1,
  created INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE core_settings (
  name VARCHAR(191) PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE INDEX core_users_mail ON core_users (mail);
INSERT INTO core_settings (name, value) VALUES ('date_default_timezone', 'UTC'), ('user_register', 'admin_only');
