/**
 * Declared schedules (issue 17) on real `serve` processes: `BUS_SCHEDULES_FILE` (or
 * `--schedules FILE`) makes the file's schedules at start for the main key, on both stores;
 * a second start with the same file changes nothing; a bad file stops the start (exit 2) with
 * one line naming the file, the schedule and the field, and writes none of its schedules.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeApi } from './helpers.js';
import { runToExit, serverEnv, startProcess, storeFixture } from './process-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'intent-bus-schedules-file-'));
const fixtures: Array<{ cleanup(): Promise<void> }> = [];
afterAll(async () => {
  for (const f of fixtures) await f.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

let files = 0;
const fileWith = (text: string): string => {
  const file = join(dir, `schedules-${++files}.json`);
  writeFileSync(file, text);
  return file;
};

// Written as text: the payload's big number must be kept as it is in the file.
const GOOD = `{
  "nightly-backup": {
    "cron": "0 3 * * *",
    "timezone": "Europe/Berlin",
    "intent": {"goal": "backup", "payload": {"keep": 12345678901234567890}},
    "deadline": 3600,
    "on_failure": {"goal": "notify", "namespace": "ops", "payload": {"to": "phone"}}
  },
  "heartbeat": {"every": 60, "intent": {"goal": "ping", "payload": {}}, "paused": true}
}`;

describe('declared schedules: serve --schedules FILE', () => {
  for (const store of ['sqlite', 'postgres'] as const) {
    it(`${store}: makes the file's schedules at start for the main key; the same file again changes nothing`, async () => {
      const fixture = storeFixture(store);
      fixtures.push(fixture);
      const file = fileWith(GOOD);
      const first = await fixture.start({ BUS_SCHEDULES_FILE: file, BUS_LOG_LEVEL: 'info' });
      const api = makeApi(first.url);
      const list = await api('GET', '/schedules');
      expect(list.status, list.text).toBe(200);
      expect(list.json.map((s: { name: string }) => s.name)).toEqual([
        'heartbeat',
        'nightly-backup',
      ]);
      const nightly = await api('GET', '/schedules/nightly-backup');
      expect(nightly.json).toMatchObject({
        cron: '0 3 * * *',
        timezone: 'Europe/Berlin',
        deadline: 3600,
        on_failure: { goal: 'notify', namespace: 'ops', payload: { to: 'phone' } },
        paused: false,
      });
      // The payload is the file's text, as a PUT's is the body's.
      expect(nightly.text).toContain('"payload":{"keep": 12345678901234567890}');
      expect((await api('GET', '/schedules/heartbeat')).json.paused).toBe(true);
      // Owned by the main key: a tester key has none.
      const key = await api('POST', '/admin/generate_key', { admin: true, body: { owner: 't' } });
      const theirs = await api('GET', '/schedules', { key: key.json.api_key });
      expect(theirs.json).toEqual([]);
      expect(first.stdout()).toMatch(/"created":2,"updated":0,"unchanged":0.*declared schedules/);
      first.child.kill('SIGTERM');
      expect((await first.exited).code).toBe(0);

      const second = await fixture.start({ BUS_SCHEDULES_FILE: file, BUS_LOG_LEVEL: 'info' });
      const again = await makeApi(second.url)('GET', '/schedules');
      expect(again.text).toBe(list.text);
      expect(second.stdout()).toMatch(/"created":0,"updated":0,"unchanged":2.*declared schedules/);
      second.child.kill('SIGTERM');
      await second.exited;
    }, 40_000);
  }

  it('a bad file stops the start with exit 2 and one line naming the file, the schedule and the field', async () => {
    const db = join(dir, 'refused.db');
    const cases: Array<[string, RegExp]> = [
      ['{"a": ', /: not JSON: /],
      ['[{"every": 5}]', /: must be a JSON object of schedules, name → body$/],
      [
        '{"ok": {"every": 5, "intent": {"goal": "g", "payload": {}}}, "bad": {"cron": "61 * * * *", "intent": {"goal": "g", "payload": {}}}}',
        /: schedule "bad": cron "61 \* \* \* \*" is not valid: /,
      ],
      [
        '{"p": {"every": 5, "intent": {"goal": "g", "payload": {}, "priority": 5000}}}',
        /: schedule "p": intent\.priority must be <= /,
      ],
      [
        '{"typo": {"every": 5, "catchup": "all", "intent": {"goal": "g", "payload": {}}}}',
        /: schedule "typo": catchup is not a field of this request$/,
      ],
      [
        '{"alert": {"every": 5, "intent": {"goal": "g", "payload": {}}, "on_failure": {"goal": "n", "payload": {"run": 1}}}}',
        /: schedule "alert": on_failure\.payload may not hold "run"/,
      ],
      ['{"no-intent": {"every": 5}}', /: schedule "no-intent": Missing intent$/],
    ];
    for (const [text, message] of cases) {
      const file = fileWith(text);
      const r = await runToExit(serverEnv(db), ['--schedules', file]);
      expect(r.code, r.stderr).toBe(2);
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toContain(`intent-bus: BUS_SCHEDULES_FILE: ${file}`);
      expect(lines[0]).toMatch(message);
    }
    const missing = join(dir, 'absent.json');
    const r = await runToExit(serverEnv(db, { BUS_SCHEDULES_FILE: missing }));
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd()).toBe(
      `intent-bus: BUS_SCHEDULES_FILE: ${missing}: cannot read it (ENOENT)`,
    );

    // None of a refused file's schedules was made, the good one before the bad one included.
    const bus = await startProcess(serverEnv(db));
    try {
      expect((await makeApi(bus.url)('GET', '/schedules')).json).toEqual([]);
    } finally {
      bus.child.kill('SIGTERM');
      await bus.exited;
    }
  }, 60_000);
});
