-- blog: tables at schema 2.
CREATE TABLE blog_posts (
  pid INTEGER PRIMARY KEY,
  nid INTEGER NOT NULL UNIQUE,
  uid INTEGER NOT NULL DEFAULT 0,
  published INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX blog_posts_author ON blog_posts (uid, published);
CREATE TABLE blog_tags (
  tid INTEGER PRIMARY KEY,
  name VARCHAR(191) NOT NULL UNIQUE
);
CREATE TABLE blog_posts_tags (
  pid INTEGER NOT NULL,
  tid INTEGER NOT NULL,
  PRIMARY KEY (pid, tid)
);
CREATE INDEX blog_posts_tags_tid ON blog_posts_tags (tid);
