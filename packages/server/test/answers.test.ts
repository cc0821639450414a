/**
 * The answers' JSON schemas (protocol/src/schemas.ts), from which the SDK's wire types are
 * made, hold the bus's real answers: every member they require is there with its type, and
 * an answer has no member they do not name. Every answer of an intent's life is checked,
 * in each state, on the store the suite runs on (both, through the server-pg project).
 */
import Ajv from 'ajv';
import { schemas } from '@intent-bus/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN_KEY, startTestBus, type TestBus } from './helpers.js';

const ajv = new Ajv.default({ allErrors: true, strict: false });
const check = (schema: object) => {
  const validate = ajv.compile(schema);
  return (answer: unknown): void => {
    validate(answer);
    expect(validate.errors ?? [], JSON.stringify(answer)).toEqual([]);
  };
};
const publishResponse = check(schemas.publishResponse);
const claimedIntent = check(schemas.claimedIntent);
const statusObject = check(schemas.statusObject);
const resultObject = check(schemas.resultObject);
const adminIntent = check(schemas.adminIntent);
const deadLetter = check(schemas.deadLetter);
const keyInfo = check(schemas.keyInfo);
const scheduleObject = check(schemas.scheduleObject);
const scheduleDetail = check(schemas.scheduleDetail);
const scheduleTriggered = check(schemas.scheduleTriggered);
const workerInfo = check(schemas.workerInfo);
const goalInfo = check(schemas.goalInfo);
const flowControl = check(schemas.flowControl);
const progressResponse = check(schemas.progressResponse);
const intentEvent = check(schemas.intentEvent);
const errorBody = check(schemas.errorBody);
const fulfillResponse = check(schemas.fulfillResponse);
const failResponse = check(schemas.failResponse);
const publishBatchResponse = check(schemas.publishBatchResponse);
const fulfillBatchResponse = check(schemas.fulfillBatchResponse);
const failBatchResponse = check(schemas.failBatchResponse);

