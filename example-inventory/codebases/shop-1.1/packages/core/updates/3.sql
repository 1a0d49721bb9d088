-- core update 3: roles. Existing accounts become 'authenticated', account 1 also 'administrator'.
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
INSERT INTO core_roles (rid, name, weight) VALUES (1, 'anonymous', 0), (2, 'authenticated', 1), (3, 'administrator', 2);
INSERT INTO core_users_roles (uid, rid) SELECT uid, 2 FROM core_users WHERE uid > 0;
INSERT INTO core_users_roles (uid, rid) SELECT uid, 3 FROM core_users WHERE uid = 1;
