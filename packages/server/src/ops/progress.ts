/**
 * Progress reports (POST /progress/:id [ext], issue 20): a heartbeat that records the
 * worker's last progress and extends its lease by the claim timeout, in one write.
 *
 * At most one store write per intent per second on a node: the first report of a second
 * is written at once; the later ones of that second are checked against the token the
 * write accepted and held in memory, the latest replacing the one before, and the held
 * report is written when the second ends (its lease counted from when it was reported).
 * So the lease the store holds is never more than one second behind the one reported, and
 * a fulfil or fail on this node writes a held report first, so that the last progress is
 * the one kept.
 */
import { LIMITS, type ProgressRequest } from '@intent-bus/protocol';
import { invalid, notFound } from '../core/errors.js';
import type { IntentRow, ProgressValues, TokenRef } from '../store/store.js';
import type { Config } from '../config.js';
import type { BusEvents } from '../events.js';
import type { Store } from '../store/store.js';
import type { IntentEvent } from '../wake/announce.js';

/** Store writes of one intent's progress are this far apart at least. */
export const PROGRESS_WRITE_INTERVAL_MS = 1000;

/** What a report answers: the lease as stored, and whether the write waits. */
export interface ProgressOutcome {
  id: string;
  claimExpiresAt: number;
  held: boolean;
}

interface Window {
  token: string;
  keyId: string;
  /** The lease the last write left. */
  leaseUntil: number;
  /** The report waiting for the end of the second, if any. */
  pending: { ref: TokenRef; values: ProgressValues } | null;
  timer: NodeJS.Timeout;
}

/** The progress of a request, checked: `data` as its exact JSON text. */
export function progressValues(
  body: ProgressRequest,
  dataText: string | undefined,
  now: number,
): ProgressValues {
  let data: string | null = null;
  if (body.data !== undefined) {
    data = dataText ?? JSON.stringify(body.data);
    if (Buffer.byteLength(data) > LIMITS.progressDataMaxBytes) {
      throw invalid('data', `data: at most ${LIMITS.progressDataMaxBytes} bytes of JSON text`);
    }
  }
  return { percent: body.percent ?? null, message: body.message ?? null, data, at: now };
}

export class ProgressWriter {
  private readonly windows = new Map<string, Window>();

  constructor(private readonly ctx: { store: Store; events: BusEvents; config: Config }) {}

  /** Intents with a window open on this node (tests, metrics). */
  get open(): number {
    return this.windows.size;
  }

  async report(ref: TokenRef, values: ProgressValues): Promise<ProgressOutcome> {
    const w = this.windows.get(ref.id);
    // Within the second of a write that accepted this very token (and whose lease still
    // runs): hold it. Any other token is written through, which answers it truly.
    if (w && w.token === ref.token && w.keyId === ref.keyId && w.leaseUntil > ref.now) {
      w.pending = { ref, values };
      return { id: ref.id, claimExpiresAt: w.leaseUntil, held: true };
    }
    const row = await this.write(ref, values);
    if (!row) throw notFound('Claim token is not live for this intent');
    return { id: row.id, claimExpiresAt: row.claimExpiresAt!, held: false };
  }

  /** A change of an intent, made here or on another node: any but progress ends its window. */
  heard(event: IntentEvent): void {
    if (event.type === 'progress') return;
    const w = this.windows.get(event.id);
    if (!w) return;
    clearTimeout(w.timer);
    this.windows.delete(event.id);
  }

  /** Writes a held report of the intent now (before its fulfil or fail on this node). */
  async settle(id: string): Promise<void> {
    const w = this.windows.get(id);
    if (!w) return;
    clearTimeout(w.timer);
    this.windows.delete(id);
    if (w.pending) await this.write(w.pending.ref, w.pending.values).catch(() => null);
  }

  /** Writes every held report (the bus is stopping). */
  async close(): Promise<void> {
    await Promise.all([...this.windows.keys()].map((id) => this.settle(id)));
  }

  private async write(ref: TokenRef, values: ProgressValues): Promise<IntentRow | null> {
    const ctx = this.ctx;
    const lease = values.at + ctx.config.claimTimeoutSeconds * 1000;
    const row = await ctx.store.intentProgress(ref, values, lease);
    const old = this.windows.get(ref.id);
    if (old) clearTimeout(old.timer);
    if (!row) {
      this.windows.delete(ref.id);
      return null;
    }
    ctx.events.progressed(row);
    const timer = setTimeout(() => this.endOfSecond(ref.id), PROGRESS_WRITE_INTERVAL_MS);
    timer.unref();
    this.windows.set(ref.id, {
      token: ref.token,
      keyId: ref.keyId,
      leaseUntil: row.claimExpiresAt!,
      pending: null,
      timer,
    });
    return row;
  }

  private endOfSecond(id: string): void {
    const w = this.windows.get(id);
    if (!w) return;
    if (!w.pending) {
      this.windows.delete(id);
      return;
    }
    const { ref, values } = w.pending;
    w.pending = null;
    // A token no longer live (fulfilled on another node, lease lost) just ends the window.
    this.write(ref, values).catch(() => this.windows.delete(id));
  }
}
