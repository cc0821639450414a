/**
 * Exact JSON through the SDK, on a real bus: a payload, a result and a KV value are sent as
 * the text the caller gave and handed back as the text the bus sent, so that integers
 * beyond 2^53 and decimals no double holds (1.0, 1e400, 0.1000000000000000000001) arrive
 * as written. The parsed values stay beside the texts for convenience.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  JsonText,
  ValidationError,
  WorkerRuntime,
  jsonText,
  newNonce,
  rawMember,
  withRawMembers,
  type IntentClient,
  type Job,
} from '../src/index.js';
import { clientOf, closeBus, startTestBus, uniqueGoal, type TestBus } from './support.js';

/** Numbers JSON.parse rounds or changes; and text that is not written compactly. */
const PAYLOAD =
  '{"n":12345678901234567890,"m":-98765432109876543210,"d":0.1000000000000000000001,' +
  '"r":1.0,"e":1e400,"list":[1.0,{"x":-0.0}]}';
const SPACED = '{ "big" : 98765432109876543210 , "f" : 2.50 }';

describe('exact JSON through the SDK', () => {
  let t: TestBus;
  let c: IntentClient;
  beforeAll(async () => {
    t = await startTestBus({ env: { BUS_RATE_LIMIT_PER_MINUTE: '100000' } });
    c = clientOf(t);
  });
  afterAll(async () => closeBus(t));

  it('publish with payloadText sends the text as written; a claim hands it back as payloadText', async () => {
    const goal = uniqueGoal('exact_publish');
    const { id } = await c.publish(goal, undefined, { payloadText: PAYLOAD });
    // What the bus keeps: its raw claim answer.
    const raw = await t.api('POST', `/claim?goal=${goal}`);
    expect(raw.status).toBe(200);
    expect(raw.text).toContain(`"payload":${PAYLOAD}`);
    expect(raw.json.id).toBe(id);

    // The same through the SDK's claim, with the parsed value beside the text.
    const again = await c.publish(goal, jsonText(` ${SPACED}\n`));
    const job = (await c.claim({ goal }))!;
    expect(job.id).toBe(again.id);
    expect(job.payloadText).toBe(SPACED);
    expect(job.payload).toEqual(JSON.parse(SPACED)); // rounded: a convenience only
  });

  it('a worker sees job.payloadText exact and fulfils with resultText; getResult().resultText is exact', async () => {
    const goal = uniqueGoal('exact_runtime');
    const echo = await c.publish(goal, undefined, { payloadText: PAYLOAD });
    const spaced = await c.publish(goal, undefined, { payloadText: SPACED });
    const seen: Job[] = [];
    const summary = await new WorkerRuntime({ client: c, concurrency: 1 }).listen({
      goal,
      handleSignals: false,
      waitSeconds: 0,
      once: true,
      handler: (job) => {
        seen.push(job);
        return jsonText(job.payloadText);
      },
    });
    expect(summary).toMatchObject({ claimed: 1, fulfilled: 1 });
    expect(seen[0]!.payloadText).toBe(PAYLOAD);
    const r = await c.getResult(echo.id);
    expect(r).toMatchObject({ status: 'fulfilled', result_type: 'json' });
    expect(r.resultText).toBe(PAYLOAD);
    expect(r.result).toEqual(JSON.parse(PAYLOAD));
    expect((await t.api('GET', `/result/${echo.id}`)).text).toContain(`"result":${PAYLOAD}`);

    // fulfill(id, token, undefined, { resultText }) by hand.
    const job = (await c.claim({ goal }))!;
    expect(job.id).toBe(spaced.id);
    expect(job.payloadText).toBe(SPACED);
    await c.fulfill(job.id, job.claim_token, undefined, { resultText: job.payloadText });
    const r2 = await c.getResult(spaced.id);
    expect(r2.resultText).toBe(SPACED);
    expect((await t.api('GET', `/result/${spaced.id}`)).text).toContain(`"result":${SPACED}`);
    // An intent without a result: the text of null.
    const open = await c.publish(goal, {});
    expect((await c.getResult(open.id)).resultText).toBe('null');
  });

  it('the admin views carry payloadText and resultText', async () => {
    const goal = uniqueGoal('exact_admin');
    const { id } = await c.publish(goal, undefined, { payloadText: PAYLOAD, maxAttempts: 1 });
    const job = (await c.claim({ goal }))!;
    await c.fulfill(job.id, job.claim_token, jsonText(SPACED));
    const i = await c.admin.intent(id);
    expect(i.payloadText).toBe(PAYLOAD);
    expect(i.resultText).toBe(SPACED);
    const dead = await c.publish(goal, undefined, { payloadText: PAYLOAD, maxAttempts: 1 });
    const j2 = (await c.claim({ goal }))!;
    await c.fail(j2.id, j2.claim_token, 'no');
    const d = await c.admin.deadLetter(dead.id);
    expect(d.payloadText).toBe(PAYLOAD);
  });

  it('set with valueText and getText keep a KV value exact', async () => {
    const name = uniqueGoal('exact_kv');
    await c.set(name, undefined, { valueText: PAYLOAD, ttl: 60 });
    expect(await c.getText(name)).toBe(PAYLOAD);
    expect(await c.get(name)).toEqual(JSON.parse(PAYLOAD));
    expect((await t.api('GET', `/get/${name}`)).text).toBe(`{"value":${PAYLOAD}}`);
    await c.set(name, jsonText('-98765432109876543210'));
    expect(await c.getText(name)).toBe('-98765432109876543210');
    await c.set(name, 'plain');
    expect(await c.getText(name)).toBe('"plain"');
    expect(await c.getText(`${name}-absent`)).toBeUndefined();
  });

  it('an idempotency key compares the exact payloads: one digit past 2^53 is a conflict', async () => {
    const goal = uniqueGoal('exact_idem');
    const key = `idem-${newNonce()}`;
    const a = await c.publish(goal, undefined, {
      payloadText: '12345678901234567890',
      idempotencyKey: key,
    });
    const b = await c.publish(goal, jsonText('12345678901234567890'), { idempotencyKey: key });
    expect(b.id).toBe(a.id);
    await expect(
      c.publish(goal, undefined, { payloadText: '12345678901234567891', idempotencyKey: key }),
    ).rejects.toBeInstanceOf(ValidationError);
  });

  it('refuses text that is not JSON, and a value given with its text, before sending', async () => {
    expect(() => jsonText('{"a":')).toThrow(TypeError);
    expect(() => new JsonText('1 2')).toThrow(/not JSON text/);
    const goal = uniqueGoal('exact_refused');
    await expect(c.publish(goal, undefined, { payloadText: 'nope' })).rejects.toThrow(
      /payloadText: not JSON text/,
    );
    await expect(c.publish(goal, { a: 1 }, { payloadText: '{"a":1}' })).rejects.toThrow(
      /payload or payloadText, not both/,
    );
    await expect(c.set('x', 1, { valueText: '1' })).rejects.toThrow(/value or valueText/);
    await expect(c.fulfill('0'.repeat(32), 'tok', 1, { resultText: '1' })).rejects.toThrow(
      /result or resultText/,
    );
    expect(await c.getStatus((await c.publish(goal, {})).id)).toMatchObject({ status: 'open' });
  });

  it('exports the scanner, for callers reading or building bodies by hand', () => {
    const body = withRawMembers({ goal: 'g' }, { payload: PAYLOAD });
    expect(body).toBe(`{"goal":"g","payload":${PAYLOAD}}`);
    expect(rawMember(body, 'payload')).toBe(PAYLOAD);
  });
});
