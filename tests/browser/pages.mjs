// Buzzgate's pages in headless Chromium, as a person (and a screen reader) uses them.
//
// Every element is found by its role and accessible name, or by its label (SPEC 15: the names
// are the contract, case does not matter). Each check saves full-page screenshots of its key
// pages at 390 px and 1280 px wide and audits each of them: no horizontal overflow at 390 px,
// every visible form control has an accessible name, exactly one h1 and no heading level
// without its parent level before it.
//
// Started by tests/browser/run.sh, which serves the binary and exports:
//   BG_URL, BG_USER/BG_PASSWORD (a normal user), BG_OTHER_USER/BG_OTHER_PASSWORD (another
//   normal user), BG_ADMIN_USER/BG_ADMIN_PASSWORD (an admin), BG_CLIENT_ID/BG_CLIENT_SECRET (a
//   confidential app with the device grant), CHROMIUM (the browser) and BROWSER_SHOTS (where
//   screenshots go). BROWSER_KEEP_GOING=1 runs every check even after a failure (still exits 1);
//   BROWSER_ONLY=3,4 runs only the checks with those numbers (for debugging).

import { chromium } from 'playwright-core';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

// ---- configuration ---------------------------------------------------------------------------

function env(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`browser checks: environment variable ${name} is not set`);
    process.exit(1);
  }
  return v;
}

const BASE = env('BG_URL').replace(/\/$/, '');
const USER = env('BG_USER');
const PASSWORD = env('BG_PASSWORD');
const OTHER = env('BG_OTHER_USER');
const OTHER_PASSWORD = env('BG_OTHER_PASSWORD');
const ADMIN = env('BG_ADMIN_USER');
const ADMIN_PASSWORD = env('BG_ADMIN_PASSWORD');
const DEVICE_CLIENT_ID = env('BG_CLIENT_ID');
const DEVICE_CLIENT_SECRET = env('BG_CLIENT_SECRET');
const DEVICE_CLIENT_NAME = process.env.BG_CLIENT_NAME || 'Browser checks';
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.resolve(process.env.BROWSER_SHOTS || 'target/browser-shots');
const KEEP_GOING = process.env.BROWSER_KEEP_GOING === '1';
const ONLY = (process.env.BROWSER_ONLY || '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean)
  .map(Number);

const WIDE = { width: 1280, height: 900 };
const NARROW = { width: 390, height: 844 };
const TIMEOUT = 8000;

// ---- names -----------------------------------------------------------------------------------

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/// The whole accessible name or label text, case-insensitive, whitespace-tolerant.
function N(text) {
  return new RegExp(`^\\s*${escapeRe(text).replace(/\s+/g, '\\s+')}\\s*$`, 'i');
}

// ---- failures --------------------------------------------------------------------------------

class CheckFailure extends Error {}

/// A failure that stops the check.
function expect(cond, what) {
  if (!cond) throw new CheckFailure(what);
}

/// A failure that fails the check but lets it go on (what it shows is still usable), so that one
/// run reports every mismatch of a check.
let currentT = null;
function soft(cond, what) {
  if (cond) return;
  let at = '';
  try {
    if (currentT.page && !currentT.page.isClosed()) at = ` [page ${currentT.page.url()}]`;
  } catch {}
  currentT.soft.push(`${currentT.stepName}: ${String(what).replace(/\s*\n\s*/g, ' | ')}${at}`);
}

function short(s, n = 1500) {
  s = String(s);
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

// ---- the run's state, shared by the checks in order -------------------------------------------

const state = {
  browser: null,
  alice: null, // { context, page } of BG_USER
  callbacks: [], // URLs the callback listener received
  redirectUri: '',
  app: null, // { name, clientId, secret }
  readApp: null, // the "Read Only" app of the Deny check
  refreshToken: '',
  sessionSetCookie: [], // Set-Cookie lines of the sign-in response
};

// ---- the test driver -------------------------------------------------------------------------

class T {
  constructor(index, name) {
    this.index = index;
    this.name = name;
    this.slug = `${String(index).padStart(2, '0')}-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}`;
    this.stepName = 'start';
    this.page = null; // the page shown on failure
    this.soft = []; // soft failures, each "step: what"
    this.contexts = []; // browser contexts to close once the check is reported
  }

  step(name, page) {
    this.stepName = name;
    if (page) this.page = page;
  }

  /// A locator that must be visible.
  async must(locator, what) {
    try {
      await locator.first().waitFor({ state: 'visible', timeout: TIMEOUT });
    } catch {
      let count = '?';
      try {
        count = await locator.count();
      } catch {}
      throw new CheckFailure(`expected ${what} (found ${count} matching, none visible)`);
    }
    const count = await locator.count();
    expect(count === 1, `expected exactly one ${what}, found ${count}`);
    return locator;
  }

  /// A locator that must be absent (or hidden).
  async mustNot(locator, what) {
    const n = await locator.count();
    for (let i = 0; i < n; i++) {
      if (await locator.nth(i).isVisible()) throw new CheckFailure(`expected no ${what}, but it is there`);
    }
  }

  /// Screenshots of a key page at 390 px and 1280 px, and the page audits.
  async shot(page, stepName, { audit = true } = {}) {
    const saved = this.stepName;
    this.step(`${saved} (page audit "${stepName}")`, page);
    const base = path.join(SHOTS, `${this.slug}-${stepName}`);
    await page.setViewportSize(NARROW);
    await page.waitForTimeout(50);
    await page.screenshot({ path: `${base}-390.png`, fullPage: true });
    let overflow = null;
    if (audit) {
      overflow = await page.evaluate(() => ({
        scrollWidth: document.documentElement.scrollWidth,
        widest: (() => {
          const over = [...document.querySelectorAll('body *')].filter(
            (el) => el.getBoundingClientRect().right > 391 || el.scrollWidth > el.clientWidth + 1,
          );
          // The innermost ones: those with no overflowing element inside them.
          return over.filter((el) => !over.some((o) => o !== el && el.contains(o)));
        })()
          .slice(0, 5)
          .map((el) => `<${el.tagName.toLowerCase()}${el.id ? ` id=${el.id}` : ''}${el.className ? ` class="${el.className}"` : ''}> right=${Math.round(el.getBoundingClientRect().right)}`),
      }));
    }
    await page.setViewportSize(WIDE);
    await page.waitForTimeout(50);
    await page.screenshot({ path: `${base}-1280.png`, fullPage: true });
    if (audit) {
      soft(
        overflow.scrollWidth <= NARROW.width + 1,
        `horizontal overflow at 390 px on ${page.url()}: scrollWidth ${overflow.scrollWidth}; widest: ${overflow.widest.join(', ')}`,
      );
      const unnamed = await page.locator('input, select, textarea').evaluateAll((els) =>
        els
          .filter((el) => {
            const type = (el.getAttribute('type') || '').toLowerCase();
            if (['hidden', 'submit', 'button', 'reset', 'image'].includes(type)) return false;
            const st = getComputedStyle(el);
            return el.getClientRects().length > 0 && st.visibility !== 'hidden' && st.display !== 'none';
          })
          .filter((el) => {
            let name = el.getAttribute('aria-label') || '';
            for (const l of el.labels || []) name += l.textContent || '';
            for (const id of (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean)) {
              name += document.getElementById(id)?.textContent || '';
            }
            return !name.trim();
          })
          .map((el) => el.outerHTML.slice(0, 160)),
      );
      soft(unnamed.length === 0, `form controls without an accessible name on ${page.url()}: ${unnamed.join(' ; ')}`);
      const headings = await page.locator('h1, h2, h3, h4, h5, h6').evaluateAll((els) =>
        els.map((el) => ({ level: Number(el.tagName[1]), text: (el.textContent || '').trim().slice(0, 60) })),
      );
      const h1s = headings.filter((h) => h.level === 1);
      soft(
        h1s.length === 1,
        `expected exactly one h1 on ${page.url()}, found ${h1s.length}: ${h1s.map((h) => h.text).join(' | ')}`,
      );
      const seen = new Set();
      for (const h of headings) {
        soft(
          h.level === 1 || seen.has(h.level - 1),
          `heading order on ${page.url()}: h${h.level} "${h.text}" has no h${h.level - 1} before it (outline: ${headings.map((x) => `h${x.level} ${x.text}`).join(' / ')})`,
        );
        seen.add(h.level);
      }
    }
    this.step(saved, page);
  }
}

const checks = [];
function check(name, fn) {
  checks.push({ name, fn });
}

// ---- page helpers ----------------------------------------------------------------------------

async function newSession(t) {
  const context = await state.browser.newContext({ viewport: WIDE, baseURL: BASE });
  context.setDefaultTimeout(TIMEOUT);
  context.setDefaultNavigationTimeout(15000);
  const page = await context.newPage();
  watchHeaders(page);
  if (t) t.contexts.push(context);
  return { context, page };
}

/// Clicks something that submits a form or follows a link, and waits for the next page.
async function go(page, locator) {
  const nav = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame(), timeout: 15000 });
  await locator.click();
  await nav;
  await page.waitForLoadState('load');
}

