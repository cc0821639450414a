/**
 * The intents columns as SQL, made once at module load from core/intent-record.ts, so that
 * each backend's queries.ts names them in one interpolation and a member added there is
 * selected, returned and inserted by every statement of both. Only the quoting of the
 * aliases differs between the backends (PostgreSQL folds an unquoted name to lower case).
 */
import { INTENT_MEMBERS } from '../core/intent-record.js';

/** A column list, broken into lines of about 90 characters (for EXPLAIN and logs). */
function lines(items: readonly string[]): string {
  const out: string[] = [];
  let line = '';
  for (const item of items) {
    if (line !== '' && line.length + item.length > 88) {
      out.push(`${line},`);
      line = '';
    }
    line = line === '' ? item : `${line}, ${item}`;
  }
  out.push(line);
  return out.join('\n  ');
}

/** Every intents column under its IntentRow name (`run_at AS runAt`), in table order. */
export const intentColumns = (quote: (alias: string) => string): string =>
  lines(
    INTENT_MEMBERS.map((m) => (m.column === m.name ? m.name : `${m.column} AS ${quote(m.name)}`)),
  );

const published = INTENT_MEMBERS.filter((m) => 'publish' in m);

/** The columns a publish sets (NewIntent), and their @parameters in the same order. */
export const PUBLISHED_COLUMNS = lines(published.map((m) => m.column));
export const PUBLISHED_PARAMS = lines(published.map((m) => `@${m.name}`));
