/**
 * A claim, optionally held open as a long poll (PROTOCOL.md §5.2 [ext]).
 * The waiter registers before each claim attempt, so a wake-up that lands while the
 * attempt runs is never lost. A waiter woken for intent X that ends up claiming another
 * intent passes X's wake-up on, so X still reaches a waiting worker. A request that waited
 * checks its key again before it claims: a key revoked meanwhile gets 401, never an intent.
 */
import { performance } from 'node:perf_hooks';
import { BusError, unauthorized } from '../core/errors.js';
import { randomHex128 } from '../ids.js';
import { MAIN_KEY_ID, type Principal } from '../core/principal.js';
import type { ClaimFilter } from '../core/routing.js';
import { IN_FLIGHT_RETRY_MS, controlsFor, type FlowHeld } from '../core/flow.js';
import type { ClaimRequest, IntentRow, WorkerCommand } from '../store/store.js';
import type { ClaimableEvent } from '../wake/announce.js';
import type { Carrier } from '../wake/hub.js';
import type { OpsContext, Requester } from './context.js';
import type { Sighting } from './workers.js';

/**
 * What a claim gives: the claimed row (announced); nothing in `waitMs`, with
 * `retryAfterMs` when a flow control held back what it would have taken (ops/flow.ts); or,
 * for a worker an admin told to quiet or stop, that command instead of an intent (issue 18).
 */
export type ClaimOutcome =
  /** `rows`: a claim of `max` > 1 (issue 21), every intent it took (`row` the first). */
  | { kind: 'claimed'; row: IntentRow; rows?: IntentRow[] }
  | { kind: 'none'; retryAfterMs: number | null }
  | { kind: 'command'; command: WorkerCommand };

export async function claim(
  ctx: OpsContext,
  principal: Principal,
  filter: ClaimFilter,
  waitMs: number,
  client: Requester,
  seen: Sighting,
  /** [ext] issue 21: claim up to this many (1 ≤ max ≤ LIMITS.claimMax.max). */
  max = 1,
): Promise<ClaimOutcome> {
  // A claim that names its worker is seen by the registry, waiting included.
  const told = ctx.workers.claimBegins(filter, seen, ctx.clock.now());
  try {
    if (told) return { kind: 'command', command: told };
    const out = await claimWithWait(ctx, principal, filter, waitMs, client, max);
    if (out.kind === 'claimed') {
      const now = ctx.clock.now();
      for (const row of out.rows ?? [out.row]) ctx.events.claimed(row, now);
    }
    return out;
  } finally {
    ctx.workers.claimEnds(filter, ctx.clock.now());
  }
}

const none = (retryAfterMs: number | null = null): ClaimOutcome => ({ kind: 'none', retryAfterMs });

/**
 * One claim attempt: the plain statement when no control applies, else the controlled one;
 * for `max` > 1, up to `max` of them in one atomic step (a token each).
 */
async function attempt(
  ctx: OpsContext,
  req: ClaimRequest,
  max: number,
): Promise<{ rows: IntentRow[]; held: FlowHeld | null }> {
  const known = ctx.flow.of(req.namespace);
  const set = Array.isArray(known) ? known : await known;
  // Only the controls that could hold this claim: a goal's own, and the namespace's.
  const controls = set.length > 0 && req.goal != null ? controlsFor(set, req.goal) : set;
  const tokens = max > 1 ? Array.from({ length: max }, randomHex128) : null;
  if (controls.length === 0) {
    if (tokens) return { rows: await ctx.store.intentClaimMany(req, tokens), held: null };
    const row = await ctx.store.intentClaim(req);
    return { rows: row ? [row] : [], held: null };
  }
  let out: { rows: IntentRow[]; held: FlowHeld | null };
  if (tokens) out = await ctx.store.intentClaimFlowMany(req, controls, tokens);
  else {
    const one = await ctx.store.intentClaimFlow(req, controls);
    out = { rows: one.row ? [one.row] : [], held: one.held };
  }
  if (out.held) ctx.events.flowHeld(req.namespace, out.held.goal, out.held.hold.by);
  return out;
}

