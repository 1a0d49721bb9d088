-- blog update 3: URL slugs and summaries. Existing posts get the slug post-<pid>.
ALTER TABLE blog_posts ADD COLUMN slug VARCHAR(191);
ALTER TABLE blog_posts ADD COLUMN summary VARCHAR(1024) NOT NULL DEFAULT '';
UPDATE blog_posts SET slug = CONCAT('post-', pid) WHERE slug IS NULL;
CREATE UNIQUE INDEX blog_posts_slug ON blog_posts (slug);
