-- core update 6: settings get an autoload flag; large values are no longer loaded on every request.
ALTER TABLE core_settings ADD COLUMN autoload INTEGER NOT NULL DEFAULT 1;
UPDATE core_settings SET autoload = 0 WHERE length(value) > 1024;
CREATE INDEX core_settings_autoload ON core_settings (autoload);
