-- SCIM `userName` (issue 12): kept lower-cased in a column of its own so that it is unique among admins by
-- a database index (not by a scan in the application) and a SCIM filter `userName eq "…"` is an indexed
-- lookup. Same logical shape as migrations/postgres. NULL for admins never touched by SCIM (their userName is
-- their e-mail, unique by the e-mail's own index).
ALTER TABLE users ADD COLUMN scim_user_name TEXT NULL;
-- Backfill from the kept SCIM attributes, leaving out any value two admins share (the index would refuse
-- it; such an admin keeps its userName in `scim_profile` and gets the column on its next SCIM write).
UPDATE users SET scim_user_name = lower(trim(json_extract(scim_profile, '$.userName')))
WHERE scim_profile IS NOT NULL
  AND json_valid(scim_profile)
  AND trim(coalesce(json_extract(scim_profile, '$.userName'), '')) <> ''
  AND (SELECT count(*) FROM users o
       WHERE o.scim_profile IS NOT NULL AND json_valid(o.scim_profile)
         AND lower(trim(json_extract(o.scim_profile, '$.userName'))) =
             lower(trim(json_extract(users.scim_profile, '$.userName')))) = 1;
CREATE UNIQUE INDEX users_scim_user_name_key ON users (scim_user_name);
