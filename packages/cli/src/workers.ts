/**
 * [ext] `intent-bus workers`: the fleet this key sees (the main key: every key's), online
 * and busy first, with what each holds. The admin's commands are `admin workers …`.
 */
import type { GoalInfo, WorkerInfo } from '@intent-bus/sdk';
import type { Command } from './commands.js';
import { plural } from './output.js';

/** How long ago a time (unix seconds) was, in words. */
export function ago(seconds: number, now = Date.now() / 1000): string {
  const s = Math.max(0, Math.round(now - seconds));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129_600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

/** One line per worker: status, id, what it runs and holds, when last seen, its counts. */
export function workerLines(workers: WorkerInfo[], withKey: boolean): string {
  if (workers.length === 0)
    return 'no workers seen (a worker is listed once it claims with a worker id)';
  return workers
    .map((w) => {
      const parts = [
        `${w.status === 'offline' ? '○' : '●'} ${w.worker_id}`,
        w.command ? `${w.status} (${w.command})` : w.status,
      ];
      if (withKey) parts.push(`key ${w.key_id}`);
      if (w.capabilities.length > 0) parts.push(`caps ${w.capabilities.join(',')}`);
      if (w.goals.length > 0) parts.push(`goals ${w.goals.join(',')}`);
      if (w.holds.length > 0)
        parts.push(`holds ${w.holds.map((h) => `${h.id} (${h.namespace}/${h.goal})`).join(', ')}`);
      parts.push(`seen ${ago(w.last_seen)}`);
      parts.push(`${w.fulfilled} done, ${w.failed} failed`);
      if (w.last_error != null && w.failed > 0) parts.push(`last error: ${w.last_error}`);
      return parts.join('  ');
    })
    .join('\n');
}

/** One block per goal: its counts, the age of its oldest open intent, why some wait. */
export function goalLines(goals: GoalInfo[]): string {
  if (goals.length === 0) return 'no open, claimed or dead intents';
  return goals
    .map((g) => {
      const head = `${g.namespace}/${g.goal}  ${g.open} open, ${g.claimed} claimed, ${g.dead} dead`;
      const oldest =
        g.oldest_open_age_seconds == null
          ? ''
          : `  oldest open ${ago(Date.now() / 1000 - g.oldest_open_age_seconds)}`;
      return [head + oldest, ...g.waiting.map((w) => `  waiting: ${w.message}`)].join('\n');
    })
    .join('\n');
}

export const workers: Command = {
  name: 'workers',
  summary: 'the workers this key sees: online first, with what each holds',
  usage: 'intent-bus workers',
  options: {},
  async run(ctx) {
    const list = await ctx.client().workers();
    const keys = new Set(list.map((w) => w.key_id));
    ctx.out.result(list, () => {
      const online = list.filter((w) => w.status !== 'offline').length;
      return `${workerLines(list, keys.size > 1)}\n(${plural(online, 'worker')} online of ${list.length})`;
    });
  },
};
