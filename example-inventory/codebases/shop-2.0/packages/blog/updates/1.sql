-- blog update 1: list a blogger's published posts quickly.
CREATE INDEX blog_posts_author ON blog_posts (uid, published);
