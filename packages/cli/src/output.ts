/** Exit codes of PRODUCT.md and the two ways of printing: for people, or `--json`. */
import { IntentBusError, NotFoundError } from '@intent-bus/sdk';

export const EXIT = { ok: 0, error: 1, usage: 2, notFound: 3 } as const;

/** A mistake in how the command was typed: exit 2 with the command's usage. */
export class UsageError extends Error {}

/** Ends the command with an exit code and no further output. */
export class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

export interface Out {
  json: boolean;
  /** The answer: JSON in --json mode, else the human text. */
  result(value: unknown, human: () => string): void;
  /** Progress and notes for people: stderr, so stdout stays clean for scripts. */
  note(line: string): void;
}

export function makeOut(json: boolean): Out {
  return {
    json,
    result(value, human) {
      process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human()}\n`);
    },
    note(line) {
      process.stderr.write(`${line}\n`);
    },
  };
}

/** A value as people read it: text as is, anything else as indented JSON. */
export const show = (value: unknown): string =>
  typeof value === 'string' ? value : JSON.stringify(value, null, 2);

export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return EXIT.usage;
  if (err instanceof NotFoundError) return EXIT.notFound;
  return EXIT.error;
}

/** The reasons a network error was chained from ("fetch failed" alone says nothing). */
function causes(err: Error): string {
  const seen: string[] = [];
  for (let c = err.cause, depth = 0; c instanceof Error && depth < 5; c = c.cause, depth++) {
    const m = c.message.replace(/\s+/g, ' ').trim();
    if (m && !err.message.includes(m) && !seen.includes(m)) seen.push(m);
  }
  return seen.map((m) => `: ${m}`).join('');
}

export function describeError(err: unknown): string {
  if (err instanceof IntentBusError)
    return `${err.message}${causes(err)} (${err.code}${err.status ? `, HTTP ${err.status}` : ''})`;
  return err instanceof Error ? err.message : String(err);
}
