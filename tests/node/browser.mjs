// A person's browser, for the Node checks: a cookie jar, the sign-in form and the consent
// page of Buzzgate, driven over plain fetch (no JavaScript on the pages is needed).

export function fail(check, step, what) {
  console.error(`${check}: ${step}: ${what}`);
  process.exit(1);
}

export function env(check, name) {
  const v = process.env[name];
  if (!v) fail(check, 'config', `environment variable ${name} is not set`);
  return v;
}

function unescape(s) {
  return s
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');
}

export function hiddenInputs(html) {
  const out = {};
  for (const m of html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) {
    out[m[1]] = unescape(m[2]);
  }
  return out;
}

export class Browser {
  constructor(base, check) {
    this.base = base;
    this.check = check;
    this.jar = new Map();
  }

  async go(url, init = {}) {
    const cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(new URL(url, this.base), {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers ?? {}), cookie },
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const i = pair.indexOf('=');
      this.jar.set(pair.slice(0, i).trim(), pair.slice(i + 1));
    }
    return res;
  }

  post(url, fields) {
    return this.go(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields),
    });
  }

  /// Opens an authorize URL as a signed-out person would: signs in on the way, approves the
  /// consent page if one is shown, and returns the callback URL the app receives.
  async authorize(authorizeUrl, username, password) {
    const step = (s, cond, what) => cond || fail(this.check, s, what);
    let res = await this.go(authorizeUrl);
    if (res.status === 303) {
      const loginUrl = res.headers.get('location');
      res = await this.go(loginUrl);
      step('login page', res.status === 200, `GET ${loginUrl} -> ${res.status}`);
      const login = hiddenInputs(await res.text());
      res = await this.post('/login', { ...login, username, password });
      step('sign in', res.status === 303 && this.jar.has('bg_session'), `POST /login -> ${res.status}`);
      res = await this.go(res.headers.get('location'));
    }
    if (res.status === 200) {
      const page = await res.text();
      // The consent form is the one with the Approve button (the header has Sign out).
      const form = [...page.matchAll(/<form method="post" action="([^"]*)">([\s\S]*?)<\/form>/g)].find(
        (m) => m[2].includes('name="approved"'),
      );
      step('consent page', form, 'the consent page has a form with an Approve button');
      const fields = hiddenInputs(form[2]);
      step('consent page', fields.csrf_token, 'the consent form carries a CSRF token');
      res = await this.post(unescape(form[1]), { ...fields, approved: 'true', remember: 'true' });
      step('approve', res.status === 303, `expected 303, got ${res.status}`);
    } else {
      step('authorize', res.status === 302, `expected a consent page or a redirect, got ${res.status}`);
    }
    return new URL(res.headers.get('location'));
  }
}
