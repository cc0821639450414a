import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '@intent-bus/protocol';
import { VERSION } from '../../src/version.js';
import { AMBIGUOUS_VECTORS } from '../../../protocol/test/vectors.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

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

  it('quotes the ambiguous-request example of PROTOCOL.md §3 as hmac-ambiguous.json has it', () => {
    const v = AMBIGUOUS_VECTORS.find((x) => x.nonce === 'n-a001')!;
    const doc = read('../../../../docs/PROTOCOL.md');
    for (const part of [v.signature, v.timestamp, v.api_key, v.raw_path, v.refused_twin])
      expect(doc).toContain(part);
  });

  it('has every relative link of every Markdown file resolve inside the repository', () => {
    const files = execFileSync('git', ['ls-files', '*.md'], { cwd: ROOT, encoding: 'utf8' })
      .split('\n')
      .filter((f) => f !== '');
    const broken: string[] = [];
    for (const file of files) {
      const text = readFileSync(join(ROOT, file), 'utf8').replace(/```[\s\S]*?```/g, '');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!.split('#')[0]!;
        if (target === '' || /^[a-z]+:/i.test(target)) continue;
        const resolved = join(ROOT, dirname(file), decodeURIComponent(target));
        if (!resolved.startsWith(ROOT) || !existsSync(resolved)) broken.push(`${file}: ${m[1]}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('keeps VERSION equal to the package version', () => {
    expect(JSON.parse(read('../../package.json')).version).toBe(VERSION);
  });
});
