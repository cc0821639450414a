/**
 * The README is the front door: its quickstart and curl examples run here as written,
 * against a real server started the way `npm start` starts it (generated secrets in
 * ./intent-bus-data), with only the address changed to an ephemeral port.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApi } from './helpers.js';
import { serverEnv, startProcess, type ServerProcess } from './process-helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const shellBlocks = [...README.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe('README examples', () => {
  let server: ServerProcess;
  let cwd: string;
  beforeAll(async () => {
    cwd = mkdtempSync(join(tmpdir(), 'intent-bus-readme-'));
    // As in a clone after `npm ci`: `npx intent-bus` finds the installed command.
    symlinkSync(join(ROOT, 'node_modules'), join(cwd, 'node_modules'));
    server = await startProcess(serverEnv('./intent-bus-data/bus.db', {}, false), cwd);
  });
  afterAll(async () => {
    server.child.kill('SIGTERM');
    await server.exited;
  });

  it('has the install, start and test commands', () => {
    expect(shellBlocks[0]!.trim()).toBe('npm ci\nnpm start');
    expect(shellBlocks.some((b) => b.trim() === 'npm test')).toBe(true);
  });

  it('runs every curl example in order', () => {
    const examples = shellBlocks.filter((b) => b.includes('curl')).join('\n');
    const script = `set -e\n${examples.replaceAll('http://127.0.0.1:8080', server.url)}`;
    const r = spawnSync('bash', ['-c', script], { cwd, encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = r.stdout;
    expect(out).toContain('"status":"published"');
    expect(out).toContain('"claim_token"');
    expect(out).toContain('"status":"fulfilled"');
    expect(out).toContain('"result":"delivered"');
    expect(out).toContain('"goal":"run_backup"');
    expect(out).toContain('{"value":{"percent":81}}');
    expect(out).toContain('"api_key":"tk_');
    // The backup job's failure is taken: it goes back to open for a retry.
    expect(out).toContain('"status":"open"');
    expect(out).not.toContain('"error":{');
  });

  it('sets and shows the schedule that replaces a crontab line, with its alert', () => {
    const block = shellBlocks.find((b) => b.includes('schedule set'));
    expect(block).toBeDefined();
    const env = { ...process.env, INTENT_BUS_URL: server.url };
    const r = spawnSync('bash', ['-c', `set -e\n${block!}`], {
      cwd,
      env,
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('nightly-backup');
    expect(r.stdout).toMatch(/03:00/);
    // With its deadline and its alert.
    expect(r.stdout).toContain('deadline:  3600 s after each tick');
    expect(r.stdout).toContain('on failure: alert notify (namespace default)');
  });

  it('parses an empty claim (204) without a stack trace', () => {
    const block = shellBlocks.find((b) => b.includes('CLAIM=$(curl'))!;
    const lines = block.split('\n').filter((l) => /^(ID|TOKEN)=/.test(l));
    expect(lines).toHaveLength(2);
    const r = spawnSync(
      'bash',
      ['-c', `set -e\nCLAIM=""\n${lines.join('\n')}\necho "[$ID][$TOKEN]"`],
      {
        encoding: 'utf8',
      },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('[][]');
  });

  it('compiles its TypeScript example against the SDK and runs it as a worker', async () => {
    const blocks = [...README.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks).toHaveLength(1);
    // Inside the repository, so that '@intent-bus/sdk' resolves as in a clone.
    const dir = join(ROOT, 'test-artifacts', `readme-ts-${process.pid}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{"type": "module"}\n');
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        extends: '../../tsconfig.base.json',
        compilerOptions: {
          composite: false,
          declaration: false,
          declarationMap: false,
          sourceMap: false,
          outDir: 'dist',
          rootDir: '.',
        },
        include: ['*.ts'],
      }),
    );
    writeFileSync(
      join(dir, 'worker.ts'),
      blocks[0]!.replaceAll('http://127.0.0.1:8080', server.url),
    );
    const tsc = spawnSync('npx', ['tsc', '-p', dir], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);
    const key = JSON.parse(readFileSync(join(cwd, 'intent-bus-data', 'secrets.json'), 'utf8'))
      .BUS_SECRET as string;
    const worker = spawn(process.execPath, [join(dir, 'dist', 'worker.js')], {
      env: { ...process.env, INTENT_API_KEY: key },
      stdio: 'ignore',
    });
    try {
      const api = makeApi(server.url);
      const published = await api('POST', '/intent', {
        key,
        body: { goal: 'resize', payload: { w: 640 } },
      });
      expect(published.status).toBe(201);
      const done = await api('GET', `/result/${published.json.id}?wait=15`, { key });
      expect(done.json).toMatchObject({ status: 'fulfilled', result: { resized: { w: 640 } } });
    } finally {
      worker.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs the two-terminal story: a listen --exec worker, a publish --wait', async () => {
    const t1 = shellBlocks.find((b) => b.includes('# terminal 1'));
    const t2 = shellBlocks.find((b) => b.includes('# terminal 2'));
    expect(t1).toBeDefined();
    expect(t2).toBeDefined();
    const env = { ...process.env, INTENT_BUS_URL: server.url };
    const worker = spawn('bash', ['-c', t1!], { cwd, env, detached: true, stdio: 'ignore' });
    try {
      const r = spawnSync('bash', ['-c', t2!], { cwd, env, encoding: 'utf8', timeout: 20_000 });
      expect(r.status, r.stderr).toBe(0);
      const uname = spawnSync('uname', ['-sm'], { encoding: 'utf8' }).stdout.trim();
      expect(r.stdout.trim()).toBe(uname);
    } finally {
      process.kill(-worker.pid!, 'SIGTERM');
    }
  });
});
