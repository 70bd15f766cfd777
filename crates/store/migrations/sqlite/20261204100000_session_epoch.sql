-- Session epoch (issue 18): a token of this admin issued at or before `sessions_valid_after` is refused
-- (401 `session_ended`), whatever its expiry says. Set by console sign-out (all of the admin's sessions
-- end) and, in the same write as `disabled_at`, by a disable; an enable leaves it as it is, so a token
-- issued before the latest disable stays refused after re-enable. NULL: no session has been ended.
ALTER TABLE users ADD COLUMN sessions_valid_after TEXT NULL;