/// Picks the option of a select whose label is `text` (case-insensitive), or matches `re`.
async function choose(select, textOrRe) {
  const re = typeof textOrRe === 'string' ? N(textOrRe) : textOrRe;
  const options = await select.evaluate((s) => [...s.options].map((o) => ({ label: o.label, value: o.value })));
  const hit = options.find((o) => re.test(o.label)) || options.find((o) => re.test(o.value));
  if (!hit) throw new CheckFailure(`the select has no option ${re}; it offers: ${options.map((o) => o.label).join(' | ')}`);
  await select.selectOption({ value: hit.value });
  return hit;
}

async function selectedLabel(select) {
  return select.evaluate((s) => (s.selectedOptions[0] ? s.selectedOptions[0].label : ''));
}

async function optionLabels(select) {
  return select.evaluate((s) => [...s.options].map((o) => o.label.trim()));
}

/// The value of a field or the text of an element (a readonly input or a `<code>`).
async function valueOf(locator) {
  return locator.evaluate((el) =>
    ('value' in el && typeof el.value === 'string' && el.tagName !== 'BUTTON' ? el.value : el.textContent || '').trim(),
  );
}

async function bodyText(page) {
  return page.evaluate(() => document.body.innerText);
}

async function poll(fn, what, ms = 3000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) throw new CheckFailure(what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function pathOf(page) {
  return new URL(page.url()).pathname;
}

function region(page, name) {
  return page.getByRole('region', { name: N(name) });
}

/// The section headed `name` (h2): its region when it has one, else the `<section>` holding the
/// heading (the h2 is found by role and name either way).
async function section(t, page, name) {
  const heading = page.getByRole('heading', { level: 2, name: N(name) });
  await t.must(heading, `an h2 heading "${name}"`);
  const r = region(page, name);
  if ((await r.count()) === 1) return r;
  notes.add(`${pathOf(page)}: the section headed "${name}" is not a region with that name (a <section> with aria-labelledby its h2 would be)`);
  return page.locator('section').filter({ has: heading });
}

/// Articles whose accessible name starts with `name` (for absence checks).
function articleLoose(scope, name) {
  return scope.getByRole('article', { name: new RegExp(`^\\s*${escapeRe(name)}\\b`, 'i') });
}

/// The article labelled `name`. One whose label only starts with the name (e.g. a badge inside
/// its heading) is a soft failure, and is used.
async function article(t, scope, name) {
  const exact = scope.getByRole('article', { name: N(name) });
  try {
    await exact.first().waitFor({ state: 'visible', timeout: 2000 });
  } catch {}
  if ((await exact.count()) > 0) return t.must(exact, `an article labelled "${name}"`);
  const loose = articleLoose(scope, name);
  await t.must(loose, `an article labelled "${name}"`);
  const snap = await loose.ariaSnapshot().catch(() => '');
  const label = (snap.split('\n')[0].match(/article "([^"]*)"/) || [])[1];
  soft(false, `the article of "${name}" is labelled "${label ?? '?'}", not by the name alone`);
  return loose;
}

/// The heading named `text`; one whose name only starts with it (e.g. a badge inside it) is a
/// soft failure, and is used.
async function headingNamed(t, scope, text, what = `a heading "${text}"`) {
  const exact = scope.getByRole('heading', { name: N(text) });
  try {
    await exact.first().waitFor({ state: 'visible', timeout: 2000 });
  } catch {}
  if ((await exact.count()) > 0) return t.must(exact, what);
  const loose = scope.getByRole('heading', { name: new RegExp(`^\\s*${escapeRe(text)}\\b`, 'i') });
  await t.must(loose, what);
  soft(false, `the heading is "${(await loose.first().innerText()).trim()}", not "${text}"`);
  return loose;
}

/// A link or a button with this name.
function action(scope, name) {
  return scope.getByRole('link', { name: N(name) }).or(scope.getByRole('button', { name: N(name) }));
}

/// The client ID on a created-app page: the element labelled "Client ID", else the text after
/// the words "Client ID" (noted, as the secret beside it is labelled).
async function clientIdOn(t, page) {
  const labelled = page.getByLabel(N('Client ID'));
  if ((await labelled.count()) === 1) return valueOf(labelled);
  const m = (await bodyText(page)).match(/client id\s*:?\s*([A-Za-z0-9_.~-]{6,})/i);
  expect(m, 'the page does not show a "Client ID"');
  notes.add(`${pathOf(page)}: the client ID is shown but no element is labelled "Client ID"`);
  return m[1];
}

async function signIn(t, page, username, password) {
  t.step(`sign in as ${username}`, page);
  await page.goto('/login');
  await (await t.must(page.getByLabel(N('Username')), 'a field labelled "Username"')).fill(username);
  await (await t.must(page.getByLabel(N('Password')), 'a field labelled "Password"')).fill(password);
  await go(page, await t.must(page.getByRole('button', { name: N('Sign in') }), 'a button "Sign in"'));
  await t.mustNot(page.getByRole('alert'), `error alert after signing in as ${username}`);
  expect(pathOf(page) !== '/login', `still on /login after signing in as ${username}`);
}

/// The header of a signed-in page: the username and a "Sign out" button.
async function signedInHeader(t, page, username) {
  const banner = await t.must(page.getByRole('banner'), 'a page header (role banner)');
  const text = await banner.innerText();
  soft(text.toLowerCase().includes(username.toLowerCase()), `the header does not show the username "${username}": ${short(text, 300)}`);
  await t.must(banner.getByRole('button', { name: N('Sign out') }), 'a button "Sign out" in the header');
}

// ---- OAuth helpers ---------------------------------------------------------------------------

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

function pkce() {
  const verifier = b64url(crypto.randomBytes(32));
  const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
  return { verifier, challenge };
}

function authorizeUrl(clientId, scope, challenge, stateValue) {
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: state.redirectUri,
    scope,
    state: stateValue,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  return `${BASE}/api/auth/oauth/authorize?${q}`;
}

async function postForm(pathname, fields, headers = {}) {
  const res = await fetch(`${BASE}${pathname}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json, text };
}

const token = (fields) => postForm('/api/auth/oauth/token', fields);

function basic(clientId, secret) {
  return { authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}` };
}

/// Whether a client secret authenticates, whatever grants the app registered: revoking an
/// unknown token is 200 for an authenticated client (RFC 7009), and a failed HTTP Basic
/// authentication is 401 (SPEC 3.2).
async function secretWorks(clientId, secret) {
  const r = await postForm('/api/auth/oauth/revoke', { token: 'not-a-token' }, basic(clientId, secret));
  return r.status;
}

async function cookieHeader(context) {
  return (await context.cookies(BASE)).map((c) => `${c.name}=${c.value}`).join('; ');
}

/// The callback URL the page landed on, with its query.
async function landedOnCallback(t, page) {
  await poll(async () => page.url().startsWith(state.redirectUri), `expected to land on ${state.redirectUri}, but the page is ${page.url()}`, 10000);
  return new URL(page.url());
}

function startCallbackListener() {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      state.callbacks.push(req.url);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><html lang="en"><title>Callback</title><h1>Callback received</h1></html>');
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

const notes = new Set();

/// What is wrong with a page's security headers (SPEC 3.1, 15; the brief of tests/browser).
function headerProblems(headers) {
  const out = [];
  const csp = headers['content-security-policy'] || '';
  if (!csp) return ['no Content-Security-Policy'];
  const directives = Object.fromEntries(
    csp.split(';').map((d) => d.trim()).filter(Boolean).map((d) => {
      const [k, ...v] = d.split(/\s+/);
      return [k.toLowerCase(), v.join(' ')];
    }),
  );
  if (!('form-action' in directives)) out.push(`the CSP has no form-action: ${csp}`);
  if (!/'none'/.test(directives['frame-ancestors'] || '')) out.push(`the CSP has no frame-ancestors 'none': ${csp}`);
  const scripts = directives['script-src'] ?? directives['default-src'] ?? '';
  if (/'unsafe-inline'/.test(scripts)) out.push(`script-src allows 'unsafe-inline': ${csp}`);
  if ((headers['x-frame-options'] || '').toUpperCase() !== 'DENY') out.push(`X-Frame-Options is "${headers['x-frame-options'] ?? ''}", expected DENY`);
  return out;
}

/// Every HTML page a check's browser opens on Buzzgate is checked for its security headers.
const headerIssues = new Set();
let headerPages = 0;
function watchHeaders(page) {
  page.on('response', async (r) => {
    try {
      if (!r.request().isNavigationRequest() || r.frame() !== page.mainFrame() || !r.url().startsWith(BASE)) return;
      if (r.status() >= 300 && r.status() < 400) return;
      const headers = await r.allHeaders();
      if (!/text\/html/i.test(headers['content-type'] || '')) return;
      headerPages++;
      for (const p of headerProblems(headers)) {
        const key = `${new URL(r.url()).pathname}: ${p}`;
        if (headerIssues.has(key)) continue;
        headerIssues.add(key);
        soft(false, `security headers of ${r.request().method()} ${key}`);
      }
    } catch {}
  });
}

// ---- the checks, in order --------------------------------------------------------------------

check('sign-in and sign-up', async (t) => {
  state.alice = await newSession();
  const { page } = state.alice;
  t.step('login page', page);
  await page.goto('/login');
  await t.must(page.getByLabel(N('Username')), 'a field labelled "Username"');
  await t.must(page.getByLabel(N('Password')), 'a field labelled "Password"');
  await t.must(page.getByRole('button', { name: N('Sign in') }), 'a button "Sign in"');
  await t.shot(page, 'login');

  t.step('wrong password');
  await page.getByLabel(N('Username')).fill(USER);
  await page.getByLabel(N('Password')).fill(`${PASSWORD}-wrong`);
  await go(page, page.getByRole('button', { name: N('Sign in') }));
  const alert = await t.must(page.getByRole('alert'), 'an error with role=alert');
  const said = await alert.innerText();
  soft(
    /username/i.test(said) && /password/i.test(said) && /(wrong|incorrect|invalid|not match|doesn.t match)/i.test(said),
    `the alert should say the username or password is wrong; it says: ${short(said, 300)}`,
  );
  await t.shot(page, 'login-error');

  t.step('sign in (and capture the session cookie)');
  await page.getByLabel(N('Username')).fill(USER);
  await page.getByLabel(N('Password')).fill(PASSWORD);
  const loginResponse = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/login');
  await go(page, page.getByRole('button', { name: N('Sign in') }));
  const resp = await loginResponse;
  state.sessionSetCookie = (await resp.headersArray()).filter((h) => h.name.toLowerCase() === 'set-cookie').map((h) => h.value);
  expect(pathOf(page) !== '/login', `still on /login after signing in with the right password: ${page.url()}`);

  t.step('account page');
  await page.goto('/account');
  soft(pathOf(page) === '/account', `GET /account ended at ${page.url()}`);
  await t.must(page.getByRole('heading', { level: 1, name: N('Your account') }), 'an h1 "Your account"');
  for (const h of ['OAuth Apps', 'Connected Apps', 'API keys']) {
    await t.must(page.getByRole('heading', { level: 2, name: N(h) }), `an h2 "${h}"`);
  }
  await signedInHeader(t, page, USER);
  await t.shot(page, 'account');

  t.step('sign-up');
  const s = await newSession(t);
  t.page = s.page;
  await s.page.goto('/login');
  await go(s.page, await t.must(s.page.getByRole('link', { name: N('Create an account') }), 'a link "Create an account" on /login'));
  soft(pathOf(s.page) === '/signup', `the link "Create an account" led to ${s.page.url()}, expected /signup`);
  const newUser = `dana${crypto.randomBytes(3).toString('hex')}`;
  await (await t.must(s.page.getByLabel(N('Username')), 'a field "Username"')).fill(newUser);
  await (await t.must(s.page.getByLabel(N('Email')), 'a field "Email"')).fill(`${newUser}@example.com`);
  await (await t.must(s.page.getByLabel(N('Password')), 'a field "Password"')).fill(`signup-${crypto.randomBytes(8).toString('hex')}`);
  await t.shot(s.page, 'signup');
  await go(s.page, await t.must(s.page.getByRole('button', { name: N('Create account') }), 'a button "Create account"'));
  await t.mustNot(s.page.getByRole('alert'), 'error alert after sign-up');
  soft(pathOf(s.page) === '/account', `after "Create account" the page is ${s.page.url()}, expected /account`);
  await signedInHeader(t, s.page, newUser);
  await t.shot(s.page, 'signed-up');
});

check('create an app, rotate its secret, edit it', async (t) => {
  const { page } = state.alice;
  t.step('open the form', page);
  await page.goto('/account');
  const apps = await section(t, page, 'OAuth Apps');
  await go(page, await t.must(action(apps, 'Create app'), 'a link "Create app" in OAuth Apps'));
  soft(pathOf(page) === '/account/apps/new', `"Create app" led to ${page.url()}, expected /account/apps/new`);
  await t.must(page.getByRole('heading', { level: 1 }), 'an h1');

  t.step('fill the form');
  const name = 'Pixel Studio';
  await (await t.must(page.getByLabel(N('App name')), 'a field "App name"')).fill(name);
  await (await t.must(page.getByLabel(N('Description')), 'a field "Description"')).fill('Makes pictures.');
  const redirects = await t.must(page.getByLabel(N('Redirect URIs')), 'a field "Redirect URIs"');
  expect((await redirects.evaluate((el) => el.tagName)) === 'TEXTAREA', '"Redirect URIs" should be a textarea (one per line)');
  await redirects.fill(state.redirectUri);

  t.step('permission grid');
  const preset = await t.must(page.getByLabel(N('Permission preset')), 'a select "Permission preset"');
  const offered = await optionLabels(preset);
  for (const o of ['Read Only', 'Creator', 'AI Services', 'Full Access', 'Custom']) {
    expect(offered.some((l) => N(o).test(l)), `"Permission preset" has no option "${o}": ${offered.join(' | ')}`);
  }
  const grid = await t.must(page.getByRole('table'), 'a permission table');
  for (const c of ['Read', 'Write', 'Delete']) {
    await t.must(grid.getByRole('columnheader', { name: N(c) }), `a column header "${c}"`);
  }
  for (const r of ['User', 'AI Services', 'Buzz']) {
    await t.must(grid.getByRole('rowheader', { name: N(r) }), `a row header "${r}"`);
  }
  await choose(preset, 'AI Services');
  const aiWrite = await t.must(page.getByRole('checkbox', { name: N('AI Services: Write') }), 'a checkbox "AI Services: Write"');
  await poll(() => aiWrite.isChecked(), 'choosing the preset "AI Services" did not tick "AI Services: Write" (the script should)');
  const modelsRead = await t.must(page.getByRole('checkbox', { name: N('Models: Read') }), 'a checkbox "Models: Read"');
  expect(!(await modelsRead.isChecked()), 'the preset "AI Services" ticked "Models: Read"');
  await modelsRead.check();
  await poll(async () => /custom/i.test(await selectedLabel(preset)), 'ticking "Models: Read" did not switch "Permission preset" to Custom');
  await modelsRead.uncheck();
  await choose(preset, 'AI Services');
  await poll(() => aiWrite.isChecked(), 'choosing "AI Services" again did not tick "AI Services: Write"');
  await t.must(page.getByRole('radio', { name: N('Browser / mobile app (public)') }), 'a radio "Browser / mobile app (public)"');
  await (await t.must(page.getByRole('radio', { name: N('Server app (confidential)') }), 'a radio "Server app (confidential)"')).check();
  // The app uses client_credentials below, so it registers that grant when the form offers it.
  const cc = page.getByRole('checkbox', { name: N('Client credentials') });
  if ((await cc.count()) === 1) {
    const code = page.getByRole('checkbox', { name: N('Authorization code') });
    soft((await code.count()) === 1 && (await code.isChecked()), 'the grant "Authorization code" is not offered ticked by default');
    await cc.check();
  } else {
    notes.add('/account/apps/new offers no checkbox "Client credentials"; client_credentials then depends on the server\'s default grants');
  }
  await t.shot(page, 'new-app');

  t.step('create');
  await go(page, await t.must(page.getByRole('button', { name: N('Create app') }), 'a submit button "Create app"'));
  await t.mustNot(page.getByRole('alert'), 'error alert after "Create app"');
  soft(/shown once/i.test(await bodyText(page)), 'the created page does not say "shown once"');
  const clientId = await clientIdOn(t, page);
  const secret = await valueOf(await t.must(page.getByLabel(N('Client secret')), 'the secret labelled "Client secret"'));
  expect(clientId.length > 4 && !/\s/.test(clientId), `client ID looks wrong: "${clientId}"`);
  expect(secret.length >= 20 && !/\s/.test(secret), `client secret looks wrong: "${secret}"`);
  state.app = { name, clientId, secret };
  await t.must(page.getByRole('link', { name: N('Back to your account') }), 'a link "Back to your account"');
  await t.shot(page, 'created');

  t.step('client_credentials with the secret');
  let r = await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret });
  soft(r.status === 200 && r.json?.access_token, `client_credentials with the new app's secret: ${r.status} ${short(r.text, 300)}`);
  expect((await secretWorks(clientId, secret)) === 200, 'the new secret does not authenticate the app at /api/auth/oauth/revoke');

  t.step('the app in the list');
  await go(page, page.getByRole('link', { name: N('Back to your account') }));
  soft(pathOf(page) === '/account', `"Back to your account" led to ${page.url()}`);
  const appsAgain = await section(t, page, 'OAuth Apps');
  const card = await article(t, appsAgain, name);
  await t.must(card.getByRole('heading', { level: 3, name: N(name) }), `an h3 "${name}" in the app's article`);
  const cardText = await card.innerText();
  expect(cardText.includes(clientId), `the app's article does not show its client ID ${clientId}: ${short(cardText, 400)}`);
  soft(/server app|confidential/i.test(cardText), `the app's article does not show its kind (server app): ${short(cardText, 400)}`);
  soft(/ai services/i.test(cardText), `the app's article does not summarise its scopes (AI Services): ${short(cardText, 400)}`);
  soft(/active tokens?/i.test(cardText) && /(consents?|users? connected)/i.test(cardText), `the app's article does not count its active tokens and consents: ${short(cardText, 400)}`);
  for (const b of ['Edit', 'Rotate secret', 'Delete']) {
    await t.must(action(card, b), `a button "${b}" in the app's article`);
  }
  await t.shot(page, 'account-with-app');

  t.step('rotate: confirmation page');
  await go(page, action(card, 'Rotate secret'));
  await t.must(page.getByRole('button', { name: N('Rotate secret') }), 'a confirming button "Rotate secret"');
  await t.must(page.getByRole('link', { name: N('Cancel') }), 'a link "Cancel"');
  soft(/secret/i.test(await bodyText(page)), 'the rotate confirmation page does not say what happens to the secret');
  await t.shot(page, 'rotate-confirm');
  t.step('rotate: new secret');
  await go(page, page.getByRole('button', { name: N('Rotate secret') }));
  await t.mustNot(page.getByRole('alert'), 'error alert after rotating');
  soft(/shown once/i.test(await bodyText(page)), 'the rotated-secret page does not say "shown once"');
  const newSecret = await valueOf(await t.must(page.getByLabel(N('Client secret')), 'the new secret labelled "Client secret"'));
  expect(newSecret && newSecret !== secret, `the rotated secret is empty or unchanged: "${newSecret}"`);
  await t.shot(page, 'rotated');
  state.app.secret = newSecret;

  t.step('old secret dead, new secret works');
  r = await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: newSecret });
  soft(r.status === 200 && r.json?.access_token, `client_credentials with the rotated secret: ${r.status} ${short(r.text, 300)}`);
  expect((await secretWorks(clientId, newSecret)) === 200, 'the rotated secret does not authenticate the app at /api/auth/oauth/revoke');
  expect((await secretWorks(clientId, secret)) === 401, 'the old secret still authenticates the app at /api/auth/oauth/revoke');
  r = await postForm('/api/auth/oauth/token', { grant_type: 'client_credentials' }, basic(clientId, secret));
  expect(r.status === 401 && r.json?.error === 'invalid_client', `client_credentials with the old secret in HTTP Basic should be 401 invalid_client: ${r.status} ${short(r.text, 300)}`);
  r = await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret });
  expect(r.json?.error === 'invalid_client', `client_credentials with the old secret in the form should be invalid_client: ${r.status} ${short(r.text, 300)}`);
  if (r.status !== 401) notes.add(`a failed client_secret_post authentication (the old secret in the form) is ${r.status} invalid_client; HTTP Basic gives 401`);

  t.step('edit');
  await page.goto('/account');
  await go(page, action(await article(t, await section(t, page, 'OAuth Apps'), name), 'Edit'));
  const appName = await t.must(page.getByLabel(N('App name')), 'a field "App name" on the edit form');
  expect((await appName.inputValue()) === name, `the edit form's "App name" is "${await appName.inputValue()}"`);
  await t.must(page.getByLabel(N('Redirect URIs')), 'a field "Redirect URIs" on the edit form');
  await t.must(page.getByLabel(N('Permission preset')), 'a select "Permission preset" on the edit form');
  await t.mustNot(page.getByRole('radio', { name: N('Server app (confidential)') }), 'kind radio on the edit form');
  await page.getByLabel(N('Description')).fill('Makes pictures with AI.');
  await t.shot(page, 'edit');
  await go(page, await t.must(page.getByRole('button', { name: N('Save') }), 'a button "Save"'));
  await t.mustNot(page.getByRole('alert'), 'error alert after saving the app');
  t.step('edit saved');
  await page.goto('/account');
  await go(page, action(await article(t, await section(t, page, 'OAuth Apps'), name), 'Edit'));
  const desc = await page.getByLabel(N('Description')).inputValue();
  expect(desc === 'Makes pictures with AI.', `the description did not save: "${desc}"`);
});

