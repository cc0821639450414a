/**
 * The fleet's operations (issue 18): the workers a key may see, the commands an admin gives
 * them, and why open intents wait. The reasons use the claim rule itself
 * (core/routing.ts's matchesClaim, through WorkerRegistry.couldClaim), so a reason is given
 * exactly when no online worker's claims could take the intent.
 */
import { notFound } from '../core/errors.js';
import type { Principal } from '../core/principal.js';
import type { WorkerCommand, WorkerRef } from '../store/store.js';
import type { OpsContext } from './context.js';
import { WorkerRegistry, type WorkerView } from './workers.js';

/** A key's own workers; the main key's: every key's. */
export function listWorkers(ctx: OpsContext, p: Principal): Promise<WorkerView[]> {
  return ctx.workers.list(p.isMain ? null : p.keyId, ctx.clock.now());
}

export function listAllWorkers(ctx: OpsContext): Promise<WorkerView[]> {
  return ctx.workers.list(null, ctx.clock.now());
}

/** quiet, stop or resume (clears the command); the workers told, or 404. */
export async function commandWorker(
  ctx: OpsContext,
  workerId: string,
  keyId: string | null,
  verb: WorkerCommand | 'resume',
): Promise<WorkerRef[]> {
  const refs = await ctx.workers.command(workerId, keyId, verb === 'resume' ? null : verb);
  if (refs.length === 0) throw notFound('Worker not found');
  return refs;
}

export async function forgetWorker(
  ctx: OpsContext,
  workerId: string,
  keyId: string | null,
): Promise<WorkerRef[]> {
  const refs = await ctx.workers.forget(workerId, keyId);
  if (refs.length === 0) throw notFound('Worker not found');
  return refs;
}

/** Why some open intents wait: no online worker's claim could take them. */
export type WaitReason =
  | { reason: 'no_worker'; intents: number }
  | { reason: 'no_capability'; capability: string; intents: number }
  | { reason: 'target_offline'; targetWorker: string; lastSeen: number | null; intents: number }
  | { reason: 'private_unused'; publisher: string; intents: number }
  | { reason: 'no_match'; intents: number };

export interface GoalReport {
  namespace: string;
  goal: string;
  open: number;
  claimed: number;
  dead: number;
  /** Created time of the oldest open intent, ms, or null. */
  oldestOpen: number | null;
  waiting: WaitReason[];
}

/** Groups of open intents looked at (each a distinct routing of one goal). */
const ROUTES_LIMIT = 5000;

export async function goalsReport(ctx: OpsContext): Promise<GoalReport[]> {
  const now = ctx.clock.now();
  const [counts, routes, workers] = await Promise.all([
    ctx.store.goalCounts(),
    ctx.store.openRoutes(now, ROUTES_LIMIT),
    ctx.workers.list(null, now),
  ]);
  const goals = new Map<string, GoalReport>();
  const goalOf = (namespace: string, goal: string): GoalReport => {
    const k = `${namespace}\n${goal}`;
    let g = goals.get(k);
    if (!g) {
      goals.set(
        k,
        (g = { namespace, goal, open: 0, claimed: 0, dead: 0, oldestOpen: null, waiting: [] }),
      );
    }
    return g;
  };
  for (const c of counts) {
    const g = goalOf(c.namespace, c.goal);
    if (c.status === 'open') {
      g.open = c.n;
      g.oldestOpen = c.oldest;
    } else if (c.status === 'claimed') g.claimed = c.n;
    else if (c.status === 'dead') g.dead = c.n;
  }
  const online = workers.filter((w) => w.online && w.command == null);
  for (const r of routes) {
    if (online.some((w) => WorkerRegistry.couldClaim(w, r))) continue;
    const why = reasonFor(r, online, workers);
    const list = goalOf(r.namespace, r.goal).waiting;
    const same = list.find((x) => sameReason(x, why));
    if (same) same.intents += r.n;
    else list.push({ ...why, intents: r.n } as WaitReason);
  }
  return [...goals.values()].sort((a, b) =>
    a.namespace === b.namespace ? (a.goal < b.goal ? -1 : 1) : a.namespace < b.namespace ? -1 : 1,
  );
}

type Route = Parameters<typeof WorkerRegistry.couldClaim>[1];
type Reason = DistributiveOmit<WaitReason, 'intents'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * The first thing, in this order, that no online worker offers: the target worker, the
 * goal, the capability, the publisher's key. Each step narrows to the online workers that
 * pass the ones before it, and asks the claim rule with that one attribute left out.
 */
function reasonFor(r: Route, online: WorkerView[], all: WorkerView[]): Reason {
  if (r.targetWorker != null) {
    const named = online.filter((w) => w.workerId === r.targetWorker);
    if (named.length === 0) {
      const seen = all.filter((w) => w.workerId === r.targetWorker).map((w) => w.lastSeen);
      return {
        reason: 'target_offline',
        targetWorker: r.targetWorker,
        lastSeen: seen.length > 0 ? Math.max(...seen) : null,
      };
    }
    online = named;
  }
  // The goal, whatever the capability and publisher: a public intent without a capability.
  const forGoal = online.filter((w) =>
    WorkerRegistry.couldClaim(w, {
      ...r,
      requiredCapability: null,
      visibility: 'public',
    }),
  );
  if (forGoal.length === 0) return { reason: 'no_worker' };
  if (r.requiredCapability != null) {
    const capable = forGoal.filter((w) =>
      WorkerRegistry.couldClaim(w, { ...r, visibility: 'public' }),
    );
    if (capable.length === 0) return { reason: 'no_capability', capability: r.requiredCapability };
  }
  if (r.visibility === 'private') return { reason: 'private_unused', publisher: r.publisher };
  return { reason: 'no_match' };
}

function sameReason(a: WaitReason, b: Reason): boolean {
  if (a.reason !== b.reason) return false;
  if (a.reason === 'no_capability' && b.reason === 'no_capability')
    return a.capability === b.capability;
  if (a.reason === 'target_offline' && b.reason === 'target_offline')
    return a.targetWorker === b.targetWorker;
  if (a.reason === 'private_unused' && b.reason === 'private_unused')
    return a.publisher === b.publisher;
  return true;
}
