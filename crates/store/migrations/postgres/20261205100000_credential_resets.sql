-- Credential resets by another admin (issue 20): the password-reset and MFA-reset sagas are kinds of
-- their own in the saga log. Same logical shape as migrations/sqlite.
ALTER TABLE sagas DROP CONSTRAINT sagas_kind_check;
ALTER TABLE sagas ADD CONSTRAINT sagas_kind_check
    CHECK (kind IN ('provision', 'remove', 'disable', 'enable', 'change_role', 'reset_password', 'reset_mfa'));
