import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { RequestLogger } from '../../src/http/request-logger.js';

function collect(): { lines: Record<string, unknown>[]; logger: pino.Logger } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').trim().split('\n')) lines.push(JSON.parse(l));
      done();
    },
  });
  return { lines, logger: pino({ level: 'info' }, stream) };
}

describe('RequestLogger', () => {
  it('logs with the request bindings, at the levels the parent allows', async () => {
    const { lines, logger } = collect();
    const log = new RequestLogger(logger, { reqId: 'r1' }, {});
    expect(log.level).toBe('info');
    log.debug('hidden');
    log.warn({ a: 1 }, 'shown');
    log.error(new Error('boom'), 'failed');
    log.child({ part: 'x' }).info('nested');
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => l.msg)).toEqual(['shown', 'failed', 'nested']);
    expect(lines[0]).toMatchObject({ reqId: 'r1', a: 1, level: 40 });
    expect(lines[1]).toMatchObject({ reqId: 'r1', err: { message: 'boom' } });
    expect(lines[2]).toMatchObject({ reqId: 'r1', part: 'x', level: 30 });
  });

  it('takes a level of its own without changing the parent', async () => {
    const { lines, logger } = collect();
    const log = new RequestLogger(logger, { reqId: 'r2' }, { level: 'debug' });
    expect(log.level).toBe('debug');
    log.debug('seen');
    log.level = 'error';
    log.warn('dropped');
    new RequestLogger(logger, { reqId: 'r3' }, {}).debug('dropped too');
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => l.msg)).toEqual(['seen']);
    expect(logger.level).toBe('info');
  });
});
