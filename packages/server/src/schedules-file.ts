/**
 * Declared schedules (issue 17): `serve --schedules FILE` (BUS_SCHEDULES_FILE) makes or
 * replaces, at start and for the main key, the schedules of a JSON file kept in version
 * control: one object, each member a schedule's name and its PUT /schedules/<name> body
 *
 *   {"nightly-backup": {"cron": "0 3 * * *", "timezone": "Europe/Berlin",
 *                       "intent": {"goal": "backup", "payload": {}}, "deadline": 3600,
 *                       "on_failure": {"goal": "notify"}}}
 *
 * Every schedule is checked as its PUT would be before any is written; a bad one stops the
 * start with one line naming the file, the schedule and the field. A PUT is declarative, so
 * a start with the same file changes nothing; a schedule removed from the file stays until
 * it is deleted (DELETE /schedules/<name>).
 */
import { readFileSync } from 'node:fs';
import Ajv from 'ajv';
import { LIMITS, rawMember, schemas, type ScheduleRequest } from '@intent-bus/protocol';
import { ConfigError } from './config.js';
import { MAIN_KEY_ID, type Principal } from './core/principal.js';
import type { ScheduleDefinition } from './core/schedule.js';
import { toWireError } from './http/errors.js';
import { definitionOf } from './ops/schedules.js';
import type { Store } from './store/store.js';

const VARIABLE = 'BUS_SCHEDULES_FILE';
const MAIN: Principal = { keyId: MAIN_KEY_ID, isMain: true, keyHash: null };

/** The schedules of the file, checked; a ConfigError naming the file, schedule and field. */
export function readSchedulesFile(file: string): ScheduleDefinition[] {
  const refuse = (message: string): never => {
    throw new ConfigError(VARIABLE, `${file}: ${message}`);
  };
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    refuse(`cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    refuse(`not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    refuse('must be a JSON object of schedules, name → body');
  }
  const validate = new Ajv.default({ coerceTypes: false, strict: false }).compile(
    schemas.scheduleBody,
  );
  const out: ScheduleDefinition[] = [];
  for (const [name, body] of Object.entries(parsed as Record<string, unknown>)) {
    const where = `schedule ${JSON.stringify(name)}`;
    if (name.length < 1 || name.length > LIMITS.scheduleNameMaxLength) {
      refuse(`${where}: a name is 1-${LIMITS.scheduleNameMaxLength} characters`);
    }
    // The same words as the answer of a PUT with that body.
    const problem = (err: unknown): never => {
      const { message } = toWireError(err).body.error;
      return refuse(`${where}: ${message}`);
    };
    if (!validate(body)) problem({ validation: validate.errors, validationContext: 'body' });
    const entryText = rawMember(text, name);
    try {
      out.push(
        definitionOf(MAIN, {
          name,
          body: body as ScheduleRequest,
          intentText: entryText && rawMember(entryText, 'intent'),
          onFailureText: entryText && rawMember(entryText, 'on_failure'),
        }),
      );
    } catch (err) {
      problem(err);
    }
  }
  return out;
}

/** Makes or replaces each schedule of the file (after reading them all): what each PUT did. */
export async function declareSchedules(
  store: Store,
  file: string,
  now: number,
): Promise<Record<'created' | 'updated' | 'unchanged', number>> {
  const counts = { created: 0, updated: 0, unchanged: 0 };
  for (const def of readSchedulesFile(file)) counts[(await store.schedulePut(def, now)).kind]++;
  return counts;
}
