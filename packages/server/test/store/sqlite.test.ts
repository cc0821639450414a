import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { storeContract } from './contract.js';

storeContract('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'intent-bus-store-'));
  return new SqliteStore({ path: join(dir, 'bus.db') });
});
