// Civitai's own app SDK (@civitai/app-sdk, pinned in package.json) against Buzzgate, as a
// third-party app built on it would run: every OAuth function it exports, with `baseUrl`
// set to the Buzzgate issuer. The person's part (sign-in and the consent page) is
// browser.mjs.
//
// Inputs (environment): BG_URL, BG_USER, BG_PASSWORD, BG_CLIENT_ID, BG_CLIENT_SECRET,
// BG_REDIRECT_URI, BG_BUZZ (the user's yellow balance). Prints one line per step and exits
// non-zero at the first failure with "civitai sdk: <step>: <what>". Run it through run.sh.

import {
  OAuthError,
  bitmaskFromScopes,
  buildAuthorizeUrl,
  exchangeCode,
  fetchBuzzAccount,
  fetchMe,
  generatePkce,
  generateState,
  refreshToken,
  revokeToken,
} from '@civitai/app-sdk';

import { Browser, env as envOf, fail as failOf } from './browser.mjs';

const CHECK = 'civitai sdk';
const env = (name) => envOf(CHECK, name);
const fail = (step, what) => failOf(CHECK, step, what);
const ok = (step, detail = '') => console.log(`ok   ${step}${detail ? `: ${detail}` : ''}`);

function check(step, cond, what) {
  if (!cond) fail(step, what);
}

const BASE = env('BG_URL');
const CLIENT_ID = env('BG_CLIENT_ID');
const CLIENT_SECRET = env('BG_CLIENT_SECRET');
const REDIRECT_URI = env('BG_REDIRECT_URI');
const USER = env('BG_USER');
const PASSWORD = env('BG_PASSWORD');
const BUZZ = Number(env('BG_BUZZ'));

// ----- the flow ------------------------------------------------------------------------------

const scope = bitmaskFromScopes(['UserRead', 'BuzzRead', 'AIServicesWrite']);
const { verifier, challenge } = generatePkce();
const state = generateState();
const authorizeUrl = buildAuthorizeUrl({
  baseUrl: BASE,
  clientId: CLIENT_ID,
  redirectUri: REDIRECT_URI,
  scope,
  state,
  codeChallenge: challenge,
});
check('buildAuthorizeUrl', authorizeUrl.startsWith(`${BASE}/api/auth/oauth/authorize?`), authorizeUrl);
ok('buildAuthorizeUrl', `scope ${scope}`);

// Not signed in: the authorize URL sends the browser to the login page, back, and through
// the consent page.
const callback = await new Browser(BASE, CHECK).authorize(authorizeUrl, USER, PASSWORD);
check('approve', `${callback.origin}${callback.pathname}` === REDIRECT_URI, callback.href);
check('approve', callback.searchParams.get('state') === state, 'state comes back');
check('approve', callback.searchParams.get('iss') === BASE, 'iss (RFC 9207)');
const code = callback.searchParams.get('code');
ok('consent', 'approved; code received');

const tokens = await exchangeCode({
  baseUrl: BASE,
  clientId: CLIENT_ID,
  clientSecret: CLIENT_SECRET,
  redirectUri: REDIRECT_URI,
  code,
  codeVerifier: verifier,
});
check('exchangeCode', tokens.access_token?.startsWith('civitai_'), JSON.stringify(tokens));
check('exchangeCode', tokens.refresh_token?.startsWith('civitai_'), 'a refresh token');
check('exchangeCode', tokens.scope === scope, `scope ${tokens.scope} (asked ${scope})`);
check('exchangeCode', tokens.expires_at > Date.now() + 3500 * 1000, 'expires in an hour');
ok('exchangeCode', `scope ${tokens.scope}`);

const me = await fetchMe({ baseUrl: BASE, accessToken: tokens.access_token });
check('fetchMe', me.username === USER, JSON.stringify(me));
check('fetchMe', me.subject?.type === 'oauth' && me.subject?.id === CLIENT_ID, JSON.stringify(me.subject));
check('fetchMe', me.tokenScope === scope, `tokenScope ${me.tokenScope}`);
ok('fetchMe', `${me.username} (id ${me.id})`);

const refreshed = await refreshToken({
  baseUrl: BASE,
  clientId: CLIENT_ID,
  clientSecret: CLIENT_SECRET,
  refreshToken: tokens.refresh_token,
});
check('refreshToken', refreshed.access_token !== tokens.access_token, 'a new access token');
check('refreshToken', refreshed.refresh_token !== tokens.refresh_token, 'rotated');
check('refreshToken', refreshed.scope === scope, `scope ${refreshed.scope}`);
ok('refreshToken', 'rotated');

const accounts = await fetchBuzzAccount({ baseUrl: BASE, accessToken: refreshed.access_token });
check('fetchBuzzAccount', Array.isArray(accounts) && accounts.length >= 1, JSON.stringify(accounts));
const yellow = accounts.find((a) => a.accountType === 'yellow');
check('fetchBuzzAccount', yellow, `no yellow account in ${JSON.stringify(accounts)}`);
check('fetchBuzzAccount', yellow.id === me.id, `id ${yellow.id} is the user's (${me.id})`);
check('fetchBuzzAccount', yellow.balance === BUZZ, `balance ${yellow.balance}, expected ${BUZZ}`);
check('fetchBuzzAccount', yellow.lifetimeBalance === BUZZ, `lifetimeBalance ${yellow.lifetimeBalance}`);
ok('fetchBuzzAccount', `yellow ${yellow.balance} (lifetime ${yellow.lifetimeBalance})`);

await revokeToken({
  baseUrl: BASE,
  clientId: CLIENT_ID,
  clientSecret: CLIENT_SECRET,
  token: refreshed.refresh_token,
});
try {
  await fetchMe({ baseUrl: BASE, accessToken: refreshed.access_token });
  fail('revokeToken', 'the access token still works after its refresh token was revoked');
} catch (e) {
  check('revokeToken', e instanceof OAuthError && e.status === 401, `expected a 401 OAuthError, got ${e}`);
}
try {
  await refreshToken({
    baseUrl: BASE,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    refreshToken: refreshed.refresh_token,
  });
  fail('revokeToken', 'the revoked refresh token still refreshes');
} catch (e) {
  check('revokeToken', e instanceof OAuthError && e.status === 400 && e.body?.error === 'invalid_grant', `${e} ${JSON.stringify(e.body)}`);
}
ok('revokeToken', 'the whole family is dead');
console.log('civitai sdk: every OAuth function of @civitai/app-sdk 0.14.0 works against Buzzgate');
