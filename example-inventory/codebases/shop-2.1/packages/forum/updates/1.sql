-- forum update 1: list a forum's topics by latest activity.
CREATE INDEX forum_topics_activity ON forum_topics (tid, last_comment);
