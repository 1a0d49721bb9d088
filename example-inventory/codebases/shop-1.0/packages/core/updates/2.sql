-- core update 2: look accounts up by e-mail address.
CREATE INDEX core_users_mail ON core_users (mail);
