-- node update 2: revisions. Each existing node gets its current text as its first revision.
-- vid is numbered here, not left to the database: SQLite numbers an
-- INTEGER PRIMARY KEY itself, MySQL (strict mode) refuses a row without it.
CREATE TABLE node_revisions (
  vid INTEGER PRIMARY KEY,
  nid INTEGER NOT NULL,
  uid INTEGER NOT NULL DEFAULT 0,
  title TEXT NOT NULL,
  body TEXT,
  timestamp INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX node_revisions_nid ON node_revisions (nid);
INSERT INTO node_revisions (vid, nid, uid, title, body, timestamp) SELECT ROW_NUMBER() OVER (ORDER BY nid), nid, uid, title, body, changed FROM node_nodes ORDER BY nid;
ALTER TABLE node_nodes ADD COLUMN vid INTEGER NOT NULL DEFAULT 0;
UPDATE node_nodes SET vid = COALESCE((SELECT max(r.vid) FROM node_revisions r WHERE r.nid = node_nodes.nid), 0);
