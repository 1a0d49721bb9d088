-- blog update 2: tags (released in 1.3.0 on the 1.x line and in 1.2.0 on the 2.x line).
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
