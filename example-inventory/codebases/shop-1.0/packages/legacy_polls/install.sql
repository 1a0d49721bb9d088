-- legacy_polls: tables at schema 1.
CREATE TABLE legacy_polls_polls (
  pid INTEGER PRIMARY KEY,
  question TEXT NOT NULL,
  active INTEGER NOT NULL DEFAULT 1,
  created INTEGER NOT NULL DEFAULT 0,
  runtime INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE legacy_polls_choices (
  chid INTEGER PRIMARY KEY,
  pid INTEGER NOT NULL,
  label TEXT NOT NULL,
  votes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX legacy_polls_choices_pid ON legacy_polls_choices (pid);
CREATE TABLE legacy_polls_votes (
  pid INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  chid INTEGER NOT NULL,
  PRIMARY KEY (pid, uid)
);
