-- blog: tables at schema 1.
CREATE TABLE blog_posts (
  pid INTEGER PRIMARY KEY,
  nid INTEGER NOT NULL UNIQUE,
  uid INTEGER NOT NULL DEFAULT 0,
  published INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX blog_posts_author ON blog_posts (uid, published);
