/**
 * Flow control's operations: the admin's changes, told to every node, and what holds an
 * open intent back (for /status). The claim itself is in ops/claim.ts, each node's copy of
 * the controls in ops/flow-gate.ts.
 */
import {
  WHOLE_NAMESPACE,
  controlsFor,
  type FlowControl,
  type FlowPatch,
  type HeldBy,
} from '../core/flow.js';
import type { IntentRow } from '../store/store.js';
import type { OpsContext } from './context.js';

/** Changes a control and tells every node (their copies, and the claims waiting there). */
export async function flowSet(
  ctx: OpsContext,
  namespace: string,
  goal: string,
  patch: FlowPatch,
): Promise<FlowControl | null> {
  const out = await ctx.store.flowPut(namespace, goal, patch, ctx.clock.now());
  ctx.events.flowChanged(namespace);
  return out;
}

export async function flowRemove(
  ctx: OpsContext,
  namespace: string,
  goal: string,
): Promise<boolean> {
  const found = await ctx.store.flowDelete(namespace, goal);
  if (found) ctx.events.flowChanged(namespace);
  return found;
}

/** What holds an open intent back now, or null (a claimed or finished one: null). */
export async function heldBy(ctx: OpsContext, row: IntentRow): Promise<HeldBy | null> {
  if (row.status !== 'open') return null;
  const set = await ctx.flow.of(row.namespace);
  if (set.length === 0) return null;
  const controls = controlsFor(set, row.goal);
  if (controls.length === 0) return null;
  const holds = await ctx.store.flowHolds(controls, ctx.clock.now());
  return (holds.get(WHOLE_NAMESPACE) ?? holds.get(row.goal))?.by ?? null;
}
