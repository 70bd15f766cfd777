"""boto3 (the AWS SDK for Python) against the built-in Cognito emulator's wire endpoint.

Usage: cognito_boto3.py ENDPOINT POOL_ID CLIENT_ID
Creates a user with a temporary password, signs it in with ADMIN_USER_PASSWORD_AUTH, answers
NEW_PASSWORD_REQUIRED, reads itself with GetUser, finds itself with a ListUsers filter, refreshes, and checks
the error codes of a missing user, a wrong password and an unknown pool. Prints "ok" and exits 0, or fails.
"""
import sys

import boto3
from botocore.exceptions import ClientError

endpoint, pool, client_id = sys.argv[1:4]
idp = boto3.client(
    "cognito-idp",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="local",
    aws_secret_access_key="local",
)


def error_code(call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError(f"{call.__name__} succeeded")


user = "py@example.com"
created = idp.admin_create_user(
    UserPoolId=pool,
    Username=user,
    UserAttributes=[{"Name": "email", "Value": user}],
    TemporaryPassword="Temp#Passw0rd",
    MessageAction="SUPPRESS",
)["User"]
assert created["UserStatus"] == "FORCE_CHANGE_PASSWORD", created
assert hasattr(created["UserCreateDate"], "year"), "dates parse as datetimes"

first = idp.admin_initiate_auth(
    UserPoolId=pool,
    ClientId=client_id,
    AuthFlow="ADMIN_USER_PASSWORD_AUTH",
    AuthParameters={"USERNAME": user, "PASSWORD": "Temp#Passw0rd"},
)
assert first["ChallengeName"] == "NEW_PASSWORD_REQUIRED", first
done = idp.admin_respond_to_auth_challenge(
    UserPoolId=pool,
    ClientId=client_id,
    ChallengeName="NEW_PASSWORD_REQUIRED",
    Session=first["Session"],
    ChallengeResponses={"USERNAME": user, "NEW_PASSWORD": "N3w#Password!"},
)
tokens = done["AuthenticationResult"]
assert tokens["TokenType"] == "Bearer"

me = idp.get_user(AccessToken=tokens["AccessToken"])
assert me["Username"] == user, me
found = idp.list_users(UserPoolId=pool, Filter=f'email = "{user}"')["Users"]
assert [u["Username"] for u in found] == [user], found
refreshed = idp.initiate_auth(
    ClientId=client_id,
    AuthFlow="REFRESH_TOKEN_AUTH",
    AuthParameters={"REFRESH_TOKEN": tokens["RefreshToken"]},
)["AuthenticationResult"]
assert "IdToken" in refreshed and "RefreshToken" not in refreshed, refreshed

assert error_code(idp.admin_get_user, UserPoolId=pool, Username="nobody@example.com") == "UserNotFoundException"
assert (
    error_code(
        idp.initiate_auth,
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": user, "PASSWORD": "Wr0ng#Password"},
    )
    == "NotAuthorizedException"
)
assert error_code(idp.list_users, UserPoolId="us-east-1_Nowhere99") == "ResourceNotFoundException"
# An operation the emulator does not implement: Cognito's error shape, which boto3 reads as a code.
assert (
    error_code(idp.get_csv_header, UserPoolId=pool) == "UnsupportedOperationException"
), "an unimplemented operation answers UnsupportedOperationException"
idp.admin_delete_user(UserPoolId=pool, Username=user)
print("ok")