check('consent with a Buzz cap', async (t) => {
  const { page } = state.alice;
  const { verifier, challenge } = pkce();
  const st = `s1-${crypto.randomBytes(6).toString('hex')}`;
  t.step('consent page', page);
  await page.goto(authorizeUrl(state.app.clientId, 'AIServices', challenge, st));
  await t.must(page.getByRole('heading', { name: N(`Authorize ${state.app.name}`) }), `a heading "Authorize ${state.app.name}"`);
  const items = await page.getByRole('listitem').count();
  expect(items >= 4, `expected one list item per scope (UserRead, AIServicesRead, AIServicesWrite, BuzzRead), found ${items}`);
  const text = await bodyText(page);
  soft(text.includes('127.0.0.1'), 'the consent page does not show the redirect host 127.0.0.1');
  soft(/not verified/i.test(text), 'the consent page of an unverified app has no note saying "not verified"');
  // Every redirect URI of this app is loopback: the page warns (SPEC 14).
  soft(/program on this computer/i.test(text), 'the consent page of an app whose every redirect URI is loopback does not warn that any program on this computer could receive the access');
  const remember = await t.must(page.getByRole('checkbox', { name: N('Remember my decision') }), 'a checkbox "Remember my decision"');
  expect(await remember.isChecked(), '"Remember my decision" is not checked by default');
  const cap = await t.must(page.getByRole('checkbox', { name: N('Limit Buzz spending') }), 'a checkbox "Limit Buzz spending"');
  expect(await cap.isChecked(), '"Limit Buzz spending" is not checked by default');
  const limit = await t.must(page.getByLabel(N('Buzz limit')), 'a number field "Buzz limit"');
  expect((await limit.getAttribute('type')) === 'number', `"Buzz limit" is type=${await limit.getAttribute('type')}, expected number`);
  expect((await limit.inputValue()) === '5000', `"Buzz limit" defaults to "${await limit.inputValue()}", expected 5000`);
  const period = await t.must(page.getByLabel(N('Period')), 'a select "Period"');
  expect(N('per 24 hours').test(await selectedLabel(period)), `"Period" defaults to "${await selectedLabel(period)}"`);
  const periods = await optionLabels(period);
  for (const p of ['per 24 hours', 'per 7 days', 'per 30 days']) {
    expect(periods.some((l) => N(p).test(l)), `"Period" has no option "${p}": ${periods.join(' | ')}`);
  }
  await t.must(page.getByRole('button', { name: N('Approve') }), 'a button "Approve"');
  await t.must(page.getByRole('button', { name: N('Deny') }), 'a button "Deny"');
  await t.shot(page, 'consent');

  t.step('approve with 2500 per 7 days');
  await choose(period, 'per 7 days');
  await limit.fill('2500');
  await go(page, page.getByRole('button', { name: N('Approve') }));
  const cb = await landedOnCallback(t, page);
  const code = cb.searchParams.get('code');
  expect(code, `no code in ${cb}`);
  expect(cb.searchParams.get('state') === st, `state came back as ${cb.searchParams.get('state')}, sent ${st}`);
  expect(cb.searchParams.get('iss'), `no iss (RFC 9207) in ${cb}`);

  t.step('token exchange');
  let r = await token({
    grant_type: 'authorization_code',
    code,
    redirect_uri: state.redirectUri,
    code_verifier: verifier,
    client_id: state.app.clientId,
    client_secret: state.app.secret,
  });
  expect(r.status === 200 && r.json?.access_token && r.json?.refresh_token, `code exchange: ${r.status} ${short(r.text, 300)}`);
  t.step('refresh');
  r = await token({ grant_type: 'refresh_token', refresh_token: r.json.refresh_token, client_id: state.app.clientId, client_secret: state.app.secret });
  expect(r.status === 200 && r.json?.refresh_token, `refresh: ${r.status} ${short(r.text, 300)}`);
  state.refreshToken = r.json.refresh_token;
});

