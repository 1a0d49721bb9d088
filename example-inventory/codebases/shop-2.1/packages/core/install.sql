-- core: tables at schema 6.
CREATE TABLE core_users (
  uid INTEGER PRIMARY KEY,
  name VARCHAR(191) NOT NULL UNIQUE,
  mail VARCHAR(191) NOT NULL DEFAULT '',
  pass VARCHAR(1024) NOT NULL DEFAULT '',
  status INTEGER NOT NULL DEFAULT 1,
  created INTEGER NOT NULL DEFAULT 0,
  timezone VARCHAR(64) NOT NULL DEFAULT 'UTC'
);
CREATE TABLE core_settings (
  name VARCHAR(191) PRIMARY KEY,
  value TEXT NOT NULL,
  autoload INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX core_users_mail ON core_users (mail);
CREATE TABLE core_roles (
  rid INTEGER PRIMARY KEY,
  name VARCHAR(191) NOT NULL UNIQUE,
  weight INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE core_users_roles (
  uid INTEGER NOT NULL,
  rid INTEGER NOT NULL,
  PRIMARY KEY (uid, rid)
);
CREATE INDEX core_users_roles_rid ON core_users_roles (rid);
CREATE TABLE core_path_alias (
  pid INTEGER PRIMARY KEY,
  path VARCHAR(191) NOT NULL,
  alias VARCHAR(191) NOT NULL,
  langcode VARCHAR(191) NOT NULL DEFAULT 'und'
);
CREATE UNIQUE INDEX core_path_alias_alias ON core_path_alias (alias, langcode);
CREATE INDEX core_path_alias_path ON core_path_alias (path);
CREATE INDEX core_settings_autoload ON core_settings (autoload);
INSERT INTO core_settings (name, value) VALUES ('date_default_timezone', 'UTC'), ('user_register', 'admin_only');
INSERT INTO core_roles (rid, name, weight) VALUES (1, 'anonymous', 0), (2, 'authenticated', 1), (3, 'administrator', 2);
