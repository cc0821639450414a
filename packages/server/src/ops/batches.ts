/**
 * Batches [ext] (issue 21): many publishes, fulfils or failures in one request. Each item is
 * decided by the single operation's own parts (ops/intents.ts) and answered on its own (a
 * bad item fails alone); every valid item goes to the store in one atomic step, so a batch
 * of 1,000 costs one transaction, and each is announced as the single operation announces
 * it (metrics, wake-ups, event streams). The claim of many is ops/claim.ts with `max`.
 */
import type { Principal } from '../core/principal.js';
import { truncateError } from '../core/validate.js';
import type { FailItem, FulfilItem, PublishItem, TokenRef } from '../store/store.js';
import type { OpsContext } from './context.js';
import {
  failed,
  fulfilled,
  maxOpenOf,
  publishAnswer,
  publishItem,
  resultOf,
  type FulfilInput,
  type Published,
  type PublishInput,
} from './intents.js';
import type { IntentRow } from '../store/store.js';
import type { Sighting } from './workers.js';

/** One item's outcome: its value, or what refused it (a BusError, answered as one). */
export type ItemOutcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

const refused = (error: unknown): { ok: false; error: unknown } => ({ ok: false, error });

/**
 * Runs `prepare` on each item that is still good, then `act` once on all that prepared, then
 * `finish` on each of `act`'s answers: the outcomes in the items' order.
 */
async function batch<I, P, R, T>(
  items: readonly ItemOutcome<I>[],
  prepare: (item: I) => P,
  act: (prepared: P[]) => Promise<R[]>,
  finish: (prepared: P, answer: R) => T,
): Promise<ItemOutcome<T>[]> {
  const out: ItemOutcome<T>[] = new Array(items.length);
  const prepared: P[] = [];
  const at: number[] = [];
  items.forEach((item, i) => {
    if (!item.ok) return void (out[i] = item);
    try {
      prepared.push(prepare(item.value));
      at.push(i);
    } catch (err) {
      out[i] = refused(err);
    }
  });
  const answers = prepared.length > 0 ? await act(prepared) : [];
  answers.forEach((answer, k) => {
    try {
      out[at[k]!] = { ok: true, value: finish(prepared[k]!, answer) };
    } catch (err) {
      out[at[k]!] = refused(err);
    }
  });
  return out;
}

export function publishMany(
  ctx: OpsContext,
  p: Principal,
  inputs: readonly ItemOutcome<PublishInput>[],
): Promise<ItemOutcome<Published>[]> {
  return batch(
    inputs,
    (input): PublishItem => publishItem(ctx, p, input),
    (items) => ctx.store.intentPublishMany(items, maxOpenOf(ctx, p)),
    (_, out) => publishAnswer(ctx, out),
  );
}

/** A fulfil of a batch: the claim its token names and what it sends. */
export interface FulfilManyInput {
  ref: TokenRef;
  input: FulfilInput;
}

export function fulfilMany(
  ctx: OpsContext,
  inputs: readonly ItemOutcome<FulfilManyInput>[],
  seen: Sighting,
): Promise<ItemOutcome<IntentRow>[]> {
  return batch(
    inputs,
    ({ ref, input }): FulfilItem => {
      const { text, resultType } = resultOf(input);
      return { ref, result: text, resultType };
    },
    async (items) => {
      // A progress report held for the end of its second is written first (ops/progress.ts).
      await Promise.all(items.map((i) => ctx.progress.settle(i.ref.id)));
      return ctx.store.intentFulfillMany(items);
    },
    (item, row) => fulfilled(ctx, item.ref, row, seen),
  );
}

/** A failure of a batch: the claim its token names and the worker's error. */
export interface FailManyInput {
  ref: TokenRef;
  error: string | null | undefined;
}

export function failMany(
  ctx: OpsContext,
  inputs: readonly ItemOutcome<FailManyInput>[],
  seen: Sighting,
): Promise<ItemOutcome<IntentRow>[]> {
  return batch(
    inputs,
    ({ ref, error }): FailItem => ({ ref, error: truncateError(error) }),
    async (items) => {
      await Promise.all(items.map((i) => ctx.progress.settle(i.ref.id)));
      return ctx.store.intentFailMany(items, ctx.random);
    },
    (item, row) => failed(ctx, item.ref, item.error, row, seen),
  );
}
