-- node: tables at schema 1.
CREATE TABLE node_types (
  type VARCHAR(191) PRIMARY KEY,
  name VARCHAR(191) NOT NULL,
  description VARCHAR(1024) NOT NULL DEFAULT ''
);
CREATE TABLE node_nodes (
  nid INTEGER PRIMARY KEY,
  type VARCHAR(191) NOT NULL,
  title TEXT NOT NULL,
  uid INTEGER NOT NULL DEFAULT 0,
  status INTEGER NOT NULL DEFAULT 1,
  created INTEGER NOT NULL DEFAULT 0,
  changed INTEGER NOT NULL DEFAULT 0,
  body TEXT,
  sticky INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX node_nodes_type ON node_nodes (type);
CREATE INDEX node_nodes_frontpage ON node_nodes (status, sticky, created);
INSERT INTO node_types (type, name, description) VALUES ('page', 'Basic page', 'Static content such as an About page.'), ('article', 'Article', 'Time-sensitive content such as news.');
