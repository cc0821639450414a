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

  it('keeps a KV value as sent', async () => {
    const set = await t.api('POST', '/set/big', {
      raw: '{"value":9007199254740993,"ttl":60}',
      headers: { 'content-type': 'application/json' },
    });
    expect(set.status).toBe(200);
    expect((await t.api('GET', '/get/big')).text).toBe('{"value":9007199254740993}');
  });
});
