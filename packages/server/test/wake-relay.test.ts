/**
 * The wake relay between nodes (wake/pg-relay.ts), two relays on the real PostgreSQL
 * server, each with a recording node behind it: what one node announces, what the other
 * hears. A claimable intent that a claim waiting on its own node takes is not sent to the
 * other nodes (one publish wakes one claim across the bus); one that no claim there takes
 * is, and so is one due later; a node ignores its own messages.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { ClaimableEvent, NodeWake } from '../src/wake/announce.js';
import { PgWakeRelay } from '../src/wake/pg-relay.js';
import { PG_ADMIN_URL } from './pg-database.js';

const quiet = { info() {}, warn() {}, error() {} };

/** A node that records what reaches it; its waiting claims take the ids in `takes`. */
function recorder(takes: ReadonlySet<string> = new Set()) {
  const claimable: Array<{ id: string; at: number }> = [];
  const finished: string[] = [];
  const hearing: boolean[] = [];
  const node: NodeWake = {
    claimable: (e: ClaimableEvent, at: number) => {
      claimable.push({ id: e.id, at });
      return takes.has(e.id);
    },
    finished: (id) => finished.push(id),
    keyRevoked: () => {},
    flow: () => {},
    intentEvent: () => {},
    resync: () => {},
    hearing: (on) => hearing.push(on),
  };
  return { node, claimable, finished, hearing };
}

const event = (id: string): ClaimableEvent => ({
  id,
  namespace: 'default',
  goal: 'g',
  visibility: 'public',
  publisher: 'kid_a',
  targetWorker: null,
  requiredCapability: null,
});

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('not heard in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const relays: PgWakeRelay[] = [];
afterEach(async () => {
  for (const r of relays.splice(0)) await r.close();
});

describe('wake relay', () => {
  it('tells its node it hears nobody while its connection is gone', async () => {
    const a = recorder();
    // Nothing listens on port 1: the relay keeps retrying in the background.
    const relay = new PgWakeRelay({
      connectionString: 'postgres://postgres@127.0.0.1:1/none',
      local: a.node,
      log: quiet,
    });
    relays.push(relay);
    await relay.start();
    expect(relay.state).toBe('reconnecting');
    expect(a.hearing.length).toBeGreaterThan(0);
    expect(a.hearing.every((on) => !on)).toBe(true);
  });

  it('sends a claimable intent to the other nodes only when no claim waiting on its node took it', async () => {
    // A schema of its own: a channel no other test's relays use (no table is needed).
    const schema = `relay_${randomBytes(6).toString('hex')}`;
    const a = recorder(new Set(['taken']));
    const b = recorder();
    const relayA = new PgWakeRelay({
      connectionString: PG_ADMIN_URL,
      schema,
      local: a.node,
      log: quiet,
    });
    const relayB = new PgWakeRelay({
      connectionString: PG_ADMIN_URL,
      schema,
      local: b.node,
      log: quiet,
    });
    relays.push(relayA, relayB);
    await relayA.start();
    await relayB.start();
    expect([relayA.state, relayB.state]).toEqual(['listening', 'listening']);
    // Deaf until listening (a new claim asks the store meanwhile: WaiterHub.coverOf).
    expect(a.hearing).toEqual([false, true]);

    const now = Date.now();
    relayA.claimable(event('taken'), now);
    relayA.claimable(event('free'), now);
    relayA.claimable(event('later'), now + 60_000);
    relayA.finished('done');
    // One node's messages arrive in the order sent: once 'done' is heard, all before it are.
    await until(() => b.finished.includes('done'));
    expect(b.claimable).toEqual([
      { id: 'free', at: now },
      { id: 'later', at: now + 60_000 },
    ]);
    // A heard each of its own announcements once, directly, and none back from the channel.
    expect(a.claimable.map((c) => c.id)).toEqual(['taken', 'free', 'later']);

    // The other way: B's node has no waiting claim, so A hears it.
    relayB.claimable(event('from-b'), now);
    await until(() => a.claimable.some((c) => c.id === 'from-b'));
    expect(b.claimable.filter((c) => c.id === 'from-b')).toHaveLength(1);
    // Its own 'finished', too, reached A once (directly), not a second time by the channel.
    expect(a.finished).toEqual(['done']);
  });
});
