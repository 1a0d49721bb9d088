-- blog: tables at schema 3.
CREATE TABLE blog_posts (
  pid INTEGER PRIMARY KEY,
  nid INTEGER NOT NULL UNIQUE,
  uid INTEGER NOT NULL DEFAULT 0,
  published INTEGER NOT NULL DEFAULT 0,
  slug VARCHAR(191),
  summary VARCHAR(1024) NOT NULL DEFAULT ''
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
CREATE UNIQUE INDEX blog_posts_slug ON blog_posts (slug);
