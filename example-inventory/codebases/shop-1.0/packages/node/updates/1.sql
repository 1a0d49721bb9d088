-- node update 1: sticky content and the front-page listing index.
ALTER TABLE node_nodes ADD COLUMN sticky INTEGER NOT NULL DEFAULT 0;
CREATE INDEX node_nodes_frontpage ON node_nodes (status, sticky, created);