check('remembered consent skips the page', async (t) => {
  const { page } = state.alice;
  const { challenge } = pkce();
  const st = `s2-${crypto.randomBytes(6).toString('hex')}`;
  t.step('authorize again', page);
  await page.goto(authorizeUrl(state.app.clientId, 'AIServices', challenge, st));
  const cb = await landedOnCallback(t, page);
  expect(cb.searchParams.get('code'), `no code in ${cb}`);
  expect(cb.searchParams.get('state') === st, `state came back as ${cb.searchParams.get('state')}`);
  await t.shot(page, 'redirected', { audit: false });
});

check('deny (an app made without JavaScript)', async (t) => {
  const { page } = state.alice;
  const name = 'Read Notes';
  {
    // Without JavaScript the boxes do not follow the preset: the server applies the preset.
    t.step('create a Read Only app with JavaScript off');
    const context = await state.browser.newContext({ viewport: WIDE, baseURL: BASE, javaScriptEnabled: false });
    t.contexts.push(context);
    context.setDefaultTimeout(TIMEOUT);
    const nojs = await context.newPage();
    watchHeaders(nojs);
    await signIn(t, nojs, USER, PASSWORD);
    t.step('create a Read Only app with JavaScript off', nojs);
    await nojs.goto('/account/apps/new');
    await nojs.getByLabel(N('App name')).fill(name);
    await nojs.getByLabel(N('Description')).fill('Reads your notes.');
    await nojs.getByLabel(N('Redirect URIs')).fill(state.redirectUri);
    await choose(nojs.getByLabel(N('Permission preset')), 'Read Only');
    await nojs.getByRole('radio', { name: N('Server app (confidential)') }).check();
    await go(nojs, nojs.getByRole('button', { name: N('Create app') }));
    await t.mustNot(nojs.getByRole('alert'), 'error alert after "Create app"');
    const clientId = await clientIdOn(t, nojs);
    state.readApp = { name, clientId };
    await nojs.goto('/account');
    const text = await (await article(t, await section(t, nojs, 'OAuth Apps'), name)).innerText();
    soft(/read only/i.test(text), `the app made without JavaScript with the preset "Read Only" does not show it: ${short(text, 300)}`);
    await t.shot(nojs, 'no-js-account');
  }
  t.page = page;
  const clientId = state.readApp.clientId;

  t.step('consent page');
  const { challenge } = pkce();
  const st = `s3-${crypto.randomBytes(6).toString('hex')}`;
  await page.goto(authorizeUrl(clientId, '10701093', challenge, st));
  await t.must(page.getByRole('heading', { name: N(`Authorize ${name}`) }), `a heading "Authorize ${name}"`);
  await t.mustNot(page.getByRole('checkbox', { name: N('Limit Buzz spending') }), '"Limit Buzz spending" for a scope without AIServicesWrite');
  const items = await page.getByRole('listitem').count();
  expect(items >= 10, `expected one list item per scope of ReadOnly (10), found ${items}`);
  await t.shot(page, 'consent');
  await go(page, await t.must(page.getByRole('button', { name: N('Deny') }), 'a button "Deny"'));
  const cb = await landedOnCallback(t, page);
  expect(cb.searchParams.get('error') === 'access_denied', `expected error=access_denied in ${cb}`);
  expect(cb.searchParams.get('state') === st, `state came back as ${cb.searchParams.get('state')}`);
  expect(!cb.searchParams.get('code'), `a code came back on Deny: ${cb}`);
});

