/** Exit codes of PRODUCT.md and the two ways of printing: for people, or `--json`. */
import { IntentBusError, NetworkError, NotFoundError } from '@intent-bus/sdk';

export const EXIT = { ok: 0, error: 1, usage: 2, notFound: 3 } as const;

/** A mistake in how the command was typed: exit 2 with the command's usage. */
export class UsageError extends Error {}

/**
 * A bad setting (`--url`, INTENT_BUS_URL): exit 2 like a usage error, but one line naming
 * the setting, as `serve` does: the command's usage would not say what is wrong.
 */
export class SettingError extends Error {}

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
  /** The answer given as JSON text, printed as it is in --json mode, else the human text. */
  resultText(jsonText: string, human: () => string): void;
  /** Progress and notes for people: stderr, so stdout stays clean for scripts. */
  note(line: string): void;
}

export function makeOut(json: boolean): Out {
  return {
    json,
    result(value, human) {
      process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human()}\n`);
    },
    resultText(jsonText, human) {
      process.stdout.write(json ? `${jsonText}\n` : `${human()}\n`);
    },
    note(line) {
      process.stderr.write(`${line}\n`);
    },
  };
}

/**
 * A JSON text as people read it, every number as written: a string as its text, anything
 * else indented (indentJson).
 */
export const showJson = (jsonText: string): string =>
  jsonText.startsWith('"') ? (JSON.parse(jsonText) as string) : indentJson(jsonText);

/**
 * A valid JSON text laid out as JSON.stringify(value, null, 2) lays out its value, each
 * string and number kept as written (JSON.parse would round 12345678901234567890).
 */
export function indentJson(text: string, indent = '  '): string {
  let out = '';
  let depth = 0;
  const newline = (): string => `\n${indent.repeat(depth)}`;
  const isSpace = (c: string | undefined): boolean =>
    c === ' ' || c === '\t' || c === '\n' || c === '\r';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j;
    } else if (c === '{' || c === '[') {
      let j = i + 1;
      while (isSpace(text[j])) j++;
      if (text[j] === (c === '{' ? '}' : ']')) {
        out += c + text[j]; // empty: {} or [], as JSON.stringify writes them
        i = j;
      } else {
        depth++;
        out += c + newline();
      }
    } else if (c === '}' || c === ']') {
      depth--;
      out += newline() + c;
    } else if (c === ',') out += `,${newline()}`;
    else if (c === ':') out += ': ';
    else if (!isSpace(c)) out += c;
  }
  return out;
}

/** "1 attempt", "2 attempts". */
export const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;

export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError || err instanceof SettingError) return EXIT.usage;
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

/** The first errno-style code (ECONNREFUSED, …) along the cause chain. */
function causeCode(err: Error): string | undefined {
  for (let c = err.cause, depth = 0; c instanceof Error && depth < 5; c = c.cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** Nobody answers at that address: most often the bus is simply not started. */
const NOT_THERE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/** One line for an error; `url` is the bus's, for the errors where nothing answered. */
export function describeError(err: unknown, url?: string): string {
  if (err instanceof NetworkError && url !== undefined) {
    const code = causeCode(err);
    const why = causes(err).replace(/^: /, '') || code || err.message;
    if (code !== undefined && NOT_THERE.has(code)) return `is the bus running at ${url}? (${why})`;
    return `cannot reach the bus at ${url}: ${why}`;
  }
  if (err instanceof IntentBusError)
    return `${err.message}${causes(err)} (${err.code}${err.status ? `, HTTP ${err.status}` : ''})`;
  return err instanceof Error ? err.message : String(err);
}
