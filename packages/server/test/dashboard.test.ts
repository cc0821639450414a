/**
 * The dashboard in a real headless Chromium (playwright-core, the system's /usr/bin/chromium)
 * against a real bus: login, live counts, detail, dead letters, keys, escaping, CSP, a phone
 * viewport, and a cross-site form post that must be refused. Never skipped: without
 * Chromium the suite fails with a message saying how to install it.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DASHBOARD_CSP } from '../src/http/routes/dashboard.js';
import { DASHBOARD_PASSWORD, publish, startTestBus, type TestBus } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/', import.meta.url));
const XSS = `<script>window.__xss = 1</script><img src=x onerror="window.__xss=2">`;

/** Polls until the value matches (the page refreshes itself every ~2 s). */
const soon = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 8000, interval: 100 });

describe('the dashboard in headless Chromium', () => {
  let t: TestBus;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let dashboard: string;
  const problems: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `Chromium is missing at ${CHROMIUM}: install the Debian package ` +
          '(apt-get install -y chromium; .ci/run does it). This test is never skipped.',
      );
    }
    t = await startTestBus();
    dashboard = `${t.url}/admin/dashboard`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    context = await browser.newContext({
      httpCredentials: { username: 'admin', password: DASHBOARD_PASSWORD },
      viewport: { width: 1280, height: 900 },
    });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: t.url });
    page = await context.newPage();
    // Script errors and console errors (a CSP violation is one) fail the suite at the end.
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  const count = async (status: string) => Number(await page.textContent(`#count-${status}`));
  const open = async (id: string) => {
    await page.click(`#intents tr[data-id="${id}"] button.link`);
    await page.waitForSelector('#detail[open]');
  };

  it('answers 401 with a Basic challenge without credentials, and serves the page with them', async () => {
    const anonymous = await fetch(dashboard);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Basic realm="IntentBus Admin"');

    const res = await page.goto(dashboard);
    expect(res?.status()).toBe(200);
    expect(await page.textContent('h1')).toBe('Intent Bus');
    await page.waitForSelector('#count-open');
    await soon(() => page.textContent('#live')).toMatch(/^live/);
  });

  it('sends the strict CSP on the page and its files, behind admin auth', async () => {
    const files = {
      '': 'text/html',
      '/app.js': 'text/javascript',
      '/app.css': 'text/css',
    };
    for (const [suffix, type] of Object.entries(files)) {
      const r = await t.api('GET', `/admin/dashboard${suffix}`, { admin: true });
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toContain(type);
      expect(r.headers.get('content-security-policy')).toBe(DASHBOARD_CSP);
      expect(r.headers.get('x-frame-options')).toBe('DENY');
      expect((await fetch(`${dashboard}${suffix}`)).status).toBe(401);
    }
    expect(DASHBOARD_CSP).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    const html = (await t.api('GET', '/admin/dashboard', { admin: true })).text;
    expect(html).not.toMatch(/<script>|<style|style=|\son[a-z]+=/i);
    expect(html).not.toMatch(/https?:\/\//);
  });

  it('shows new intents in the counts by itself, without reloading', async () => {
    await page.evaluate(() => ((window as unknown as { __same: number }).__same = 1));
    const before = await count('open');
    for (let i = 0; i < 3; i++) {
      await publish(t.api, { goal: 'dash.count', namespace: 'dash', payload: { i } });
    }
    await soon(() => count('open')).toBe(before + 3);
    await soon(() => page.textContent('#namespaces')).toContain('dash');
    await soon(() => page.textContent('#legend')).toMatch(/published 3/);
    expect(await page.locator('#chart polyline').count()).toBe(4);
    expect(await page.evaluate(() => (window as unknown as { __same?: number }).__same)).toBe(1);
  });

  it("opens an intent's detail with its payload, result and attempts", async () => {
    const id = await publish(t.api, {
      goal: 'dash.detail',
      namespace: 'dash',
      payload: { to: 'ops', n: 42 },
    });
    const claim = await t.api('POST', '/claim?namespace=dash&goal=dash.detail&worker_id=w-7');
    await t.api('POST', `/fulfill/${id}`, {
      body: { claim_token: claim.json.claim_token, result: { sent: true } },
    });
    await page.waitForSelector(`#intents tr[data-id="${id}"] .badge.fulfilled`);
    expect(await page.textContent(`#intents tr[data-id="${id}"]`)).toContain('w-7');
    await open(id);
    expect(await page.textContent('#detail-payload')).toContain('"n": 42');
    expect(await page.textContent('#detail-result')).toContain('"sent": true');
    const fields = await page.textContent('#detail-fields');
    expect(fields).toContain(id);
    expect(fields).toContain('1 of 3');
    expect(fields).toContain('w-7');
    await page.click('#detail-close');
    expect(await page.locator('#detail[open]').count()).toBe(0);
  });

  it('lists a dead letter, and its Retry button puts it back among the open intents', async () => {
    const id = await publish(t.api, { goal: 'dash.dies', namespace: 'dash', max_attempts: 1 });
    const claim = await t.api('POST', '/claim?namespace=dash&goal=dash.dies');
    const fail = await t.api('POST', `/fail/${id}`, {
      body: { claim_token: claim.json.claim_token, error: 'boom' },
    });
    expect(fail.json.status).toBe('dead');
    const row = `#dead tr[data-id="${id}"]`;
    await page.waitForSelector(row);
    expect(await page.textContent(row)).toContain('boom');

    await page.click(`${row} button:text-is("Retry")`);
    await page.waitForSelector(row, { state: 'detached' });
    expect(await page.textContent('#notice')).toContain('now open');
    await page.selectOption('#filter select[name=status]', 'open');
    await page.waitForSelector(`#intents tr[data-id="${id}"] .badge.open`);
    expect((await t.api('GET', `/admin/intents/${id}`, { admin: true })).json.status).toBe('open');
    await page.selectOption('#filter select[name=status]', '');
  });

  it('creates a key, shows it once with a Copy button, and revokes it', async () => {
    await page.fill('#new-key input[name=owner]', 'dash-owner');
    await page.click('#new-key button[type=submit]');
    await page.waitForSelector('#created-key:not([hidden])');
    const apiKey = (await page.textContent('#created-value')) ?? '';
    expect(apiKey).toMatch(/^tk_[0-9a-f]{32}$/);
    expect(await page.textContent('#created-owner')).toBe('dash-owner');
    expect((await t.api('POST', '/claim', { key: apiKey })).status).toBe(204);

    await page.click('#copy');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(apiKey);

    const listed = (await t.api('GET', '/admin/keys', { admin: true })).json as {
      key_id: string;
      owner: string;
    }[];
    const keyId = listed.find((k) => k.owner === 'dash-owner')!.key_id;
    const row = `#keys tr[data-key="${keyId}"]`;
    await page.waitForSelector(row);
    expect(await page.textContent(row)).not.toContain(apiKey);

    await page.click('#dismiss');
    expect(await page.content()).not.toContain(apiKey);

    page.once('dialog', (d) => void d.accept());
    await page.click(`${row} button:text-is("Revoke")`);
    await page.waitForSelector(row, { state: 'detached' });
    expect((await t.api('POST', '/claim', { key: apiKey })).status).toBe(401);
  });

  it('shows markup in a payload and a goal as text, never running it', async () => {
    const id = await publish(t.api, {
      goal: `dash ${XSS}`,
      namespace: 'dash',
      payload: { note: XSS },
    });
    await page.waitForSelector(`#intents tr[data-id="${id}"]`);
    expect(await page.textContent(`#intents tr[data-id="${id}"]`)).toContain(XSS);
    await open(id);
    expect(await page.textContent('#detail-payload')).toContain(XSS.replaceAll('"', '\\"'));
    expect(await page.isVisible('#detail-payload')).toBe(true);
    expect(await page.locator('#detail-title').textContent()).toBe(`dash ${XSS}`);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBe(
      undefined,
    );
    await page.click('#detail-close');
  });

  it('fits a 375 px phone screen without horizontal scrolling', async () => {
    // Something in every section for the screenshots: a dead letter and a key.
    const dead = await publish(t.api, { goal: 'dash.report', namespace: 'dash', max_attempts: 1 });
    const claim = await t.api('POST', '/claim?namespace=dash&goal=dash.report&worker_id=w-9');
    await t.api('POST', `/fail/${dead}`, {
      body: { claim_token: claim.json.claim_token, error: 'SMTP timeout' },
    });
    await t.newKey('ops-team');
    await page.reload();
    await page.waitForSelector(`#dead tr[data-id="${dead}"]`);
    await page.waitForSelector('#keys tbody tr');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true });

    await page.setViewportSize({ width: 375, height: 812 });
    const widths = () =>
      page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    await soon(widths).toEqual([375, 375]);
    await page.screenshot({ path: `${ARTIFACTS}dashboard-phone.png`, fullPage: true });

    const id = await page.getAttribute('#intents tbody tr', 'data-id');
    await open(id!);
    const box = await page.locator('#detail').boundingBox();
    expect(box!.x).toBeGreaterThanOrEqual(0);
    expect(box!.x + box!.width).toBeLessThanOrEqual(375);
    expect((await widths())[0]).toBe(375);
    await page.screenshot({ path: `${ARTIFACTS}dashboard-phone-detail.png` });
    await page.click('#detail-close');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('had no script error and no CSP violation', () => {
    expect(problems).toEqual([]);
  });

  describe('a cross-site form post with cached Basic credentials', () => {
    let evil: Server;
    let evilUrl: string;

    beforeAll(async () => {
      const action = `${t.url}/admin/purge`;
      // text/plain can smuggle a JSON body: name + "=" + value = {"confirm":true,"x":"="}.
      const forms: Record<string, string> = {
        '/plain': `<form method="post" action="${action}" enctype="text/plain"><input name='{"confirm":true,"x":"' value='"}'></form>`,
        '/urlencoded': `<form method="post" action="${action}" enctype="application/x-www-form-urlencoded"><input name="confirm" value="true"></form>`,
      };
      evil = createServer((req, res) => {
        const form = forms[req.url ?? ''];
        res.writeHead(form ? 200 : 404, { 'content-type': 'text/html' });
        res.end(form ? `<!doctype html>${form}<script>document.forms[0].submit()</script>` : '');
      });
      await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
      evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`;
    });

    afterAll(async () => {
      await new Promise((resolve) => evil.close(resolve));
    });

    for (const kind of ['plain', 'urlencoded']) {
      it(`is refused with 403 and purges nothing (${kind})`, async () => {
        const before = (await t.api('GET', '/admin/stats', { admin: true })).json.by_status;
        expect(before.open).toBeGreaterThan(0);
        const attacker = await context.newPage();
        try {
          const answered = attacker.waitForResponse(`${t.url}/admin/purge`);
          await attacker.goto(`${evilUrl}/${kind}`);
          const res = await answered;
          expect(res.request().method()).toBe('POST');
          expect(res.status()).toBe(403);
          expect((await res.json()).error.code).toBe('forbidden');
        } finally {
          await attacker.close();
        }
        const after = (await t.api('GET', '/admin/stats', { admin: true })).json.by_status;
        expect(after).toEqual(before);
      });
    }
  });
});