check('connected apps: cap, edit limit, revoke', async (t) => {
  const { page } = state.alice;
  const name = state.app.name;
  t.step('the connected app', page);
  await page.goto('/account');
  let connected = await section(t, page, 'Connected Apps');
  const card = await article(t, connected, name);
  const progress = await t.must(card.getByRole('progressbar', { name: /buzz spent/i }), 'a <progress> named like "Buzz spent"');
  expect((await progress.evaluate((el) => el.tagName)) === 'PROGRESS' || (await progress.evaluate((el) => el.tagName)) === 'METER', 'the cap is not a <progress> or <meter>');
  let text = await card.innerText();
  soft(/\b0 of 2,500 Buzz per 7 days\b/i.test(text), `expected "0 of 2,500 Buzz per 7 days" in the app's article: ${short(text, 400)}`);
  soft(/authorized/i.test(text), `no "Authorized <date>" in the app's article: ${short(text, 400)}`);
  soft(/ai/i.test(text), `the app's scopes are not listed: ${short(text, 400)}`);
  await t.must(action(card, 'Edit limit'), 'a button "Edit limit"');
  await t.must(action(card, 'Revoke'), 'a button "Revoke"');
  await t.shot(page, 'connected');

  t.step('edit limit');
  await go(page, action(card, 'Edit limit'));
  const on = await t.must(page.getByRole('checkbox', { name: N('Limit Buzz spending') }), 'a checkbox "Limit Buzz spending"');
  expect(await on.isChecked(), '"Limit Buzz spending" is not checked for a capped app');
  const limit = await t.must(page.getByLabel(N('Buzz limit')), 'a number field "Buzz limit"');
  expect((await limit.inputValue()) === '2500', `"Buzz limit" shows "${await limit.inputValue()}", expected the current 2500`);
  const period = await t.must(page.getByLabel(N('Period')), 'a select "Period"');
  expect(N('per 7 days').test(await selectedLabel(period)), `"Period" shows "${await selectedLabel(period)}", expected the current "per 7 days"`);
  await limit.fill('1234');
  await t.shot(page, 'edit-limit');
  await go(page, await t.must(page.getByRole('button', { name: N('Save') }), 'a button "Save"'));
  soft(pathOf(page) === '/account', `after Save the page is ${page.url()}, expected /account`);
  connected = await section(t, page, 'Connected Apps');
  text = await (await article(t, connected, name)).innerText();
  soft(/\b0 of 1,234 Buzz per 7 days\b/i.test(text), `expected "0 of 1,234 Buzz per 7 days" after the edit: ${short(text, 400)}`);

  t.step('revoke');
  await go(page, action(await article(t, connected, name), 'Revoke'));
  await t.must(page.getByRole('button', { name: N('Revoke') }), 'a confirming button "Revoke"');
  await t.must(page.getByRole('link', { name: N('Cancel') }), 'a link "Cancel"');
  await t.shot(page, 'revoke-confirm');
  await go(page, page.getByRole('button', { name: N('Revoke') }));
  soft(pathOf(page) === '/account', `after Revoke the page is ${page.url()}, expected /account`);
  connected = await section(t, page, 'Connected Apps');
  await t.mustNot(articleLoose(connected, name), `article "${name}" in Connected Apps after revoking`);
  await t.shot(page, 'revoked');

  t.step('the refresh token is dead');
  const r = await token({ grant_type: 'refresh_token', refresh_token: state.refreshToken, client_id: state.app.clientId, client_secret: state.app.secret });
  expect(r.status === 400 && r.json?.error === 'invalid_grant', `refresh after revoke should be 400 invalid_grant: ${r.status} ${short(r.text, 300)}`);
});

