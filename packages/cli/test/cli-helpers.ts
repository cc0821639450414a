/**
 * Test support for the CLI: runs the built `intent-bus` command (packages/cli/dist/main.js)
 * as a child process, the way a person types it, and makes sure every process a test
 * started is gone after it (`killAll` in afterEach).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  createWriteStream,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testLogFile } from '../../server/test/helpers.js';

/** The repository root (where `npx intent-bus` resolves the workspace's bin). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const MAIN_JS = join(ROOT, 'packages', 'cli', 'dist', 'main.js');

/** Fails with a clear message when the CLI was not built. */
export function ensureBuilt(): void {
  if (!existsSync(MAIN_JS)) {
    throw new Error(
      `${MAIN_JS} is missing: build it first with "npx tsc -b" at the repository root ` +
        '(npm test builds before running vitest)',
    );
  }
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from spawn to exit. */
  ms: number;
}

export interface Proc {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<Finished>;
  /** Resolves once stdout or stderr matches; rejects after `timeoutMs` or when it exits. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin, which is then closed (stdin is always closed). */
  input?: string;
  /** Also copy stdout into a file of test-artifacts/logs (a bus's logs, for the scan). */
  logStdout?: boolean;
}

const live = new Map<ChildProcess, Promise<Finished>>();
const temps: string[] = [];

/** Every flag a test passed, by command (the first argument), for the help coverage test. */
export const usedFlags = new Map<string, Set<string>>();

function recordFlags(args: string[]): void {
  const [command, ...rest] = args;
  if (command === undefined) return;
  const set = usedFlags.get(command) ?? new Set<string>();
  usedFlags.set(command, set);
  for (const a of rest) if (/^--?[a-z]/.test(a)) set.add(a.split('=')[0]!);
}

/** Spawns any program in its own process group, so that killAll can end it and its children. */
export function spawnProc(file: string, args: string[], o: SpawnOptions = {}): Proc {
  const started = Date.now();
  const child = spawn(file, args, {
    cwd: o.cwd ?? ROOT,
    env: o.env ?? baseEnv(),
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  let err = '';
  const watchers = new Set<() => void>();
  const poke = (): void => watchers.forEach((w) => w());
  child.stdout!.setEncoding('utf8').on('data', (d: string) => ((out += d), poke()));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => ((err += d), poke()));
  if (o.logStdout) child.stdout!.pipe(createWriteStream(testLogFile('process')));
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(o.input ?? '');
  const exited = new Promise<Finished>((resolve) => {
    child.on('error', (e) => {
      err += `spawn error: ${e.message}\n`;
      resolve({ code: null, signal: null, stdout: out, stderr: err, ms: Date.now() - started });
    });
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: out, stderr: err, ms: Date.now() - started }),
    );
  });
  live.set(child, exited);
  void exited.then(() => live.delete(child));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(pattern, timeoutMs = 8000) {
      return new Promise<void>((resolve, reject) => {
        const matches = (): boolean => pattern.test(out) || pattern.test(err);
        const finish = (error?: Error): void => {
          watchers.delete(check);
          clearTimeout(timer);
          if (error) reject(error);
          else resolve();
        };
        const check = (): void => {
          if (matches()) finish();
        };
        const timer = setTimeout(
          () =>
            finish(
              new Error(`no ${pattern} within ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`),
            ),
          timeoutMs,
        );
        watchers.add(check);
        void exited.then((f) => {
          if (!watchers.has(check)) return;
          finish(
            matches()
              ? undefined
              : new Error(`exited (${f.code ?? f.signal}) before ${pattern}\n${err}`),
          );
        });
        check();
      });
    },
  };
}

/** Starts `intent-bus ARGS…` (node dist/main.js) without waiting for it. */
export function startCli(args: string[], o: SpawnOptions = {}): Proc {
  ensureBuilt();
  recordFlags(args);
  return spawnProc(process.execPath, [MAIN_JS, ...args], o);
}

/** Waits for a process to exit; kills it and fails after `timeoutMs`. */
export async function settle(p: Proc, timeoutMs = 10_000): Promise<Finished> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      killGroup(p.child);
      reject(
        new Error(
          `${p.child.spawnargs.slice(1).join(' ')} did not exit within ${timeoutMs} ms\n` +
            `stdout: ${p.stdout()}\nstderr: ${p.stderr()}`,
        ),
      );
    }, timeoutMs);
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `intent-bus ARGS…` to its end. */
export function cli(args: string[], o: SpawnOptions & { timeoutMs?: number } = {}) {
  return settle(startCli(args, o), o.timeoutMs);
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

/** Kills every process still running (and its process group), and waits for them. */
export async function killAll(): Promise<void> {
  const waiting = [...live.entries()];
  for (const [child] of waiting) killGroup(child);
  await Promise.all(waiting.map(([, exited]) => exited));
}

/** Removes the temporary folders of this file's tests. */
export function removeTemps(): void {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
  emptyHome = undefined;
}

/** A fresh temporary folder. */
export function tempDir(prefix = 'intent-bus-cli-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

let emptyHome: string | undefined;
/**
 * A minimal environment: no INTENT_* or BUS_* variable of the machine running the tests
 * leaks in, and HOME is an empty folder (no ~/.apikey) unless the test sets one.
 */
export function baseEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  emptyHome ??= tempDir('intent-bus-home-');
  return { PATH: process.env.PATH, HOME: emptyHome, LANG: 'C.UTF-8', ...extra };
}

/** Writes an executable script. */
export function script(dir: string, name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, body);
  chmodSync(path, 0o755);
  return path;
}

/** A TCP port nothing listens on (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Whether a process is still running (a zombie waiting to be reaped counts as gone). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return true;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The 32-hex id in a publish answer printed with --json. */
export function idOf(f: Finished): string {
  const parsed = JSON.parse(f.stdout) as { id?: unknown };
  if (typeof parsed.id !== 'string' || !/^[0-9a-f]{32}$/.test(parsed.id)) {
    throw new Error(`no id in ${f.stdout} (exit ${f.code}; ${f.stderr})`);
  }
  return parsed.id;
}
