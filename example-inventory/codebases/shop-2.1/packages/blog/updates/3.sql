-- blog update 3: URL slugs and summaries. Existing posts get the slug post-<pid>.
ALTER TABLE blog_posts ADD COLUMN slug TEXT;
ALTER TABLE blog_posts ADD COLUMN summary TEXT NOT NULL DEFAULT '';
UPDATE blog_posts SET slug = 'post-' || pid WHERE slug IS NULL;
CREATE UNIQUE INDEX blog_posts_slug ON blog_posts (slug);