check('API keys', async (t) => {
  const { page } = state.alice;
  const name = 'ci key';
  t.step('create', page);
  await page.goto('/account');
  let keys = await section(t, page, 'API keys');
  await (await t.must(keys.getByLabel(N('Name')), 'a field "Name" in API keys')).fill(name);
  const scopes = await t.must(keys.getByLabel(N('Scopes')), 'a select "Scopes" in API keys');
  const offered = await optionLabels(scopes);
  for (const o of ['Read Only', 'Creator', 'AI Services', 'Full Access']) {
    expect(offered.some((l) => N(o).test(l)), `"Scopes" has no option "${o}": ${offered.join(' | ')}`);
  }
  await choose(scopes, 'Read Only');
  await t.must(keys.getByLabel(N('Buzz limit')), 'an optional field "Buzz limit" in API keys');
  await t.must(keys.getByLabel(N('Period')), 'a select "Period" in API keys');
  await go(page, await t.must(keys.getByRole('button', { name: N('Create API key') }), 'a button "Create API key"'));
  await t.mustNot(page.getByRole('alert'), 'error alert after "Create API key"');
  soft(/shown once/i.test(await bodyText(page)), 'the new key page does not say "shown once"');
  const key = await valueOf(await t.must(page.getByLabel(N('API key')), 'the key labelled "API key"'));
  expect(key.length >= 20 && !/\s/.test(key), `the API key looks wrong: "${key}"`);
  await t.shot(page, 'created');

  t.step('bearer');
  let res = await fetch(`${BASE}/api/v1/me`, { headers: { authorization: `Bearer ${key}` } });
  let body = await res.text();
  expect(res.status === 200 && JSON.parse(body).username === USER, `GET /api/v1/me with the key: ${res.status} ${short(body, 300)}`);

  t.step('the key in the list');
  await page.goto('/account');
  keys = await section(t, page, 'API keys');
  const card = await article(t, keys, name);
  await t.shot(page, 'listed');
  t.step('delete');
  await go(page, await t.must(action(card, 'Delete'), 'a button "Delete" in the key\'s article'));
  await t.must(page.getByRole('link', { name: N('Cancel') }), 'a link "Cancel"');
  await t.shot(page, 'delete-confirm');
  await go(page, await t.must(page.getByRole('button', { name: N('Delete') }), 'a confirming button "Delete"'));
  // The contract asks only that it be gone from the list; a redirect to /account would keep a
  // reload from posting the form again, so a page rendered at the form's URL is noted.
  await t.must(page.getByRole('heading', { level: 1, name: N('Your account') }), 'the account page after Delete');
  if (pathOf(page) !== '/account') notes.add(`after a confirmed Delete the account page is rendered at the form's URL (${pathOf(page).replace(/[0-9a-f-]{36}/, '<id>')}) instead of a redirect to /account`);
  await t.mustNot(articleLoose(await section(t, page, 'API keys'), name), `article "${name}" after deleting it`);
  res = await fetch(`${BASE}/api/v1/me`, { headers: { authorization: `Bearer ${key}` } });
  body = await res.text();
  expect(res.status === 401, `GET /api/v1/me with the deleted key should be 401: ${res.status} ${short(body, 300)}`);
});

