/**
 * Node-only helpers (the SDK's core uses none of them): finding the API key the way the
 * Python SDK does — an explicit value, then INTENT_API_KEY, then ~/.apikey —, the admin
 * token the same way, and the secrets a bus on this machine keeps in its secrets.json.
 */
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export interface ResolvedKey {
  apiKey: string;
  source: 'option' | 'INTENT_API_KEY' | '~/.apikey';
  /** Set when the key file can be read by other users. */
  warning?: string;
}

export interface ResolvedAdminToken {
  adminToken: string;
  source: 'option' | 'INTENT_ADMIN_TOKEN' | 'BUS_ADMIN_SECRET' | '~/.admintoken';
  /** Set when the token file can be read by other users. */
  warning?: string;
}

/** A credential file's text, with a warning when other users can read it; null when absent. */
function readCredentialFile(file: string): { text: string; warning?: string } | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
  if (!text) return null;
  const mode = statSync(file).mode & 0o777;
  return (mode & 0o077) !== 0
    ? {
        text,
        warning: `${file} can be read by other users (mode ${mode.toString(8)}); run: chmod 600 ${file}`,
      }
    : { text };
}

export function resolveApiKey(explicit?: string, home: string = homedir()): ResolvedKey | null {
  if (explicit) return { apiKey: explicit, source: 'option' };
  const fromEnv = process.env.INTENT_API_KEY;
  if (fromEnv) return { apiKey: fromEnv, source: 'INTENT_API_KEY' };
  const file = readCredentialFile(join(home, '.apikey'));
  if (!file) return null;
  return file.warning
    ? { apiKey: file.text, source: '~/.apikey', warning: file.warning }
    : { apiKey: file.text, source: '~/.apikey' };
}

/**
 * The admin token, found like the key: an explicit value, INTENT_ADMIN_TOKEN, the bus's
 * own BUS_ADMIN_SECRET (set where the bus runs), then ~/.admintoken.
 */
export function resolveAdminToken(
  explicit?: string,
  home: string = homedir(),
): ResolvedAdminToken | null {
  if (explicit) return { adminToken: explicit, source: 'option' };
  for (const name of ['INTENT_ADMIN_TOKEN', 'BUS_ADMIN_SECRET'] as const) {
    const v = process.env[name];
    if (v) return { adminToken: v, source: name };
  }
  const file = readCredentialFile(join(home, '.admintoken'));
  if (!file) return null;
  return file.warning
    ? { adminToken: file.text, source: '~/.admintoken', warning: file.warning }
    : { adminToken: file.text, source: '~/.admintoken' };
}

/** Whether a bus URL names this machine: localhost, 127.0.0.0/8 or [::1]. */
export function isLoopbackUrl(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    return false;
  }
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Where a bus keeps its secrets: secrets.json in the folder of its SQLite file. */
export const localSecretsFile = (
  dbPath: string = process.env.BUS_DB_PATH || './intent-bus-data/bus.db',
): string => join(dirname(resolve(dbPath)), 'secrets.json');

/**
 * One secret (`BUS_SECRET`, `BUS_ADMIN_SECRET`) of the bus whose secrets.json is `file`,
 * so that a client on the bus's own machine needs no copied key; null when the file or
 * the value is not there (a bus given its secrets in the environment stores none).
 */
export function localBusSecret(name: string, file: string = localSecretsFile()): string | null {
  try {
    const v = (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown> | null)?.[name];
    return typeof v === 'string' && v !== '' ? v : null;
  } catch {
    return null;
  }
}
