/**
 * Node-only helpers (the SDK's core uses none of them): finding the API key the way the
 * Python SDK does — an explicit value, then INTENT_API_KEY, then ~/.apikey.
 */
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface ResolvedKey {
  apiKey: string;
  source: 'option' | 'INTENT_API_KEY' | '~/.apikey';
  /** Set when the key file can be read by other users. */
  warning?: string;
}

export function resolveApiKey(explicit?: string, home: string = homedir()): ResolvedKey | null {
  if (explicit) return { apiKey: explicit, source: 'option' };
  const fromEnv = process.env.INTENT_API_KEY;
  if (fromEnv) return { apiKey: fromEnv, source: 'INTENT_API_KEY' };
  const file = join(home, '.apikey');
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
  if (!text) return null;
  const mode = statSync(file).mode & 0o777;
  const warning =
    (mode & 0o077) !== 0
      ? `${file} can be read by other users (mode ${mode.toString(8)}); run: chmod 600 ${file}`
      : undefined;
  return warning
    ? { apiKey: text, source: '~/.apikey', warning }
    : { apiKey: text, source: '~/.apikey' };
}