async function claimWithWait(
  ctx: OpsContext,
  principal: Principal,
  filter: ClaimFilter,
  waitMs: number,
  client: Requester,
  max: number,
): Promise<ClaimOutcome> {
  const deadline = performance.now() + waitMs;
  // The wake-up this claim carries (hub.carry), until its claim uses it or passes it on.
  const carrier: Carrier = { event: null };
  /**
   * The wake-up for `e` was not used (this claim took `claimed`, or nothing): a claim
   * under way that was woken for one of `claimed` gets it instead, else the next waiting
   * claim that could take it (on this node or another).
   */
  const handOff = (e: ClaimableEvent | null, claimed: readonly IntentRow[]): void => {
    if (!e || claimed.some((r) => r.id === e.id)) return;
    for (const r of claimed) {
      const other = ctx.hub.carrierOf(r.id);
      if (other && other !== carrier) return ctx.hub.carry(other, e);
    }
    ctx.events.passOn(e);
  };
  const passOn = (claimed: readonly IntentRow[]): void => {
    const e = carrier.event;
    ctx.hub.carry(carrier, null);
    handOff(e, claimed);
  };
  try {
    return await claimLoop();
  } finally {
    // Whatever ended it (a store failure, a revoked key): no wake-up stays with it.
    if (carrier.event) passOn([]);
  }

  async function claimLoop(): Promise<ClaimOutcome> {
    for (let first = true; ; first = false) {
      // Told to quiet or stop while it waited (ops/workers.ts wakes it): claim nothing.
      const command = ctx.workers.commandOf(filter.keyId, filter.workerId);
      if (command) {
        passOn([]);
        return { kind: 'command', command };
      }
      const remaining = deadline - performance.now();
      const epoch = ctx.hub.epoch;
      let ticket =
        remaining > 0 && !client.gone
          ? ctx.hub.waitForClaim(filter, principal.isMain, remaining, client)
          : null;
      // A claim that comes while one that covers it waits, having found nothing, with nothing
      // left untaken since: the store would answer nothing (hub.coverOf), so it waits at once.
      // The next intent for them wakes the longest waiting first.
      const covered = first && ticket ? ctx.hub.coverOf(filter) : null;
      if (ticket && covered !== null) {
        ticket.foundNothing(covered);
        const outcome = await ticket.wait();
        if (outcome.kind === 'revoked') throw unauthorized();
        if (outcome.kind !== 'woken') return none();
        const ended = await afterWake(outcome.event);
        if (ended) return ended;
        continue;
      }
      let rows: IntentRow[];
      let held: FlowHeld | null;
      const carried = carrier.event;
      try {
        ({ rows, held } = await attempt(
          ctx,
          {
            ...filter,
            now: ctx.clock.now(),
            token: randomHex128(),
            leaseMs: ctx.config.claimTimeoutSeconds * 1000,
          },
          max,
        ));
      } catch (err) {
        // The store failed: leave no waiter behind and lose no wake-up.
        const pending = ticket?.cancel();
        passOn([]);
        if (pending?.kind === 'woken') handOff(pending.event, []);
        throw err;
      }
      const pending = rows.length > 0 ? (ticket?.cancel() ?? null) : null;
      // The client left, or its key was revoked, while the claim ran: nobody would ever run
      // them. Put them back.
      if (rows.length > 0 && (client.gone || pending?.kind === 'revoked')) {
        for (const row of rows) {
          const back = await ctx.store.intentUnclaim(row.id, row.claimToken!);
          if (back) ctx.events.changed(back, 'released');
        }
        rows = [];
        passOn([]);
        if (pending?.kind === 'woken') handOff(pending.event, []);
      }
      if (pending?.kind === 'revoked') {
        passOn([]);
        throw unauthorized();
      }
      if (rows.length > 0) {
        passOn(rows);
        if (pending?.kind === 'woken') handOff(pending.event, rows);
        return max > 1
          ? { kind: 'claimed', row: rows[0]!, rows }
          : { kind: 'claimed', row: rows[0]! };
      }
      // Found nothing: the intent it was woken for is taken. One handed to it while its claim
      // ran may not have been seen by it: passed on.
      if (carrier.event !== carried) passOn([]);
      else ctx.hub.carry(carrier, null);
      const retryAfterMs = held ? retryAfterOf(held, ctx.clock.now()) : null;
      if (!ticket) return none(retryAfterMs);
      if (!held) ticket.foundNothing(epoch);
      if (held?.hold.retryAt != null) {
        // Held back until a known time (a rate's next slot; an in-flight limit is looked at
        // again after IN_FLIGHT_RETRY_MS): wait until then at most. Both tickets are handled
        // in this one turn, so no wake-up falls between them.
        const early = ticket.cancel();
        if (early?.kind === 'revoked') throw unauthorized();
        if (early?.kind === 'woken') {
          ctx.hub.carry(carrier, early.event);
          continue;
        }
        const until = Math.min(deadline - performance.now(), held.hold.retryAt - ctx.clock.now());
        ticket = ctx.hub.waitForClaim(filter, principal.isMain, Math.max(0, until), client);
        if (!ticket) return none(retryAfterMs);
      }
      const outcome = await ticket.wait();
      if (outcome.kind === 'revoked') throw unauthorized();
      if (outcome.kind === 'timeout' && held && deadline - performance.now() > 0) continue;
      if (outcome.kind !== 'woken') return none(retryAfterMs);
      const ended = await afterWake(outcome.event);
      if (ended) return ended;
    }
  }

  /**
   * A wait woke with `event`: this claim carries it, and claims again unless its client
   * left (none) or its key was revoked meanwhile (401). A revoke this node did not hear (a
   * reconnecting relay) is seen here, within the key recheck bound (http/auth.ts).
   */
  async function afterWake(event: ClaimableEvent | null): Promise<ClaimOutcome | null> {
    ctx.hub.carry(carrier, event);
    if (client.gone) {
      passOn([]);
      return none();
    }
    if (!(await ctx.keys.stillValid(principal))) {
      passOn([]);
      throw unauthorized();
    }
    return null;
  }
}

/** When capacity may return, in ms from now (paused: when resumed, so a poll's second). */
function retryAfterOf(held: FlowHeld, now: number): number {
  return held.hold.retryAt == null ? IN_FLIGHT_RETRY_MS : Math.max(0, held.hold.retryAt - now);
}

/**
 * The `publisher` claim filter names a key by its raw value or its key id. A tester key
 * may only name itself (else 403); the main key may name anyone.
 */
export async function resolvePublisher(
  ctx: OpsContext,
  given: string,
  p: Principal,
): Promise<string> {
  let keyId = given;
  if (given !== MAIN_KEY_ID && !given.startsWith('kid_')) {
    const found = await ctx.keys.lookup(given);
    // An unknown value matches no intent; for a tester key it is someone else's.
    keyId = found ? found.keyId : `unknown:${given.length}`;
  }
  if (!p.isMain && keyId !== p.keyId) {
    throw new BusError('forbidden', 'A key may only filter by its own publisher');
  }
  return keyId;
}
