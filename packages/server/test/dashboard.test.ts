/**
 * The dashboard in a real headless Chromium (playwright-core, the system's /usr/bin/chromium)
 * against a real bus: login (also with the credentials in the URL), live counts, detail and
 * the actions each status offers, dead letters, keys, notices beside their buttons,
 * escaping, CSP, a phone viewport (count cards as filters, the navigation), the pages that
 * lead to the dashboard, and a cross-site form post that must be refused. Never skipped:
 * without Chromium the suite fails with a message saying how to install it.
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

type Box = { x: number; y: number; width: number; height: number };

/** Clicks (or taps) a control where it is on screen; answers its box just before. */
async function press(page: Page, selector: string, tap = false): Promise<Box> {
  const control = page.locator(selector);
  await control.scrollIntoViewIfNeeded();
  const box = (await control.boundingBox())!;
  await (tap ? control.tap() : control.click());
  return box;
}

/**
 * The notice shows inside the viewport, just below the control that was pressed (its box
 * before the press), or below an element that holds the controls (a selector).
 */
async function expectNoticeBeside(page: Page, notice: string, near: Box | string): Promise<string> {
  await page.waitForSelector(`${notice}:not([hidden])`);
  const control = typeof near === 'string' ? (await page.locator(near).boundingBox())! : near;
  const box = (await page.locator(notice).boundingBox())!;
  const view = page.viewportSize()!;
  expect(box.y).toBeGreaterThanOrEqual(0);
  expect(box.y + box.height).toBeLessThanOrEqual(view.height);
  expect(box.x).toBeGreaterThanOrEqual(0);
  expect(box.x + box.width).toBeLessThanOrEqual(view.width);
  expect(box.y - (control.y + control.height)).toBeGreaterThanOrEqual(0);
  expect(box.y - (control.y + control.height)).toBeLessThan(24);
  return (await page.textContent(notice)) ?? '';
}

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
  /** Publishes an intent whose only attempt fails: a dead letter. */
  const deadOne = async (goal: string): Promise<string> => {
    const id = await publish(t.api, { goal, namespace: 'dash', max_attempts: 1 });
    const claim = await t.api('POST', `/claim?namespace=dash&goal=${goal}`);
    const fail = await t.api('POST', `/fail/${id}`, {
      body: { claim_token: claim.json.claim_token, error: 'boom' },
    });
    expect(fail.json.status).toBe('dead');
    return id;
  };
  /** The labels of the visible action buttons of the detail dialog. */
  const detailActions = () => page.locator('#detail .actions button:visible').allTextContents();

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

  it('sees a count change without a poll: live through the event stream', async () => {
    // A context of its own: its clock (the page's timers) is the context's.
    const own = await browser.newContext({
      httpCredentials: { username: 'admin', password: DASHBOARD_PASSWORD },
    });
    const live = await own.newPage();
    live.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    try {
      await live.clock.install();
      await live.goto(dashboard);
      await live.waitForSelector('#count-open');
      await expect.poll(() => t.bus.streams.connections, { timeout: 8000 }).toBeGreaterThan(0);
      await expect.poll(() => live.textContent('#live'), { timeout: 8000 }).toMatch(/^live/);
      // From now on no timer of the page runs: no poll, only the stream can redraw.
      await live.clock.pauseAt(Date.now() + 500);
      const before = Number(await live.textContent('#count-open'));
      await publish(t.api, { goal: 'dash.live', namespace: 'dash' });
      await expect
        .poll(async () => Number(await live.textContent('#count-open')), { timeout: 8000 })
        .toBe(before + 1);
    } finally {
      await own.close();
    }
  });

  it("shows a claimed intent's progress in its detail", async () => {
    const id = await publish(t.api, { goal: 'dash.progress', namespace: 'dash' });
    const claim = await t.api('POST', '/claim?namespace=dash&goal=dash.progress');
    const r = await t.api('POST', `/progress/${id}`, {
      body: { claim_token: claim.json.claim_token, percent: 40, message: 'encoding' },
    });
    expect(r.status).toBe(200);
    await page.waitForSelector(`#intents tr[data-id="${id}"] .badge.claimed`);
    await open(id);
    await soon(() => page.textContent('#detail-fields')).toContain('40% · encoding');
    await page.click('#detail-close');
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
    // A fulfilled intent holds no lease, and there is nothing to cancel or discard.
    expect(fields).not.toContain('lease ends');
    expect(await detailActions()).toEqual(['Retry']);
    await page.click('#detail-close');
    expect(await page.locator('#detail[open]').count()).toBe(0);
  });

  it('asks before retrying a fulfilled intent (it runs the job again)', async () => {
    const id = await publish(t.api, { goal: 'dash.again', namespace: 'dash' });
    const claim = await t.api('POST', '/claim?namespace=dash&goal=dash.again');
    await t.api('POST', `/fulfill/${id}`, { body: { claim_token: claim.json.claim_token } });
    await page.waitForSelector(`#intents tr[data-id="${id}"] .badge.fulfilled`);
    await open(id);
    const asked: string[] = [];
    page.once('dialog', (d) => void (asked.push(d.message()), d.dismiss()));
    await page.click('#detail-retry');
    await soon(async () => asked.length).toBe(1);
    expect(asked[0]).toContain('again');
    expect((await t.api('GET', `/status/${id}`)).json.status).toBe('fulfilled');

    page.once('dialog', (d) => void d.accept());
    await press(page, '#detail-retry');
    expect(await expectNoticeBeside(page, '#detail-notice', '#detail .actions')).toContain(
      'now open',
    );
    expect((await t.api('GET', `/status/${id}`)).json.status).toBe('open');
    await page.click('#detail-close');
  });

  it('offers Cancel and Retry only where they change something, its notice beside the button', async () => {
    const id = await publish(t.api, { goal: 'dash.offers', namespace: 'dash' });
    await page.waitForSelector(`#intents tr[data-id="${id}"] .badge.open`);
    await open(id);
    expect(await detailActions()).toEqual(['Cancel']); // never tried: a retry changes nothing
    await t.api('POST', '/claim?namespace=dash&goal=dash.offers&worker_id=w-3');
    await page.click('#detail-close');
    await page.waitForSelector(`#intents tr[data-id="${id}"] .badge.claimed`);
    await open(id);
    expect(await page.textContent('#detail-fields')).toContain('lease ends');
    expect(await detailActions()).toEqual(['Retry', 'Cancel']);

    await press(page, '#detail-cancel');
    expect(await expectNoticeBeside(page, '#detail-notice', '#detail .actions')).toContain(
      'now dead',
    );
    await soon(detailActions).toEqual(['Retry', 'Discard']);
    expect(await page.textContent('#detail-fields')).not.toContain('lease ends');
    await page.click('#detail-close');
  });

  it('lists a dead letter, and its Retry button puts it back among the open intents', async () => {
    const id = await deadOne('dash.dies');
    const row = `#dead tr[data-id="${id}"]`;
    await page.waitForSelector(row);
    expect(await page.textContent(row)).toContain('boom');
    // A dead letter is retried or discarded: cancelling it would change nothing.
    expect(await page.locator(`${row} button:not(.link)`).allTextContents()).toEqual([
      'Retry',
      'Discard',
    ]);

    const button = await press(page, `${row} button:text-is("Retry")`);
    await page.waitForSelector(row, { state: 'detached' });
    // The notice shows where the button was, though its row has gone.
    expect(await expectNoticeBeside(page, '#notice', button)).toContain('now open');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard-notice.png` });
    await page.selectOption('#filter select[name=status]', 'open');
    await page.waitForSelector(`#intents tr[data-id="${id}"] .badge.open`);
    expect((await t.api('GET', `/admin/intents/${id}`, { admin: true })).json.status).toBe('open');
    await page.selectOption('#filter select[name=status]', '');
  });

  it('discards a dead letter after asking: gone from the page and the bus', async () => {
    const id = await deadOne('dash.discard');
    const row = `#dead tr[data-id="${id}"]`;
    await page.waitForSelector(row);
    page.once('dialog', (d) => void d.dismiss());
    await page.click(`${row} button:text-is("Discard")`);
    await page.waitForTimeout(300);
    expect((await t.api('GET', `/admin/dead/${id}`, { admin: true })).status).toBe(200);

    page.once('dialog', (d) => void d.accept());
    const button = await press(page, `${row} button:text-is("Discard")`);
    await page.waitForSelector(row, { state: 'detached' });
    expect(await expectNoticeBeside(page, '#notice', button)).toContain('Discarded');
    expect((await t.api('GET', `/admin/dead/${id}`, { admin: true })).status).toBe(404);
    expect((await t.api('GET', `/status/${id}`)).status).toBe(404);
  });

  it('creates a key, shows it once with a Copy button, and revokes it', async () => {
    await page.fill('#new-key input[name=owner]', 'dash-owner');
    await page.click('#new-key button[type=submit]');
    await page.waitForSelector('#created-key:not([hidden])');
    const apiKey = (await page.textContent('#created-value')) ?? '';
    expect(apiKey).toMatch(/^tk_[0-9a-f]{32}$/);
    expect(await page.textContent('#created-owner')).toBe('dash-owner');
    expect((await t.api('POST', '/claim', { key: apiKey })).status).toBe(204);

    const copy = await press(page, '#copy');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(apiKey);
    expect(await expectNoticeBeside(page, '#notice', copy)).toContain('copied');

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

  it('lists the schedules with the timing in words, the next run and a strip of outcomes; Trigger, Pause and Resume act', async () => {
    const tester = await t.newKey('scheduler');
    const put = await t.api('PUT', '/schedules/dash-nightly', {
      key: tester.api_key,
      body: {
        cron: '30 2 * * *',
        timezone: 'Europe/Berlin',
        deadline: 1,
        on_failure: { goal: 'dash.alert' },
        intent: { goal: 'dash.nightly', payload: {}, max_attempts: 1 },
      },
    });
    expect(put.status, put.text).toBe(201);
    const row = `#schedules tr[data-schedule="${tester.key_id}/dash-nightly"]`;
    await soon(() => page.locator(row).count()).toBe(1);
    const text = await page.textContent(row);
    expect(text).toContain('At 02:30 (Europe/Berlin)');
    expect(text).toContain(tester.key_id);
    expect(text).toContain('none yet');

    // Trigger from the page: a run appears in the strip; nobody takes it, so it is missed.
    // The sections above grow as the run shows up (why it waits, the live counts): the
    // notice follows the Trigger button of the redrawn row, wherever it is now.
    const trigger = `${row} button:text("Trigger")`;
    // The notice of an earlier test may still show: this one's is awaited.
    await page.evaluate(() => (document.getElementById('notice')!.hidden = true));
    await press(page, trigger);
    await page.waitForSelector('#notice:not([hidden])');
    expect(await page.textContent('#notice')).toMatch(/dash-nightly: run [0-9a-f]{32} published/);
    const gap = async (): Promise<number | null> => {
      const [c, n] = await Promise.all(
        [trigger, '#notice'].map((s) => page.locator(s).boundingBox()),
      );
      return c && n ? n.y - (c.y + c.height) : null;
    };
    await expect.poll(gap).toBeGreaterThanOrEqual(0);
    await expect.poll(gap).toBeLessThan(24);
    await soon(() => page.locator(`${row} .run`).count()).toBe(1);
    await soon(() => page.locator(`${row} .run.missed`).count()).toBe(1);
    expect(await page.getAttribute(`${row} .run.missed`, 'title')).toMatch(/missed, alerted$/);
    // Done late: it stays missed. A second run that dies, triggered by its key: the strip
    // shows both, oldest first.
    const late = await t.api('POST', '/claim?goal=dash.nightly', { key: tester.api_key });
    expect(late.status).toBe(200);
    await t.api('POST', `/fulfill/${late.json.id}`, {
      key: tester.api_key,
      body: { claim_token: late.json.claim_token },
    });
    const trig = await t.api('POST', '/schedules/dash-nightly/trigger', { key: tester.api_key });
    const claim = await t.api('POST', '/claim?goal=dash.nightly', { key: tester.api_key });
    expect(claim.json.id).toBe(trig.json.id);
    await t.api('POST', `/fail/${trig.json.id}`, {
      key: tester.api_key,
      body: { claim_token: claim.json.claim_token, error: 'boom' },
    });
    await soon(() =>
      page.locator(`${row} .run`).evaluateAll((runs) => runs.map((r) => r.className)),
    ).toEqual(['run missed', 'run dead']);
    await page.locator(row).screenshot({ path: `${ARTIFACTS}dashboard-schedules.png` });

    await press(page, `${row} button:text("Pause")`);
    await soon(() => page.textContent(row)).toContain('paused');
    expect(
      (await t.api('GET', '/schedules/dash-nightly', { key: tester.api_key })).json.paused,
    ).toBe(true);
    await press(page, `${row} button:text("Resume")`);
    await soon(() => page.locator(`${row} button:text("Pause")`).count()).toBe(1);
    expect(
      (await t.api('GET', '/schedules/dash-nightly', { key: tester.api_key })).json.paused,
    ).toBe(false);
  });

  it('answers the admin schedule routes: 404 for an unknown one, 401 without admin credentials', async () => {
    const r = await t.api('POST', '/admin/schedules/main/absent/trigger', { admin: true });
    expect(r.status).toBe(404);
    expect(r.json.error.code).toBe('not_found');
    expect((await t.api('GET', '/admin/schedules')).status).toBe(401);
    const list = await t.api('GET', '/admin/schedules', { admin: true });
    expect(list.status).toBe(200);
    expect(list.json.map((s: { name: string }) => s.name)).toContain('dash-nightly');
  });

  it('sets a flow control, pauses and resumes it, and removes it', async () => {
    const flow = async () =>
      ((await t.api('GET', '/admin/flow', { admin: true })).json as { namespace: string }[]).filter(
        (c) => c.namespace === 'dash-flow',
      );
    await page.fill('#new-flow input[name=namespace]', 'dash-flow');
    await page.fill('#new-flow input[name=goal]', 'render');
    await page.fill('#new-flow input[name=max_in_flight]', '2');
    await page.fill('#new-flow input[name=rate]', '5/1');
    await page.click('#new-flow button[type=submit]');
    const row = '#flow tr[data-flow="dash-flow/render"]';
    await page.waitForSelector(row);
    expect(await page.textContent(row)).toContain('flowing');
    expect(await page.textContent(row)).toContain('5 per 1 s');
    expect(await flow()).toMatchObject([
      { goal: 'render', paused: false, max_in_flight: 2, rate: { limit: 5, per: 1 } },
    ]);

    await page.click(`${row} button:text-is("Pause")`);
    await page.waitForSelector(`${row} button:text-is("Resume")`);
    expect(await flow()).toMatchObject([{ paused: true, max_in_flight: 2 }]);
    await page.click(`${row} button:text-is("Resume")`);
    await page.waitForSelector(`${row} button:text-is("Pause")`);
    expect(await flow()).toMatchObject([{ paused: false }]);

    // A bad rate is said beside the form, and nothing changes.
    await page.fill('#new-flow input[name=rate]', 'fast');
    await page.evaluate(() => (document.getElementById('notice')!.hidden = true));
    const set = await press(page, '#new-flow button[type=submit]');
    expect(await expectNoticeBeside(page, '#notice', set)).toContain('rate: N/S');

    await page.click(`${row} button:text-is("Remove")`);
    await page.waitForSelector(row, { state: 'detached' });
    expect(await flow()).toEqual([]);
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

  it('lists the workers with their dot, capabilities and job; Quiet and Resume; why intents wait', async () => {
    const claimAs = (worker: string, caps: string, goal: string) =>
      t.api('POST', `/claim?namespace=fleet&goal=${goal}`, {
        headers: { 'x-worker-id': worker, 'x-worker-capabilities': caps },
      });
    const job = await publish(t.api, { goal: 'render', namespace: 'fleet' });
    expect((await claimAs('dash-gpu', 'gpu,cuda', 'render')).json.id).toBe(job);
    await claimAs('dash-cpu', 'cpu', 'speech');
    await publish(t.api, { goal: 'speech', namespace: 'fleet', required_capability: 'whisper' });
    await page.goto(`${dashboard}#sec-workers`);
    const row = (id: string) => `#workers tr[data-worker="${id}"][data-key="main"]`;
    await page.waitForSelector(row('dash-gpu'));
    expect(await page.locator(`${row('dash-gpu')} .dot.on`).count()).toBe(1);
    const gpu = await page.locator(`${row('dash-gpu')} td`).allTextContents();
    expect(gpu.slice(1, 4)).toEqual(['busy', 'gpu, cuda', 'fleet/render']);
    expect(gpu[5]).toBe('0 / 0');
    expect(await page.textContent(`${row('dash-cpu')} td[data-label="status"]`)).toBe('online');
    // Why it waits: the capability no online worker has.
    await soon(() => page.textContent('#waiting li[data-reason="no_capability"]')).toContain(
      'no online worker has capability whisper',
    );
    expect(await page.textContent('#waiting li[data-reason="no_capability"] strong')).toBe(
      'fleet/speech',
    );

    await press(page, `${row('dash-cpu')} button:text-is("Quiet")`);
    // Its own notice (an earlier test's may still show for a moment).
    await soon(() => page.textContent('#notice:not([hidden])')).toBe('dash-cpu told to quiet');
    // The command redraws the list, where the row may have moved (and the live refresh
    // redraws it again): the notice is in view, just below the row, once the row is drawn.
    const view = page.viewportSize()!;
    await soon(async () => {
      const n = await page.locator('#notice').boundingBox();
      const r = await page.locator(row('dash-cpu')).boundingBox();
      if (!n || !r) return 'not drawn';
      const gap = n.y - (r.y + r.height);
      return n.y >= 0 && n.y + n.height <= view.height && gap >= -12 && gap < 24
        ? 'beside'
        : `notice at ${n.y}, row bottom at ${r.y + r.height}`;
    }).toBe('beside');
    await soon(() => page.textContent(`${row('dash-cpu')} td[data-label="status"]`)).toBe(
      'online · quiet',
    );
    const told = await claimAs('dash-cpu', 'cpu', 'speech');
    expect([told.status, told.headers.get('x-intent-worker-command')]).toEqual([204, 'quiet']);
    await page.screenshot({ path: `${ARTIFACTS}dashboard-workers.png`, fullPage: true });
    await press(page, `${row('dash-cpu')} button:text-is("Resume")`);
    await soon(() => page.textContent(`${row('dash-cpu')} td[data-label="status"]`)).toBe('online');
    const again = await claimAs('dash-cpu', 'cpu', 'speech');
    expect(again.headers.get('x-intent-worker-command')).toBeNull();
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

  it('on a 375 px phone: the "dead" card lists the dead intents, the nav reaches the dead letters', async () => {
    const dead = await deadOne('dash.phone');
    await publish(t.api, { goal: 'dash.phone.open', namespace: 'dash' });
    const phone = await browser.newContext({
      httpCredentials: { username: 'admin', password: DASHBOARD_PASSWORD },
      viewport: { width: 375, height: 812 },
      isMobile: true,
      hasTouch: true,
    });
    const p = await phone.newPage();
    p.on('pageerror', (e) => problems.push(`phone pageerror: ${e.message}`));
    p.on('console', (m) => m.type() === 'error' && problems.push(`phone console: ${m.text()}`));
    try {
      await p.goto(dashboard);
      await p.waitForSelector(`#dead tr[data-id="${dead}"]`);
      await p.waitForSelector('#intents .badge.open');

      await p.tap('button.count.dead');
      await p.waitForSelector('#intents .badge:not(.dead)', { state: 'detached' });
      expect(await p.locator('#intents tbody tr').count()).toBeGreaterThan(0);
      expect(await p.inputValue('#filter select[name=status]')).toBe('dead');
      expect(await p.getAttribute('button.count.dead', 'aria-pressed')).toBe('true');
      // The filtered list is brought into view.
      const list = (await p.locator('#sec-intents').boundingBox())!;
      expect(list.y).toBeGreaterThanOrEqual(0);
      expect(list.y).toBeLessThan(812);
      await p.screenshot({ path: `${ARTIFACTS}dashboard-phone-dead-filter.png` });

      // One tap on the sticky navigation brings the dead letters into view, below it.
      await p.tap('nav a[href="#sec-dead"]');
      const header = (await p.locator('header.top').boundingBox())!;
      expect(header.y).toBe(0);
      await soon(
        async () => (await p.locator('#sec-dead').boundingBox())!.y,
      ).toBeGreaterThanOrEqual(header.height - 1);
      expect((await p.locator('#sec-dead').boundingBox())!.y).toBeLessThan(812 / 2);
      const stats = await t.api('GET', '/admin/stats', { admin: true });
      expect(Number(await p.textContent('#nav-dead'))).toBe(stats.json.by_status.dead);

      // Pressed again, the card lists every status.
      await p.tap('button.count.dead');
      await p.waitForSelector('#intents .badge.open');
      expect(await p.inputValue('#filter select[name=status]')).toBe('');
    } finally {
      await phone.close();
    }
  });

  it('works when opened as http://admin:PASSWORD@host/admin/dashboard', async () => {
    // No stored credentials: only those in the URL. fetch() refuses a URL holding
    // credentials, so every API call must be made without them.
    const bare = await browser.newContext();
    const p = await bare.newPage();
    const errors: string[] = [];
    p.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    p.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
    try {
      const url = new URL('/admin/dashboard', t.url);
      url.username = 'admin';
      url.password = DASHBOARD_PASSWORD;
      expect((await p.goto(url.href))?.status()).toBe(200);
      await soon(() => p.textContent('#live')).toMatch(/^live/);
      const stats = await t.api('GET', '/admin/stats', { admin: true });
      await soon(async () => Number(await p.textContent('#count-open'))).toBe(
        stats.json.by_status.open,
      );
      // A mutation too: a dead letter retried from the page.
      const id = await deadOne('dash.url-login');
      await p.click(`#dead tr[data-id="${id}"] button:text-is("Retry")`);
      await soon(() => p.textContent('#notice')).toContain('now open');
      expect((await t.api('GET', `/status/${id}`)).json.status).toBe('open');
      expect(errors).toEqual([]);
    } finally {
      await bare.close();
    }
  });

  it('leads / (without credentials) and /admin/dashboard/ to the dashboard', async () => {
    const root = await fetch(`${t.url}/`);
    expect(root.status).toBe(200);
    expect(root.headers.get('content-type')).toContain('text/html');
    expect(root.headers.get('content-security-policy')).toBe(DASHBOARD_CSP);
    expect(root.headers.get('x-frame-options')).toBe('DENY');
    expect(root.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await root.text();
    expect(html).toContain('<a href="admin/dashboard">');
    expect(html).toContain('<meta http-equiv="refresh" content="0; url=admin/dashboard" />');
    expect(html).not.toMatch(/<script|<style|style=|\son[a-z]+=/i);

    // Under /admin the admin login still applies; with it, the page leads to the dashboard.
    expect((await fetch(`${dashboard}/`)).status).toBe(401);
    const slash = await t.api('GET', '/admin/dashboard/', { admin: true });
    expect(slash.status).toBe(200);
    expect(slash.headers.get('content-security-policy')).toBe(DASHBOARD_CSP);
    expect(slash.text).toContain('<a href="../dashboard">');

    // A browser follows both to the dashboard.
    for (const start of [`${t.url}/`, `${dashboard}/`]) {
      const p = await context.newPage();
      try {
        await p.goto(start);
        await p.waitForURL(dashboard);
        await p.waitForSelector('#count-open');
      } finally {
        await p.close();
      }
    }
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
