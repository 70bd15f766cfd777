-- A SCIM create is one saga (issue 18): the intent carries the SCIM attributes the records' transaction
-- writes, and claims the `userName` before any side effect, as it claims the e-mail: while a saga is not
-- terminal no other saga may hold its userName. Same logical shape on both databases.
ALTER TABLE sagas ADD COLUMN scim_user_name TEXT NULL;
ALTER TABLE sagas ADD COLUMN scim_external_id TEXT NULL;
ALTER TABLE sagas ADD COLUMN scim_profile TEXT NULL;
CREATE UNIQUE INDEX sagas_unfinished_scim_user_name_key ON sagas (scim_user_name)
    WHERE state NOT IN ('completed', 'compensated', 'aborted') AND scim_user_name IS NOT NULL;
