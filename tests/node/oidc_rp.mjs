// "Sign in with Buzzgate" through a standard OpenID Connect relying-party library:
// openid-client (pinned in package.json), the certified Node.js RP, does discovery, the
// authorization code flow with PKCE and `scope=openid profile email`, validates the id_token
// (ES256 signature from the JWKS, iss, aud, exp, iat, the RFC 9207 `iss` of the response), and
// reads userinfo for the same subject. The person's part is browser.mjs.
//
// Inputs (environment): BG_URL, BG_USER, BG_PASSWORD, BG_CLIENT_ID, BG_CLIENT_SECRET,
// BG_REDIRECT_URI. Prints one line per step; exits non-zero at the first failure with
// "oidc rp: <step>: <what>". Run it through run.sh.

import * as client from 'openid-client';

import { Browser, env as envOf, fail as failOf } from './browser.mjs';

const CHECK = 'oidc rp';
const env = (name) => envOf(CHECK, name);
const fail = (step, what) => failOf(CHECK, step, what);
const ok = (step, detail = '') => console.log(`ok   ${step}${detail ? `: ${detail}` : ''}`);
const check = (step, cond, what) => cond || fail(step, what);

const BASE = env('BG_URL');
const REDIRECT_URI = env('BG_REDIRECT_URI');
const USER = env('BG_USER');

async function attempt(step, work) {
  try {
    return await work();
  } catch (e) {
    fail(step, `${e?.name}: ${e?.message} ${e?.cause ? JSON.stringify(e.cause) : ''}`);
  }
}

// The issuer is plain http on loopback in this check; a real deployment is https.
const insecure = { execute: [client.allowInsecureRequests] };
const config = await attempt('discovery', () =>
  client.discovery(new URL(BASE), env('BG_CLIENT_ID'), env('BG_CLIENT_SECRET'), undefined, insecure),
);
const meta = config.serverMetadata();
check('discovery', meta.issuer === BASE, `issuer ${meta.issuer}`);
for (const s of ['openid', 'profile', 'email', 'offline_access']) {
  check('discovery', meta.scopes_supported?.includes(s), `scopes_supported lacks ${s}`);
}
ok('discovery', `${meta.issuer}, id_token ${meta.id_token_signing_alg_values_supported}`);

const verifier = client.randomPKCECodeVerifier();
const challenge = await client.calculatePKCECodeChallenge(verifier);
const state = client.randomState();
const nonce = client.randomNonce();
const url = client.buildAuthorizationUrl(config, {
  redirect_uri: REDIRECT_URI,
  scope: 'openid profile email',
  code_challenge: challenge,
  code_challenge_method: 'S256',
  state,
  nonce,
});
const callback = await new Browser(BASE, CHECK).authorize(url.href, USER, env('BG_PASSWORD'));
ok('authorize', 'signed in and approved');

const tokens = await attempt('token', () =>
  client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  }),
);
const claims = tokens.claims();
check('id_token', claims, 'no id_token');
check('id_token', claims.iss === BASE && claims.aud === env('BG_CLIENT_ID'), JSON.stringify(claims));
check('id_token', claims.nonce === nonce, 'nonce');
check('id_token', claims.preferred_username === USER && claims.email === 'alice@example.com', JSON.stringify(claims));
check('id_token', typeof claims.auth_time === 'number' && claims.auth_time <= claims.iat, 'auth_time');
ok('id_token', `validated (ES256, iss, aud, exp, nonce): sub ${claims.sub}`);

const info = await attempt('userinfo', () =>
  client.fetchUserInfo(config, tokens.access_token, claims.sub),
);
check('userinfo', info.sub === claims.sub, JSON.stringify(info));
check('userinfo', info.preferred_username === USER && info.name === USER, JSON.stringify(info));
check('userinfo', info.email === 'alice@example.com' && info.email_verified === true, JSON.stringify(info));
ok('userinfo', `${info.preferred_username} <${info.email}>`);

// Without a nonce: `openid` alone asks for the id_token.
const v2 = client.randomPKCECodeVerifier();
const s2 = client.randomState();
const url2 = client.buildAuthorizationUrl(config, {
  redirect_uri: REDIRECT_URI,
  scope: 'openid email',
  code_challenge: await client.calculatePKCECodeChallenge(v2),
  code_challenge_method: 'S256',
  state: s2,
});
const back = await new Browser(BASE, CHECK).authorize(url2.href, USER, env('BG_PASSWORD'));
const t2 = await attempt('token (no nonce)', () =>
  client.authorizationCodeGrant(config, back, { pkceCodeVerifier: v2, expectedState: s2, idTokenExpected: true }),
);
const c2 = t2.claims();
check('id_token (no nonce)', c2 && c2.email && !c2.preferred_username, JSON.stringify(c2));
ok('id_token (no nonce)', 'openid alone asks for it; email released, profile not');

const refreshed = await attempt('refresh', () => client.refreshTokenGrant(config, tokens.refresh_token));
check('refresh', refreshed.access_token && refreshed.access_token !== tokens.access_token, 'a new access token');
ok('refresh', 'rotated');
console.log('oidc rp: openid-client signs a user in with openid profile email');
