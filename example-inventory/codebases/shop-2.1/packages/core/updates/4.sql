-- core update 4: per-account time zone, seeded from the site-wide 'date_default_timezone' setting.
ALTER TABLE core_users ADD COLUMN timezone VARCHAR(64) NOT NULL DEFAULT 'UTC';
UPDATE core_users SET timezone = COALESCE((SELECT value FROM core_settings WHERE name = 'date_default_timezone'), 'UTC');
