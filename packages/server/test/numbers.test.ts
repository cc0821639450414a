/**
 * Payloads, results and KV values come back exactly as sent: a Python client's big
 * integers and floats must survive (PROTOCOL.md §5: "/get returns it as stored").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBus, type TestBus } from './helpers.js';

const PAYLOAD =
  '{"discord_id":1234567890123456789,"ratio":1.0,"tiny":1e-7,"note":"PAYLOAD_CANARY"}';

describe('exact JSON values', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('keeps the payload and the result as sent, through claim, result and admin views', async () => {
    const pub = await t.api('POST', '/intent', {
      raw: `{"goal":"exact","payload":${PAYLOAD}}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(pub.status).toBe(201);
    const claim = await t.api('POST', '/claim?goal=exact');
    expect(claim.text).toContain(`"payload":${PAYLOAD}`);
    const id = claim.json.id as string;
    const fulfil = await t.api('POST', `/fulfill/${id}`, {
      raw: `{"claim_token":"${claim.json.claim_token}","result":{"big":98765432109876543210,"f":2.50}}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(fulfil.status).toBe(200);
    const result = await t.api('GET', `/result/${id}`);
    expect(result.text).toContain('"result":{"big":98765432109876543210,"f":2.50}');
    const admin = await t.api('GET', `/admin/intents/${id}`, { admin: true });
    expect(admin.text).toContain(`"payload":${PAYLOAD}`);
    expect(admin.text).toContain('"result":{"big":98765432109876543210,"f":2.50}');
  });

  // PostgreSQL text cannot hold U+0000 (the store escapes it with U+E000, escaped in turn):
  // both come back exactly as sent, and compare equal to themselves, on either store.
  it('keeps U+0000 and U+E000 in a goal, an error, a KV name and value and a key owner', async () => {
    const odd = 'a\u0000b\uE000c\uE0000\uE0001\u0000';
    const id = await t.api('POST', '/intent', {
      body: { goal: odd, payload: { note: odd }, namespace: 'odd', max_attempts: 1 },
    });
    expect(id.status, id.text).toBe(201);
    const claim = await t.api('POST', `/claim?namespace=odd&goal=${encodeURIComponent(odd)}`);
    expect(claim.status, claim.text).toBe(200);
    expect(claim.json).toMatchObject({ id: id.json.id, goal: odd, payload: { note: odd } });
    expect((await t.api('POST', '/claim?namespace=odd&goal=a')).status).toBe(204);
    const fail = await t.api('POST', `/fail/${id.json.id}`, {
      body: { claim_token: claim.json.claim_token, error: odd },
    });
    expect(fail.status, fail.text).toBe(200);
    const status = await t.api('GET', `/status/${id.json.id}`);
    expect(status.json).toMatchObject({ goal: odd, status: 'dead', error: odd });
    const name = encodeURIComponent(odd);
    expect((await t.api('POST', `/set/${name}`, { body: { value: odd } })).status).toBe(200);
    expect((await t.api('GET', `/get/${name}`)).json).toEqual({ value: odd });
    expect((await t.api('GET', `/get/${encodeURIComponent('a\u0000b')}`)).status).toBe(404);
    const { key_id } = await t.newKey(odd);
    const keys = await t.api('GET', '/admin/keys', { admin: true });
    expect(keys.json).toContainEqual(expect.objectContaining({ key_id, owner: odd }));
  });

  it('keeps a KV value as sent', async () => {
    const set = await t.api('POST', '/set/big', {
      raw: '{"value":9007199254740993,"ttl":60}',
      headers: { 'content-type': 'application/json' },
    });
    expect(set.status).toBe(200);
    expect((await t.api('GET', '/get/big')).text).toBe('{"value":9007199254740993}');
  });
});
