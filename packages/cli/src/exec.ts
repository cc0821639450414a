/**
 * `listen --exec`: runs a command per job. The payload goes to its stdin as the exact JSON
 * text it was published with, and INTENT_ID, INTENT_GOAL and INTENT_ATTEMPT to its
 * environment. Exit 0 fulfils with its stdout: JSON when it parses, sent as written (never
 * parsed and serialised again, so no number changes), else text; anything else fails the
 * job with the exit code and the tail of stderr. After `timeoutSeconds` (0: never) it is
 * killed. Lines `progress PERCENT MESSAGE` it writes to file descriptor 3 are reported as
 * the job's progress (issue 20; PERCENT 0-100 or `-`, MESSAGE optional), which also
 * extends the lease: `echo "progress 40 encoding" >&3`.
 */
import { spawn } from 'node:child_process';
import type { ExactClaimedIntent } from '@intent-bus/sdk';
import { splitWords } from './words.js';

export interface ExecSpec {
  command: string;
  /** Run through `sh -c` instead of splitting into words. */
  shell: boolean;
  timeoutSeconds: number;
}

/** A command's stdout as a result: JSON text to send as written, or a text result. */
export type StdoutResult =
  { resultType: 'json'; resultText: string } | { resultType: 'text'; result: string };

export type ExecOutcome = ({ ok: true } & StdoutResult) | { ok: false; error: string };

/** Output beyond this is not kept (the bus refuses large results anyway). */
const MAX_STDOUT = 4 * 1024 * 1024;
const STDERR_TAIL = 400;
const KILL_GRACE_MS = 5000;

export function commandWords(spec: ExecSpec): string[] {
  return spec.shell ? ['sh', '-c', spec.command] : splitWords(spec.command);
}

/**
 * stdout as a result: its JSON text without the spaces around it when it parses (checked
 * with JSON.parse, sent as written), else the text without its final newline.
 */
export function stdoutResult(stdout: string): StdoutResult {
  const trimmed = stdout.trim();
  if (trimmed) {
    try {
      JSON.parse(trimmed);
      return { resultType: 'json', resultText: trimmed };
    } catch {
      // not JSON: a text result
    }
  }
  return { resultType: 'text', result: stdout.replace(/\r?\n$/, '') };
}

/** A progress line of file descriptor 3, or null when it is not one. */
export function progressLine(line: string): { percent?: number; message?: string } | null {
  const m = /^progress\s+(\S+)(?:\s+(.*))?$/.exec(line.trim());
  if (!m) return null;
  const out: { percent?: number; message?: string } = {};
  if (m[1] !== '-') {
    const n = Number(m[1]!.replace(/%$/, ''));
    if (!Number.isFinite(n) || n < 0 || n > 100) return null;
    out.percent = n;
  }
  if (m[2]) out.message = m[2].slice(0, 200);
  return out;
}

export function runCommand(
  spec: ExecSpec,
  job: ExactClaimedIntent,
  signal: AbortSignal,
  onProgress: (p: { percent?: number; message?: string }) => void = () => {},
): Promise<ExecOutcome> {
  const [file, ...args] = commandWords(spec);
  if (!file) return Promise.resolve({ ok: false, error: 'empty command' });
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      // File descriptor 3: the command's progress lines.
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
      // Its own process group: a timeout or a hard stop kills everything the command
      // started (a grandchild holding stdout open would otherwise keep the job running),
      // and a Ctrl-C in the worker's terminal reaches the worker only, which then lets
      // the job finish as promised.
      detached: process.platform !== 'win32',
      env: {
        ...process.env,
        INTENT_ID: job.id,
        INTENT_GOAL: job.goal,
        INTENT_ATTEMPT: String(job.claim_attempts),
      },
    });
    let stdout = '';
    let stdoutBytes = 0;
    let stderr = '';
    let timedOut = false;
    let killTimer: NodeJS.Timeout | null = null;
    const signalAll = (sig: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined && process.platform !== 'win32') process.kill(-child.pid, sig);
        else child.kill(sig);
      } catch {
        child.kill(sig); // the group is gone already
      }
    };
    const kill = (): void => {
      signalAll('SIGTERM');
      killTimer = setTimeout(() => signalAll('SIGKILL'), KILL_GRACE_MS);
    };
    const timer =
      spec.timeoutSeconds > 0
        ? setTimeout(() => {
            timedOut = true;
            kill();
          }, spec.timeoutSeconds * 1000)
        : null;
    const onAbort = (): void => kill();
    signal.addEventListener('abort', onAbort, { once: true });
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdoutBytes += d.length;
      if (stdoutBytes <= MAX_STDOUT) stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-4 * STDERR_TAIL);
    });
    let pending = '';
    const fd3 = child.stdio[3] as NodeJS.ReadableStream | null;
    fd3?.setEncoding('utf8');
    fd3?.on('data', (d: string) => {
      pending += d;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const p = progressLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        if (p) onProgress(p);
      }
      if (pending.length > 4096) pending = '';
    });
    fd3?.on('error', () => undefined);
    // A command that never reads its stdin must not fail the job.
    child.stdin.on('error', () => undefined);
    child.stdin.end(job.payloadText); // as published: not parsed and written again
    const done = (outcome: ExecOutcome): void => {
      if (timer) clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      signal.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    child.on('error', (err) => done({ ok: false, error: `cannot run ${file}: ${err.message}` }));
    child.on('close', (code, sig) => {
      const tail = stderr.trim().slice(-STDERR_TAIL);
      if (timedOut)
        return done({
          ok: false,
          error: `timed out after ${spec.timeoutSeconds} s${tail ? `: ${tail}` : ''}`,
        });
      if (signal.aborted) return done({ ok: false, error: 'stopped: the worker shut down' });
      if (code === 0) {
        if (stdoutBytes > MAX_STDOUT)
          return done({ ok: false, error: `stdout over ${MAX_STDOUT} bytes` });
        return done({ ok: true, ...stdoutResult(stdout) });
      }
      const how = code != null ? `exit ${code}` : `killed by ${sig}`;
      done({ ok: false, error: tail ? `${how}: ${tail}` : how });
    });
  });
}
