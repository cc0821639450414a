/**
 * DELETE /admin/dead/<intent_id> (PROTOCOL.md §6): discards a dead letter the operator has
 * dealt with, over real HTTP on both stores. Only a dead intent goes; it then leaves every
 * listing and /status; the admin auth and the cross-site rule of §3 apply.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, publish, startTestBus, type TestBus } from './helpers.js';

describe('discarding a dead letter (§6)', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  const discard = (id: string, headers: Record<string, string> = {}) =>
    t.api('DELETE', `/admin/dead/${id}`, { admin: true, headers });

  /** An intent whose only attempt failed: a dead letter with reason `boom`. */
  async function deadOne(namespace: string): Promise<string> {
    const id = await publish(t.api, { goal: 'discard', namespace, max_attempts: 1 });
    const claim = await t.api('POST', `/claim?namespace=${namespace}`);
    const fail = await t.api('POST', `/fail/${id}`, {
      body: { claim_token: claim.json.claim_token, error: 'boom' },
    });
    expect(fail.json.status).toBe('dead');
    return id;
  }

  it('answers 200 {ok, id, discarded} and the intent is gone from every listing and /status', async () => {
    const id = await deadOne('discard-1');
    const cancelled = await publish(t.api, { goal: 'discard', namespace: 'discard-1' });
    await t.api('POST', `/admin/intents/${cancelled}/cancel`, { admin: true });
    const deadBefore = (await t.api('GET', '/admin/stats', { admin: true })).json.by_status.dead;
    // A result wait on a dead intent answers at once: it is finished, nobody waits on it.
    const result = await t.api('GET', `/result/${id}?wait=5`);
    expect(result.json.status).toBe('dead');

    const r = await discard(id);
    expect(r.status, r.text).toBe(200);
    expect(r.json).toEqual({ ok: true, id, discarded: true });

    expect(errorCode(await t.api('GET', `/admin/dead/${id}`, { admin: true }))).toBe('not_found');
    expect((await t.api('GET', `/admin/intents/${id}`, { admin: true })).status).toBe(404);
    expect((await t.api('GET', `/status/${id}`)).status).toBe(404);
    expect((await t.api('GET', `/result/${id}`)).status).toBe(404);
    const dead = (await t.api('GET', '/admin/dead?namespace=discard-1', { admin: true })).json;
    expect(dead.map((d: { intent_id: string }) => d.intent_id)).toEqual([cancelled]);
    const listed = await t.api('GET', '/admin/intents?namespace=discard-1', { admin: true });
    expect(listed.json.items.map((i: { id: string }) => i.id)).toEqual([cancelled]);
    const stats = (await t.api('GET', '/admin/stats', { admin: true })).json;
    expect(stats.by_status.dead).toBe(deadBefore - 1);

    // Once gone, there is nothing to discard; a cancelled intent is a dead letter too.
    const again = await discard(id);
    expect(again.status).toBe(404);
    expect(errorCode(again)).toBe('not_found');
    expect((await discard(cancelled)).json).toEqual({ ok: true, id: cancelled, discarded: true });
  });

  it('answers 404 for an intent that is not dead, saying so, and leaves it as it was', async () => {
    const open = await publish(t.api, { goal: 'alive', namespace: 'discard-2' });
    const claimed = await publish(t.api, { goal: 'busy', namespace: 'discard-2' });
    const done = await publish(t.api, { goal: 'done', namespace: 'discard-2' });
    const c = await t.api('POST', '/claim?namespace=discard-2&goal=busy');
    const f = await t.api('POST', '/claim?namespace=discard-2&goal=done');
    await t.api('POST', `/fulfill/${done}`, { body: { claim_token: f.json.claim_token } });
    for (const [id, status] of [
      [open, 'open'],
      [claimed, 'claimed'],
      [done, 'fulfilled'],
    ] as const) {
      const r = await discard(id);
      expect(r.status, r.text).toBe(404);
      expect(errorCode(r)).toBe('not_found');
      expect(r.json.error.message).toContain(`is ${status}, not a dead letter`);
      expect((await t.api('GET', `/status/${id}`)).json.status).toBe(status);
    }
    // The claim is still live: the worker can finish it.
    const fulfil = await t.api('POST', `/fulfill/${claimed}`, {
      body: { claim_token: c.json.claim_token },
    });
    expect(fulfil.status).toBe(200);
  });

  it('answers 404 not_found for an unknown or malformed id', async () => {
    for (const id of [randomBytes(16).toString('hex'), 'nope', 'A'.repeat(32)]) {
      const r = await discard(id);
      expect(r.status, id).toBe(404);
      expect(errorCode(r)).toBe('not_found');
    }
  });

  it('needs admin credentials: no API key, not even the main one, is one', async () => {
    const id = await deadOne('discard-3');
    const tester = await t.newKey('discard-tester');
    for (const key of [undefined, null, tester.api_key]) {
      const r = await t.api('DELETE', `/admin/dead/${id}`, { key });
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Basic realm="IntentBus Admin"');
    }
    expect((await t.api('GET', `/admin/dead/${id}`, { admin: true })).status).toBe(200);
  });

  it('is refused cross-site (§3) and passes same-origin', async () => {
    const id = await deadOne('discard-4');
    for (const [headers, raw] of [
      [{ origin: 'http://evil.example' }, undefined],
      [{ 'sec-fetch-site': 'cross-site' }, undefined],
      [{ 'content-type': 'text/plain' }, '{}'], // a form body
    ] as const) {
      const r = await t.api('DELETE', `/admin/dead/${id}`, { admin: true, headers, raw });
      expect(r.status, JSON.stringify(headers)).toBe(403);
      expect(errorCode(r)).toBe('forbidden');
    }
    expect((await t.api('GET', `/admin/dead/${id}`, { admin: true })).status).toBe(200);
    const same = await discard(id, { origin: t.url, 'sec-fetch-site': 'same-origin' });
    expect(same.json).toEqual({ ok: true, id, discarded: true });
  });
});