check('device approval', async (t) => {
  const { page } = state.alice;
  t.step('device authorization request');
  let r = await postForm('/api/auth/oauth/device', { client_id: DEVICE_CLIENT_ID, client_secret: DEVICE_CLIENT_SECRET, scope: 'UserRead BuzzRead' });
  expect(r.status === 200 && /^[A-Z0-9]{4}-[A-Z0-9]{4}$/.test(r.json?.user_code || '') && r.json?.device_code, `POST /api/auth/oauth/device: ${r.status} ${short(r.text, 300)}`);
  const { user_code: userCode, device_code: deviceCode } = r.json;

  t.step('enter the code', page);
  await page.goto('/login/oauth/device');
  const field = await t.must(page.getByLabel(N('Code')), 'a field "Code"');
  await t.shot(page, 'enter-code');
  await field.fill(userCode.replace('-', '').toLowerCase());
  await go(page, await t.must(page.getByRole('button', { name: N('Continue') }), 'a button "Continue"'));
  await t.mustNot(page.getByRole('alert'), 'error alert after entering the code');
  const text = await bodyText(page);
  soft(text.toLowerCase().includes(DEVICE_CLIENT_NAME.toLowerCase()), `the device page does not name the app "${DEVICE_CLIENT_NAME}"`);
  expect((await page.getByRole('listitem').count()) >= 2, 'the device page does not list the scopes (UserRead, BuzzRead) as list items');
  await t.must(page.getByRole('button', { name: N('Deny') }), 'a button "Deny"');
  await t.shot(page, 'confirm');
  await go(page, await t.must(page.getByRole('button', { name: N('Approve') }), 'a button "Approve"'));
  soft(/device connected/i.test(await bodyText(page)), 'no "Device connected" after approving');
  await t.shot(page, 'connected');

  t.step('device token');
  r = await postForm('/api/auth/oauth/device-token', {
    grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
    device_code: deviceCode,
    client_id: DEVICE_CLIENT_ID,
    client_secret: DEVICE_CLIENT_SECRET,
  });
  expect(r.status === 200 && r.json?.access_token, `device-token: ${r.status} ${short(r.text, 300)}`);
});

check('admin', async (t) => {
  const { page, context } = await newSession(t);
  {
    await signIn(t, page, OTHER, OTHER_PASSWORD);
    t.step('non-admin on /admin', page);
    const resp = await page.goto('/admin');
    expect(resp.status() === 403, `GET /admin as a non-admin: ${resp.status()}, expected 403`);
    await t.shot(page, 'forbidden');
    let res = await fetch(`${BASE}/api/v1/admin/audit?kind=client.created&limit=10`, { headers: { cookie: await cookieHeader(context) } });
    expect(res.status === 403, `GET /api/v1/admin/audit as a non-admin: ${res.status}, expected 403`);

    t.step('sign out');
    await page.goto('/account');
    await go(page, await t.must(page.getByRole('banner').getByRole('button', { name: N('Sign out') }), 'a button "Sign out"'));
    const after = await page.goto('/account');
    expect(pathOf(page) === '/login' || after.status() === 401 || after.status() === 303, `after signing out, /account is still shown (${after.status()} ${page.url()})`);

    await signIn(t, page, ADMIN, ADMIN_PASSWORD);
    t.step('admin page');
    await page.goto('/admin');
    await t.must(page.getByRole('heading', { level: 1, name: N('Admin') }), 'an h1 "Admin"');
    const apps = await section(t, page, 'Apps');
    await (await t.must(apps.getByLabel(N('Search apps')), 'a field "Search apps"')).fill('Pixel');
    await go(page, await t.must(apps.getByRole('button', { name: N('Search') }), 'a button "Search"'));
    const appsFound = await section(t, page, 'Apps');
    const card = await article(t, appsFound, state.app.name);
    await t.mustNot(articleLoose(appsFound, state.readApp.name), `"${state.readApp.name}" in the results of a search for "Pixel"`);
    await t.must(card.getByLabel(N('Access mode')), 'a select "Access mode"');
    await t.must(card.getByRole('button', { name: N('Set access mode') }), 'a button "Set access mode"');
    await t.shot(page, 'apps');
    t.step('verify');
    await go(page, await t.must(card.getByRole('button', { name: N('Verify') }), 'a button "Verify"'));
    await page.goto('/admin?q=Pixel');
    if ((await articleLoose(await section(t, page, 'Apps'), state.app.name).count()) === 0) {
      await page.getByLabel(N('Search apps')).fill('Pixel');
      await go(page, page.getByRole('button', { name: N('Search') }));
    }
    const verified = await article(t, await section(t, page, 'Apps'), state.app.name);
    await t.must(verified.getByRole('button', { name: N('Unverify') }), 'a button "Unverify" after verifying');

    t.step('audit log');
    const audit = await section(t, page, 'Audit log');
    for (const f of ['User', 'App', 'Event', 'From', 'To']) {
      await t.must(audit.getByLabel(N(f)), `a filter "${f}"`);
    }
    for (const f of ['From', 'To']) {
      const type = await audit.getByLabel(N(f)).getAttribute('type');
      expect(type === 'datetime-local', `the filter "${f}" is type=${type}, expected datetime-local`);
    }
    await choose(audit.getByLabel(N('Event')), /client.?created/i);
    await go(page, await t.must(audit.getByRole('button', { name: N('Filter') }), 'a button "Filter"'));
    const log = await section(t, page, 'Audit log');
    const table = await t.must(log.getByRole('table'), 'a table of events');
    for (const c of ['Time', 'Event', 'User', 'App']) {
      await t.must(table.getByRole('columnheader', { name: N(c) }), `a column header "${c}"`);
    }
    const rows = await table.getByRole('row').count();
    expect(rows >= 3, `expected the header row and at least the 2 client.created events, found ${rows} rows`);
    const tableText = await table.innerText();
    expect(!/token\.issued|authorization\.granted/i.test(tableText), `the event filter let other events through: ${short(tableText, 400)}`);
    await t.shot(page, 'audit');

    t.step('audit JSON');
    res = await fetch(`${BASE}/api/v1/admin/audit?kind=client.created&limit=10`, { headers: { cookie: await cookieHeader(context) } });
    const body = await res.text();
    let events = null;
    try {
      events = JSON.parse(body).events;
    } catch {}
    expect(res.status === 200 && Array.isArray(events) && events.length >= 2, `GET /api/v1/admin/audit as an admin: ${res.status} ${short(body, 300)}`);
  }
});

