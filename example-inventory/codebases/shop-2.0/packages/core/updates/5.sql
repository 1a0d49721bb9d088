-- core update 5: path aliases; every active account gets users/<name>.
CREATE TABLE core_path_alias (
  pid INTEGER PRIMARY KEY,
  path TEXT NOT NULL,
  alias TEXT NOT NULL,
  langcode TEXT NOT NULL DEFAULT 'und'
);
CREATE UNIQUE INDEX core_path_alias_alias ON core_path_alias (alias, langcode);
CREATE INDEX core_path_alias_path ON core_path_alias (path);
INSERT OR IGNORE INTO core_path_alias (path, alias) SELECT 'user/' || uid, 'users/' || lower(replace(name, ' ', '-')) FROM core_users WHERE uid > 0 AND status = 1 ORDER BY uid;
