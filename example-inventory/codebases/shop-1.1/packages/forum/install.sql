-- forum: tables at schema 1.
CREATE TABLE forum_forums (
  tid INTEGER PRIMARY KEY,
  name VARCHAR(191) NOT NULL,
  description VARCHAR(1024) NOT NULL DEFAULT '',
  weight INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE forum_topics (
  nid INTEGER PRIMARY KEY,
  tid INTEGER NOT NULL,
  last_comment INTEGER NOT NULL DEFAULT 0,
  comment_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX forum_topics_activity ON forum_topics (tid, last_comment);
INSERT INTO forum_forums (tid, name, description) VALUES (1, 'General discussion', 'Anything that fits nowhere else.');
