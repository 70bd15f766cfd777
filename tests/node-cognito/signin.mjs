// Signs a newly invited admin in against the built-in Cognito emulator, as a TypeScript/JavaScript
// application would: the AWS SDK for JavaScript v3 on the emulator's endpoint, the temporary password read
// from the emulator's mailbox, the NEW_PASSWORD_REQUIRED challenge answered, and the ID token verified with
// aws-jwt-verify against the JWKS the issuer's openid-configuration names.
//
// Environment: COGNITO_ENDPOINT (http://127.0.0.1:9229), COGNITO_USER_POOL_ID, COGNITO_CLIENT_ID,
// COGNITO_ISSUER, MAILBOX_DIR, ADMIN_EMAIL, NEW_PASSWORD. Prints one JSON line with the verified claims;
// exits non-zero on any failure. Run by tests/emulator_wire.rs (after `npm ci` in this folder).
import {
  CognitoIdentityProviderClient,
  InitiateAuthCommand,
  RespondToAuthChallengeCommand,
  GetUserCommand,
} from "@aws-sdk/client-cognito-identity-provider";
import { JwtRsaVerifier } from "aws-jwt-verify";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const endpoint = env("COGNITO_ENDPOINT");
const clientId = env("COGNITO_CLIENT_ID");
const issuer = env("COGNITO_ISSUER");
const mailbox = env("MAILBOX_DIR");
const email = env("ADMIN_EMAIL");
const newPassword = env("NEW_PASSWORD");

// The newest invitation to `email` (file names sort oldest first) and its temporary password.
const files = readdirSync(mailbox).filter((f) => f.endsWith(".eml")).sort();
let temporary;
for (const f of files) {
  const text = readFileSync(join(mailbox, f), "utf8");
  const m = text.match(/Your username is (\S+) and temporary password is (\S+)\.\r?\n/);
  if (m && m[1].toLowerCase() === email.toLowerCase()) temporary = m[2];
}
if (!temporary) throw new Error(`no invitation to ${email} in ${mailbox}`);

const cognito = new CognitoIdentityProviderClient({
  region: "us-east-1",
  endpoint,
  credentials: { accessKeyId: "local", secretAccessKey: "local" },
});

const first = await cognito.send(
  new InitiateAuthCommand({
    ClientId: clientId,
    AuthFlow: "USER_PASSWORD_AUTH",
    AuthParameters: { USERNAME: email, PASSWORD: temporary },
  }),
);
if (first.ChallengeName !== "NEW_PASSWORD_REQUIRED") {
  throw new Error(`expected NEW_PASSWORD_REQUIRED, got ${first.ChallengeName}`);
}
const done = await cognito.send(
  new RespondToAuthChallengeCommand({
    ClientId: clientId,
    ChallengeName: "NEW_PASSWORD_REQUIRED",
    Session: first.Session,
    ChallengeResponses: {
      USERNAME: first.ChallengeParameters.USER_ID_FOR_SRP,
      NEW_PASSWORD: newPassword,
    },
  }),
);
const { IdToken, AccessToken } = done.AuthenticationResult;
const me = await cognito.send(new GetUserCommand({ AccessToken }));

// A standard verifier finds the keys from the issuer. aws-jwt-verify downloads JWKS over HTTPS only, so for
// the emulator's http:// issuer the JWKS is fetched here and handed to it (its documented cacheJwks).
const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
if (discovery.issuer !== issuer) throw new Error(`openid-configuration names issuer ${discovery.issuer}`);
const jwks = await (await fetch(discovery.jwks_uri)).json();
const verifier = JwtRsaVerifier.create({ issuer, audience: clientId, jwksUri: discovery.jwks_uri });
verifier.cacheJwks(jwks);
const claims = await verifier.verify(IdToken);
if (claims.token_use !== "id") throw new Error(`token_use is ${claims.token_use}`);
let forgedRefused = false;
try {
  await verifier.verify(IdToken.slice(0, -4) + (IdToken.endsWith("AAAA") ? "BBBB" : "AAAA"));
} catch {
  forgedRefused = true;
}
if (!forgedRefused) throw new Error("a token with a broken signature verified");
console.log(
  JSON.stringify({
    sub: claims.sub,
    username: claims["cognito:username"],
    iss: claims.iss,
    aud: claims.aud,
    getUser: me.Username,
  }),
);
