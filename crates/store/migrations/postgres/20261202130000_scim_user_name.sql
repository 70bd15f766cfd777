-- SCIM `userName` (issue 12): kept lower-cased in a column of its own so that it is unique among admins by
-- a database index (not by a scan in the application) and a SCIM filter `userName eq "…"` is an indexed
-- lookup. Same logical shape as migrations/sqlite. NULL for admins never touched by SCIM (their userName is
-- their e-mail, unique by `users_email_normalized_key`).
ALTER TABLE users ADD COLUMN scim_user_name TEXT NULL;
-- Backfill from the kept SCIM attributes, leaving out any value two admins share (the index would refuse
-- it; such an admin keeps its userName in `scim_profile` and gets the column on its next SCIM write).
UPDATE users u SET scim_user_name = v.name
FROM (
    SELECT id, lower(btrim(scim_profile::jsonb ->> 'userName')) AS name,
           count(*) OVER (PARTITION BY lower(btrim(scim_profile::jsonb ->> 'userName'))) AS n
    FROM users
    WHERE scim_profile IS NOT NULL AND scim_profile::jsonb ? 'userName'
) v
WHERE u.id = v.id AND v.n = 1 AND v.name <> '';
CREATE UNIQUE INDEX users_scim_user_name_key ON users (scim_user_name);