describe('the answer schemas', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  /** Every view of an intent, checked against its schema. */
  async function views(id: string): Promise<void> {
    statusObject((await t.api('GET', `/status/${id}`)).json);
    resultObject((await t.api('GET', `/result/${id}`)).json);
    adminIntent((await t.api('GET', `/admin/intents/${id}`, { admin: true })).json);
  }

  it('refuse an answer with a member missing, mistyped or unknown', () => {
    const validate = ajv.compile(schemas.publishResponse);
    expect(validate({ id: 'a', status: 'published', namespace: 'n' })).toBe(true);
    expect(validate({ id: 'a', status: 'published' })).toBe(false);
    expect(validate({ id: 'a', status: 'queued', namespace: 'n' })).toBe(false);
    expect(validate({ id: 'a', status: 'published', namespace: 'n', extra: 1 })).toBe(false);
  });

  it('hold a publish, a claim and every view of an intent in each of its states', async () => {
    const pub = await t.api('POST', '/intent', {
      body: { goal: 'answers', payload: { n: 1 }, namespace: 'ans', max_attempts: 2 },
    });
    expect(pub.status).toBe(201);
    publishResponse(pub.json);
    const id = pub.json.id as string;
    await views(id); // open

    const claim = await t.api('POST', '/claim?namespace=ans', {
      headers: { 'x-worker-id': 'w1' },
    });
    expect(claim.status).toBe(200);
    claimedIntent(claim.json);
    await views(id); // claimed

    const token = claim.json.claim_token as string;
    // [ext] A progress report (issue 20): its answer, and every view with the progress.
    const reported = await t.api('POST', `/progress/${id}`, {
      body: { claim_token: token, percent: 12.5, message: 'on its way', data: { step: [1] } },
    });
    expect(reported.status).toBe(200);
    progressResponse(reported.json);
    await views(id);
    expect((await t.api('GET', `/status/${id}`)).json.progress).toMatchObject({ percent: 12.5 });
    expect(
      (await t.api('POST', `/fail/${id}`, { body: { claim_token: token, error: 'no' } })).status,
    ).toBe(200);
    await views(id); // open again, with an error

    // Open again after its backoff: the admin's retry makes it claimable now.
    statusObject((await t.api('POST', `/admin/intents/${id}/retry`, { admin: true })).json.intent);
    const again = await t.api('POST', '/claim?namespace=ans');
    expect(again.json.id).toBe(id);
    const fulfil = await t.api('POST', `/fulfill/${id}`, {
      body: { claim_token: again.json.claim_token, result: 'done', result_type: 'text' },
    });
    expect(fulfil.status).toBe(200);
    await views(id); // fulfilled

    const dead = await t.api('POST', '/intent', {
      body: { goal: 'answers', payload: 1, namespace: 'ans' },
    });
    const deadId = dead.json.id as string;
    expect((await t.api('POST', `/admin/intents/${deadId}/cancel`, { admin: true })).status).toBe(
      200,
    );
    await views(deadId); // dead, with its reason
    expect((await t.api('GET', `/status/${deadId}`)).json.dead_reason).toBe('cancelled');

    const list = await t.api('GET', '/admin/intents?namespace=ans', { admin: true });
    expect(list.json.items.length).toBe(2);
    for (const item of list.json.items) statusObject(item);
    const retried = await t.api('POST', `/admin/intents/${deadId}/retry`, { admin: true });
    statusObject(retried.json.intent);

    const cancelled = await t.api('POST', '/intent', {
      body: { goal: 'answers', payload: 1, namespace: 'ans' },
    });
    await t.api('POST', `/admin/intents/${cancelled.json.id}/cancel`, { admin: true });
    const letters = await t.api('GET', '/admin/dead?namespace=ans', { admin: true });
    expect(letters.json.length).toBe(1);
    for (const letter of letters.json) deadLetter(letter);
  });

  it('hold a fulfil and a fail that claim the next intent (next=1) to claimedIntent', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const pub = await t.api('POST', '/intent', {
        body: { goal: 'answers', payload: { i }, namespace: 'ans-next', max_attempts: 1 },
      });
      ids.push(pub.json.id);
    }
    const first = await t.api('POST', '/claim?namespace=ans-next');
    claimedIntent(first.json);
    const second = await t.api('POST', `/fulfill/${ids[0]}?next=1&namespace=ans-next`, {
      body: { claim_token: first.json.claim_token, result: [1] },
      headers: { 'x-worker-id': 'answers-next' },
    });
    expect(second.status).toBe(200);
    expect(second.json.id).toBe(ids[1]);
    claimedIntent(second.json);
    const third = await t.api('POST', `/fail/${ids[1]}?next=1&namespace=ans-next`, {
      body: { claim_token: second.json.claim_token, error: 'no' },
    });
    expect(third.status).toBe(200);
    expect(third.headers.get('x-intent-done')).toBe(`${ids[1]} dead`);
    claimedIntent(third.json);
    await views(ids[0]);
    await views(ids[1]);
  });

  it('hold the keys and the schedules', async () => {
    await t.newKey('answers');
    const keys = await t.api('GET', '/admin/keys', { admin: true });
    expect(keys.json.length).toBeGreaterThan(0);
    for (const key of keys.json) keyInfo(key);

    const put = await t.api('PUT', '/schedules/answers', {
      body: { every: 3600, intent: { goal: 'answers', payload: { n: 1 }, priority: 5 } },
    });
    expect(put.status).toBe(201);
    scheduleObject(put.json);
    const trigger = await t.api('POST', '/schedules/answers/trigger');
    expect(trigger.status).toBe(201);
    scheduleTriggered(trigger.json);
    const detail = await t.api('GET', '/schedules/answers');
    expect(detail.json.runs.length).toBe(1);
    scheduleDetail(detail.json);
    for (const s of (await t.api('GET', '/schedules')).json) scheduleObject(s);
    const paused = await t.api('POST', '/schedules/answers/pause');
    scheduleObject(paused.json);
    scheduleDetail((await t.api('GET', '/schedules/answers')).json);
  });

  it("hold the fleet's workers, the goals and a claimed intent's status", async () => {
    const held = await t.api('POST', '/intent', { body: { goal: 'fleet', payload: 1 } });
    await t.api('POST', '/intent', {
      body: { goal: 'fleet', payload: 2, required_capability: 'whisper' },
    });
    await t.api('POST', '/intent', {
      body: { goal: 'fleet', payload: 3, target_worker: 'phone-gone' },
    });
    const claim = await t.api('POST', '/claim?goal=fleet', {
      headers: { 'x-worker-id': 'answers-1', 'x-worker-capabilities': 'gpu' },
    });
    expect(claim.json.id).toBe(held.json.id);
    const status = (await t.api('GET', `/status/${held.json.id}`)).json;
    expect(status.worker_online).toBe(true);
    statusObject(status);

    const mine = (await t.api('GET', '/workers')).json.workers;
    const all = (await t.api('GET', '/admin/workers', { admin: true })).json.workers;
    expect(mine.length).toBeGreaterThan(0);
    expect(all.length).toBeGreaterThan(0);
    for (const w of [...mine, ...all]) workerInfo(w);
    expect(mine[0].holds.length).toBe(1);

    const goals = (await t.api('GET', '/admin/goals', { admin: true })).json.goals;
    const fleet = goals.find((g: { goal: string }) => g.goal === 'fleet');
    expect(fleet.waiting.map((w: { reason: string }) => w.reason).sort()).toEqual([
      'no_capability',
      'target_offline',
    ]);
    for (const g of goals) goalInfo(g);
  });

  it('hold the flow controls, and a status held back by one', async () => {
    const put = (goal: string, body: unknown) =>
      t.api('PUT', `/admin/flow/ans-flow/${goal}`, { admin: true, body });
    const set = await put('g', { paused: true, rate: { limit: 2, per: 5 } });
    expect(set.status).toBe(200);
    flowControl(set.json);
    flowControl((await put('*', { max_in_flight: 3 })).json);
    const list = await t.api('GET', '/admin/flow', { admin: true });
    expect(list.json.length).toBe(2);
    for (const c of list.json) flowControl(c);
    const pub = await t.api('POST', '/intent', {
      body: { goal: 'g', payload: {}, namespace: 'ans-flow' },
    });
    const status = await t.api('GET', `/status/${pub.json.id}`);
    expect(status.json.held_by).toBe('paused');
    statusObject(status.json);
    // Removed: nothing left set.
    flowControl((await put('g', { paused: false, rate: null })).json);
  });

  it('hold every record of the event stream to intentEvent', async () => {
    const ac = new AbortController();
    const res = await fetch(`${t.url}/events?namespace=ans-ev`, {
      headers: { 'x-api-key': MAIN_KEY },
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    const pub = await t.api('POST', '/intent', {
      body: { goal: 'answers', payload: {}, namespace: 'ans-ev', max_attempts: 1 },
    });
    const id = pub.json.id as string;
    const c = await t.api('POST', '/claim?namespace=ans-ev');
    await t.api('POST', `/progress/${id}`, {
      body: { claim_token: c.json.claim_token, data: [1, 'two'] },
    });
    await t.api('POST', `/fail/${id}`, { body: { claim_token: c.json.claim_token } });
    await t.api('POST', `/admin/intents/${id}/retry`, { admin: true });
    await t.api('POST', `/admin/intents/${id}/cancel`, { admin: true });
    let text = '';
    const decoder = new TextDecoder();
    while ((text.match(/^data: /gm) ?? []).length < 6) {
      text += decoder.decode((await reader.read()).value, { stream: true });
    }
    ac.abort();
    const records = text.split('\n').filter((l) => l.startsWith('data: '));
    const datas = records.map((l) => JSON.parse(l.slice(6)) as { type: string });
    expect(datas.map((d) => d.type)).toEqual([
      'published',
      'claimed',
      'progress',
      'dead',
      'retried',
      'cancelled',
    ]);
    for (const d of datas) intentEvent(d);
  });

  it('hold the batches [ext] (issue 21): each item as the single answer, errors too', async () => {
    const pub = await t.api('POST', '/intents', {
      body: {
        intents: [
          { goal: 'answers', payload: 1, namespace: 'ans-b', max_attempts: 2 },
          { goal: 'answers', payload: 2, namespace: 'ans-b', max_attempts: 2 },
          { goal: 'answers', payload: 3, namespace: 'ans-b', max_attempts: 2 },
          { payload: 4 },
        ],
      },
    });
    expect(pub.status).toBe(200);
    publishBatchResponse(pub.json);
    publishResponse(pub.json.results[0].body);
    errorBody(pub.json.results[3].body);
    const claimed = await t.api('POST', '/claim?namespace=ans-b&max=3');
    expect(claimed.status).toBe(200);
    expect(claimed.json).toHaveLength(3);
    for (const c of claimed.json) claimedIntent(c);
    const [a, b, c] = claimed.json as Array<{ id: string; claim_token: string }>;
    const ful = await t.api('POST', '/fulfill', {
      body: {
        items: [
          { id: a!.id, claim_token: a!.claim_token, result: { ok: 1 } },
          { id: b!.id, claim_token: 'stale' },
        ],
      },
    });
    fulfillBatchResponse(ful.json);
    fulfillResponse(ful.json.results[0].body);
    errorBody(ful.json.results[1].body);
    const fail = await t.api('POST', '/fail', {
      body: {
        items: [
          { id: b!.id, claim_token: b!.claim_token, error: 'x' },
          { id: c!.id, claim_token: c!.claim_token },
        ],
      },
    });
    failBatchResponse(fail.json);
    // A first attempt of two failed: open again.
    expect(
      fail.json.results.map((r: { body: { status: string } }) => r.body.status).sort(),
    ).toEqual(['open', 'open']);
    for (const r of fail.json.results) failResponse(r.body);
    // The single routes' answers, which the batch items repeat.
    const single = await t.api('POST', '/intent', {
      body: { goal: 'answers', payload: 5, namespace: 'ans-b1', max_attempts: 1 },
    });
    const one = await t.api('POST', '/claim?namespace=ans-b1');
    const done = await t.api('POST', `/fulfill/${single.json.id}`, {
      body: { claim_token: one.json.claim_token },
    });
    fulfillResponse(done.json);
    errorBody(
      (await t.api('POST', `/fail/${single.json.id}`, { body: { claim_token: 'x' } })).json,
    );
  });
});
