/** The admin operations that change intents or keys, and announce what they changed. */
import { notFound } from '../core/errors.js';
import type { IntentRow } from '../store/store.js';
import type { OpsContext } from './context.js';

/** Revokes a key on every node (SECURITY.md); its key id, or 404 when unknown. */
export async function revokeKey(
  ctx: OpsContext,
  by: { keyId: string } | { keyHash: string },
): Promise<string> {
  const keyId = await ctx.store.keyRevoke(by, ctx.clock.now());
  if (keyId == null) throw notFound('Key not found');
  ctx.events.keyRevoked(keyId);
  return keyId;
}

/** Deletes every intent (of a namespace), dead letters included; the waits re-read. */
export async function purge(
  ctx: OpsContext,
  namespace: string | null,
): Promise<{ intents: number; dead: number }> {
  const out = await ctx.store.intentsPurge(namespace);
  ctx.events.purged();
  return out;
}

/** PROTOCOL.md §2: open or claimed → dead ("cancelled"); a finished intent stays as it is. */
export async function cancel(ctx: OpsContext, id: string): Promise<IntentRow> {
  const before = await ctx.store.intentGet(id);
  const row = await ctx.store.intentCancel(id, ctx.clock.now());
  if (!row) throw notFound('Intent not found');
  if (before && before.status !== row.status) ctx.events.changed(row, 'cancelled');
  return row;
}

/** PROTOCOL.md §2: any state → open, attempts and lease cleared. */
export async function retry(ctx: OpsContext, id: string): Promise<IntentRow> {
  const row = await ctx.store.intentRetry(id, ctx.clock.now());
  if (!row) throw notFound('Intent not found');
  ctx.events.changed(row, 'retried');
  return row;
}
