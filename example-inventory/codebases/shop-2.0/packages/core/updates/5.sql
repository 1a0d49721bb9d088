-- core update 5: path aliases; every active account gets users/<name>.
-- pid is numbered here, not left to the database: SQLite numbers an
-- INTEGER PRIMARY KEY itself, MySQL (strict mode) refuses a row without it.
CREATE TABLE core_path_alias (
  pid INTEGER PRIMARY KEY,
  path VARCHAR(191) NOT NULL,
  alias VARCHAR(191) NOT NULL,
  langcode VARCHAR(191) NOT NULL DEFAULT 'und'
);
CREATE UNIQUE INDEX core_path_alias_alias ON core_path_alias (alias, langcode);
CREATE INDEX core_path_alias_path ON core_path_alias (path);
INSERT INTO core_path_alias (pid, path, alias) SELECT ROW_NUMBER() OVER (ORDER BY MIN(uid)), CONCAT('user/', MIN(uid)), alias FROM (SELECT uid, CONCAT('users/', lower(replace(name, ' ', '-'))) AS alias FROM core_users WHERE uid > 0 AND status = 1) AS named GROUP BY alias ORDER BY MIN(uid);
