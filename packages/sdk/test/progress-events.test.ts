/**
 * The SDK's progress and event stream (issue 20) against a real bus: job.progress in the
 * WorkerRuntime reaches the publisher's status and stream; client.events resumes after a
 * dropped connection with Last-Event-ID and loses nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkerRuntime, type StreamRecord } from '../src/index.js';
import { clientOf, closeBus, startTestBus, uniqueGoal, waitFor, type TestBus } from './support.js';

let t: TestBus;
beforeAll(async () => {
  t = await startTestBus();
});
afterAll(async () => {
  await closeBus(t);
});

describe('progress and events in the SDK', () => {
  it('job.progress is seen in the status and on client.events', async () => {
    const client = clientOf(t);
    const goal = uniqueGoal('sdk.pr');
    const ac = new AbortController();
    const seen: StreamRecord[] = [];
    const reading = (async () => {
      for await (const r of client.events({ goal }, { signal: ac.signal })) seen.push(r);
    })();
    const { id } = await client.publish(goal, { n: 1 });
    const runtime = new WorkerRuntime({ client });
    await runtime.listen({
      goal,
      once: true,
      waitSeconds: 5,
      handleSignals: false,
      handler: async (job) => {
        const out = await job.progress({ percent: 50, message: 'half', data: { k: [1] } });
        expect(out).toMatchObject({ ok: true, id, held: false });
        return 'done';
      },
    });
    await waitFor(() => seen.some((r) => r.event === 'fulfilled'), 5000, 'fulfilled event');
    ac.abort();
    await reading;
    expect(seen.map((r) => r.event)).toEqual(['published', 'claimed', 'progress', 'fulfilled']);
    expect(seen[2]!.data).toMatchObject({
      progress: { percent: 50, message: 'half', data: { k: [1] } },
    });
    const st = await client.getResult(id);
    expect(st.progress).toMatchObject({ percent: 50, message: 'half', data: { k: [1] } });
  });

  it('client.events resumes after a dropped connection and loses nothing', async () => {
    const client = clientOf(t);
    const goal = uniqueGoal('sdk.ev');
    const ac = new AbortController();
    const seen: StreamRecord[] = [];
    const reading = (async () => {
      for await (const r of client.events({ goal }, { signal: ac.signal })) seen.push(r);
    })();
    await waitFor(() => t.bus.streams.connections > 0, 5000, 'stream open');
    const first = await client.publish(goal, {});
    await waitFor(() => seen.length >= 1, 5000, 'first event');
    // The bus ends the stream (as a node would at a restart), then publishes twice more
    // before the client is back.
    t.bus.streams.closeAll();
    const later = [(await client.publish(goal, {})).id, (await client.publish(goal, {})).id];
    await waitFor(() => seen.length >= 3, 8000, 'events after the resume');
    ac.abort();
    await reading;
    expect(seen.map((r) => r.data.id)).toEqual([first.id, ...later]);
    expect(seen.every((r) => r.event === 'published')).toBe(true);
  });
});
