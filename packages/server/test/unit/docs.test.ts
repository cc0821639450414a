import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '@intent-bus/protocol';
import { VERSION } from '../../src/version.js';

const read = (rel: string): string =>
  readFileSync(fileURLToPath(new URL(rel, import.meta.url)), 'utf8');

describe('documentation kept true', () => {
  it('lists every error code with its status and meaning, and nothing else', () => {
    const rows = [
      ...read('../../../../docs/errors.md').matchAll(/^\| `(\w+)`\s*\| (\d+)\s*\| (.+?)\s*\|$/gm),
    ];
    const documented = Object.fromEntries(
      rows.map((m) => [m[1], { status: Number(m[2]), meaning: m[3] }]),
    );
    expect(documented).toEqual(ERROR_CODES);
  });

  it('keeps VERSION equal to the package version', () => {
    expect(JSON.parse(read('../../package.json')).version).toBe(VERSION);
  });
});
