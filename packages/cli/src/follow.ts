/** `publish --wait --follow`: an intent's progress lines as they come (issue 20). */
import type { IntentClient, IntentEvent } from '@intent-bus/sdk';

/** `40% encoding`, `encoding`, `40%`. */
export function progressText(p: { percent: number | null; message: string | null }): string {
  return [p.percent === null ? null : `${p.percent}%`, p.message].filter(Boolean).join(' ');
}

/** Prints the progress of one intent as it comes, until `signal` aborts (publish --follow). */
export async function followProgress(
  client: IntentClient,
  id: string,
  print: (line: string) => void,
  signal: AbortSignal,
): Promise<void> {
  try {
    for await (const r of client.events({ id }, { signal })) {
      const e = r.data as IntentEvent;
      if (r.event === 'progress' && e.progress) print(`progress ${progressText(e.progress)}`);
      else if (r.event !== 'gap') print(`${e.type} (${e.status})`);
    }
  } catch (err) {
    if (!signal.aborted) print(`warning: no progress lines: ${(err as Error).message}`);
  }
}
