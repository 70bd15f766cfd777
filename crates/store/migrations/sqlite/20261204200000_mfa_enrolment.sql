-- Software-token MFA (issue 20): when the admin's authenticator was enrolled (verified in Cognito and
-- preferred). NULL: not enrolled, or reset by another admin since (the next sign-in enrols again). With
-- REQUIRE_MFA=true an admin without it is answered 403 `mfa_enrollment_required` until they enrol.
-- Only the time is kept: the TOTP secret lives in Cognito alone.
ALTER TABLE users ADD COLUMN mfa_enrolled_at TEXT NULL;
