import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publish, startTestBus, type TestBus } from './helpers.js';

describe('publish → claim → fulfil → result over a real socket', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('completes the round trip of the README', async () => {
    const id = await publish(t.api, {
      goal: 'send_notification',
      payload: { instruction: 'Hello' },
    });
    const claim = await t.api('POST', '/claim?goal=send_notification');
    expect(claim.status).toBe(200);
    expect(claim.json).toMatchObject({
      id,
      goal: 'send_notification',
      payload: { instruction: 'Hello' },
    });
    const done = await t.api('POST', `/fulfill/${id}`, {
      body: { claim_token: claim.json.claim_token, result: 'done', result_type: 'text' },
    });
    expect(done.json).toEqual({ ok: true, id, status: 'fulfilled' });
    const result = await t.api('GET', `/result/${id}`);
    expect(result.json).toMatchObject({
      id,
      status: 'fulfilled',
      result: 'done',
      result_type: 'text',
    });
  });
});