check('verified app, then delete it', async (t) => {
  const { page } = state.alice;
  const name = state.app.name;
  t.step('consent of the verified app', page);
  const { verifier, challenge } = pkce();
  const st = `s4-${crypto.randomBytes(6).toString('hex')}`;
  await page.goto(authorizeUrl(state.app.clientId, 'AIServices', challenge, st));
  await headingNamed(t, page, `Authorize ${name}`, `a heading "Authorize ${name}" (the consent was revoked, so the page shows again)`);
  const consentText = await bodyText(page);
  soft(/\bverified\b/i.test(consentText) && !/not verified/i.test(consentText), 'the consent page of a verified app does not show "Verified" (or still says "not verified")');
  await t.shot(page, 'consent-verified');
  await go(page, page.getByRole('button', { name: N('Approve') }));
  const cb = await landedOnCallback(t, page);
  const r0 = await token({
    grant_type: 'authorization_code',
    code: cb.searchParams.get('code'),
    redirect_uri: state.redirectUri,
    code_verifier: verifier,
    client_id: state.app.clientId,
    client_secret: state.app.secret,
  });
  expect(r0.status === 200 && r0.json?.access_token, `code exchange: ${r0.status} ${short(r0.text, 300)}`);
  const access = r0.json.access_token;
  t.step('connected and verified');
  await page.goto('/account');
  const connectedText = await (await article(t, await section(t, page, 'Connected Apps'), name)).innerText();
  soft(/\bverified\b/i.test(connectedText), `Connected Apps does not show "Verified" for a verified app: ${short(connectedText, 300)}`);
  soft(/\b0 of 5,000 Buzz per 24 hours\b/i.test(connectedText), `expected the default cap "0 of 5,000 Buzz per 24 hours": ${short(connectedText, 300)}`);

  t.step('confirmation page');
  await page.goto('/account');
  const card = await article(t, await section(t, page, 'OAuth Apps'), name);
  await go(page, await t.must(action(card, 'Delete'), `a button "Delete" in "${name}"`));
  const text = await bodyText(page);
  for (const w of ['token', 'consent', 'code', 'audit']) {
    expect(new RegExp(w, 'i').test(text), `the delete confirmation does not mention ${w}s: ${short(text, 500)}`);
  }
  await t.must(page.getByRole('link', { name: N('Cancel') }), 'a link "Cancel"');
  await t.shot(page, 'delete-confirm');
  t.step('delete');
  await go(page, await t.must(page.getByRole('button', { name: N('Delete') }), 'a confirming button "Delete"'));
  // The contract asks only that it be gone from the list; a redirect to /account would keep a
  // reload from posting the form again, so a page rendered at the form's URL is noted.
  await t.must(page.getByRole('heading', { level: 1, name: N('Your account') }), 'the account page after Delete');
  if (pathOf(page) !== '/account') notes.add(`after a confirmed Delete the account page is rendered at the form's URL (${pathOf(page).replace(/[0-9a-f-]{36}/, '<id>')}) instead of a redirect to /account`);
  await page.goto('/account');
  await t.mustNot(articleLoose(await section(t, page, 'OAuth Apps'), name), `article "${name}" in OAuth Apps after deleting it`);
  await t.mustNot(articleLoose(await section(t, page, 'Connected Apps'), name), `article "${name}" in Connected Apps after deleting the app`);
  await t.shot(page, 'deleted');
  const me = await fetch(`${BASE}/api/v1/me`, { headers: { authorization: `Bearer ${access}` } });
  expect(me.status === 401, `an access token of the deleted app still works at /api/v1/me: ${me.status}`);
  const r = await token({ grant_type: 'client_credentials', client_id: state.app.clientId, client_secret: state.app.secret });
  expect(r.json?.error === 'invalid_client', `client_credentials for the deleted app: ${r.status} ${short(r.text, 300)}, expected invalid_client`);
});

function checkHeaders(where, headers) {
  const problems = headerProblems(headers);
  expect(problems.length === 0, `${where}: ${problems.join('; ')}`);
}

check('security headers', async (t) => {
  const { page, context } = state.alice;
  t.step('/account', page);
  let resp = await page.goto('/account');
  checkHeaders('/account', await resp.allHeaders());

  t.step('consent page');
  const { challenge } = pkce();
  resp = await page.goto(authorizeUrl(state.readApp.clientId, '10701093', challenge, 'headers-check'));
  await t.must(page.getByRole('heading', { name: N(`Authorize ${state.readApp.name}`) }), `the consent page of "${state.readApp.name}"`);
  checkHeaders('the consent page', await resp.allHeaders());
  await t.shot(page, 'consent');

  t.step('/login');
  const s = await newSession(t);
  t.page = s.page;
  resp = await s.page.goto('/login');
  checkHeaders('/login', await resp.allHeaders());

  t.step('session cookie');
  const lines = state.sessionSetCookie.filter((l) => !/max-age=0|expires=thu, 01 jan 1970/i.test(l));
  expect(lines.length > 0, 'the sign-in response set no cookie');
  const session = lines.find((l) => /session/i.test(l.split('=')[0])) || lines[0];
  expect(/;\s*httponly/i.test(session), `the session cookie is not HttpOnly: ${session.replace(/=[^;]*/, '=…')}`);
  expect(/;\s*samesite=lax/i.test(session), `the session cookie is not SameSite=Lax: ${session.replace(/=[^;]*/, '=…')}`);
  const jar = await context.cookies(BASE);
  const stored = jar.find((c) => c.name === session.split('=')[0].trim());
  expect(stored && stored.httpOnly && stored.sameSite === 'Lax', `the browser holds the session cookie as ${JSON.stringify(stored && { httpOnly: stored.httpOnly, sameSite: stored.sameSite })}`);
});

check('sign-in throttling', async (t) => {
  const { page } = await newSession(t);
  // The limiter counts in fixed minutes aligned to the clock (crates/domain/src/rate.rs): a
  // run that straddles a minute's end would see the count reset under it, so start early in one.
  const intoMinute = new Date().getSeconds();
  if (intoMinute > 35) await new Promise((r) => setTimeout(r, (61 - intoMinute) * 1000));
  t.step('wrong passwords until throttled', page);
  await page.goto('/login');
  let said = '';
  for (let i = 1; i <= 40; i++) {
    await page.getByLabel(N('Username')).fill(OTHER);
    await page.getByLabel(N('Password')).fill(`wrong-${i}`);
    await go(page, page.getByRole('button', { name: N('Sign in') }));
    said = await (await t.must(page.getByRole('alert'), `an error with role=alert after wrong password ${i}`)).innerText();
    if (/too many failed sign-in attempts/i.test(said)) break;
  }
  expect(/too many failed sign-in attempts/i.test(said), `40 wrong passwords in a row never gave "Too many failed sign-in attempts"; the last alert: ${short(said, 300)}`);
  await t.shot(page, 'throttled');
  t.step('the right password while throttled');
  await page.getByLabel(N('Username')).fill(OTHER);
  await page.getByLabel(N('Password')).fill(OTHER_PASSWORD);
  await go(page, page.getByRole('button', { name: N('Sign in') }));
  expect(pathOf(page) === '/login' || (await page.getByRole('alert').count()) > 0, `the right password signed in while throttled: ${page.url()}`);
});

// ---- main ------------------------------------------------------------------------------------

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const listener = await startCallbackListener();
  state.redirectUri = `http://127.0.0.1:${listener.address().port}/callback`;
  state.browser = await chromium.launch({ executablePath: EXECUTABLE, headless: true, args: ['--no-sandbox'] });
  let passed = 0;
  let failed = 0;
  try {
    for (const [i, c] of checks.entries()) {
      const n = i + 1;
      if (ONLY.length && !ONLY.includes(n)) continue;
      const t = new T(n, c.name);
      currentT = t;
      let error = null;
      try {
        await c.fn(t);
      } catch (e) {
        error = e;
      }
      if (!error && t.soft.length === 0) {
        passed++;
        console.log(`ok ${n} ${c.name}`);
      } else {
        failed++;
        console.log(`not ok ${n} ${c.name}`);
        console.log(`FAIL ${n} ${c.name}`);
        for (const f of t.soft) console.log(`  mismatch (the check went on): ${f}`);
        if (error) {
          const what = error instanceof CheckFailure ? error.message : short(error && error.stack ? error.stack : error);
          console.log(`  stopped at step: ${t.stepName}\n  saw: ${what}`);
        }
        if (error && t.page && !t.page.isClosed()) {
          try {
            console.log(`  page URL: ${t.page.url()}`);
            console.log(`  page text:\n${short(await bodyText(t.page), 2000).replace(/^/gm, '    | ')}`);
            await t.page.screenshot({ path: path.join(SHOTS, `${t.slug}-FAILED.png`), fullPage: true });
          } catch (err) {
            console.log(`  (could not read the page: ${err.message})`);
          }
        }
      }
      for (const ctx of t.contexts) await ctx.close().catch(() => {});
      if (failed) {
        if (!KEEP_GOING) break;
      }
    }
  } finally {
    await state.browser.close();
    listener.close();
  }
  for (const n of notes) console.log(`note: ${n}`);
  console.log(`security headers checked on ${headerPages} page loads`);
  console.log(`screenshots: ${SHOTS}`);
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

await main();
