import { chmodSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Connection, SqliteDriver } from '../../src/store/sqlite/connection.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { StoreUnavailableError } from '../../src/store/store.js';
import { intent, storeContract } from './contract.js';
import { forEachDriver, openPeer } from './drivers.js';

/** The same tests on each SQLite driver this Node can use (drivers.ts). */
forEachDriver('SQLite', (driver: SqliteDriver) => {
  storeContract(`sqlite, ${driver}`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intent-bus-store-'));
    return new SqliteStore({ path: join(dir, 'bus.db'), driver });
  });

  describe('SQLite group commit', () => {
    const opened: { store: SqliteStore; peer: Connection }[] = [];
    afterEach(async () => {
      for (const { store, peer } of opened.splice(0)) {
        peer.close();
        await store.close();
      }
    });

    /** A migrated store and a second connection to its file, which sees only commits. */
    async function open(): Promise<{ store: SqliteStore; peer: Connection }> {
      const path = join(mkdtempSync(join(tmpdir(), 'intent-bus-store-')), 'bus.db');
      const store = new SqliteStore({ path, driver });
      await store.migrate();
      expect(store.driver).toBe(driver);
      const pair = { store, peer: openPeer(path, driver) };
      opened.push(pair);
      return pair;
    }
    const idsOnDisk = (peer: Connection): string[] =>
      (peer.prepare('SELECT id FROM intents ORDER BY id').all() as { id: string }[]).map(
        (r) => r.id,
      );

    it('commits the writes of one turn together, and answers only once they are committed', async () => {
      const { store, peer } = await open();
      const a = intent({ id: 'a'.repeat(32) });
      const b = intent({ id: 'b'.repeat(32) });
      const pa = store.intentPublish(a, null, null);
      const pb = store.intentPublish(b, null, null);
      // Both statements ran, neither is committed yet: another connection sees nothing.
      expect(idsOnDisk(peer)).toEqual([]);
      await pa;
      // The first answer comes with the whole batch committed.
      expect(idsOnDisk(peer)).toEqual([a.id, b.id]);
      await pb;
      // The next turn's write is a batch of its own.
      const c = intent({ id: 'c'.repeat(32) });
      await store.intentPublish(c, null, null);
      expect(idsOnDisk(peer)).toEqual([a.id, b.id, c.id]);
    });

    it('settles a read made during an open batch with that batch', async () => {
      const { store, peer } = await open();
      const a = intent();
      const write = store.intentPublish(a, null, null);
      const read = store.intentGet(a.id);
      await expect(read).resolves.toMatchObject({ id: a.id });
      expect(idsOnDisk(peer)).toEqual([a.id]);
      await write;
    });

    it('fails every call of a batch that the database rolled back, and keeps working', async () => {
      const { store, peer } = await open();
      // A trigger that undoes the whole transaction, as a full disk or an I/O error can.
      peer.exec(`CREATE TRIGGER poison AFTER INSERT ON kv WHEN NEW.name = 'poison'
      BEGIN SELECT RAISE(ROLLBACK, 'rolled back'); END`);
      const a = intent();
      const pa = store.intentPublish(a, null, null);
      const pk = store.kvSet('o', 'poison', '1', Date.now() + 60_000);
      await expect(pk).rejects.toThrow();
      await expect(pa).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(idsOnDisk(peer)).toEqual([]);
      const b = intent();
      await expect(store.intentPublish(b, null, null)).resolves.toMatchObject({ kind: 'created' });
      expect(idsOnDisk(peer)).toEqual([b.id]);
    });

    it('counts no nonce of a batch that was rolled back', async () => {
      const { store, peer } = await open();
      peer.exec(`CREATE TRIGGER poison AFTER INSERT ON kv WHEN NEW.name = 'poison'
      BEGIN SELECT RAISE(ROLLBACK, 'rolled back'); END`);
      const now = Date.now();
      const record = (nonce: string) => store.nonceRecord('kid_a', nonce, now + 60_000, now, 3);
      expect(await record('n0')).toBe('recorded');
      // n1 is recorded in the batch, then the batch is undone: n1 is not there, nor counted.
      const pn = record('n1');
      const pk = store.kvSet('o', 'poison', '1', now + 60_000);
      await expect(pk).rejects.toThrow();
      await expect(pn).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(peer.prepare('SELECT COUNT(*) AS n FROM nonces').get()).toEqual({ n: 1 });
      expect(await record('n1')).toBe('recorded');
      expect(await record('n2')).toBe('recorded');
      expect(await record('n3')).toBe('full');
    });

    it('fails every call of a batch whose COMMIT fails, and keeps working', async () => {
      const { store, peer } = await open();
      // A deferred foreign key is checked at COMMIT: the commit of a batch that broke it fails.
      peer.exec(`CREATE TABLE parent (id TEXT PRIMARY KEY);
      CREATE TABLE child (id TEXT REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
      CREATE TRIGGER orphan AFTER INSERT ON kv WHEN NEW.name = 'orphan'
        BEGIN INSERT INTO child VALUES ('nobody'); END`);
      const a = intent();
      const pa = store.intentPublish(a, null, null);
      const pk = store.kvSet('o', 'orphan', '1', Date.now() + 60_000);
      await expect(pa).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(pk).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(idsOnDisk(peer)).toEqual([]);
      expect(peer.prepare('SELECT COUNT(*) AS n FROM kv').get()).toEqual({ n: 0 });
      const b = intent();
      await store.intentPublish(b, null, null);
      expect(idsOnDisk(peer)).toEqual([b.id]);
    });
  });

  describe('SQLite store file', () => {
    const modeOf = (path: string): number => statSync(path).mode & 0o777;

    it('refuses a path that is not a database without changing it, and makes only its own file 600', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'intent-bus-store-'));
      const notes = join(dir, 'notes.txt');
      writeFileSync(notes, 'not a database');
      chmodSync(notes, 0o644);
      const short = join(dir, 'short');
      writeFileSync(short, 'SQLite');
      chmodSync(short, 0o644);
      const folder = join(dir, 'folder');
      mkdirSync(folder);
      chmodSync(folder, 0o755);
      for (const [path, reason, mode] of [
        [notes, /not a SQLite database/, 0o644],
        [short, /not a SQLite database/, 0o644],
        [folder, /folder/, 0o755],
      ] as const) {
        expect(() => new SqliteStore({ path, driver })).toThrow(reason);
        expect(modeOf(path), path).toBe(mode);
      }
      expect(readdirSync(dir).sort()).toEqual(['folder', 'notes.txt', 'short']);
      const store = new SqliteStore({ path: join(dir, 'new', 'bus.db'), driver });
      await store.migrate();
      await store.close();
      expect(modeOf(join(dir, 'new'))).toBe(0o700);
      expect(modeOf(join(dir, 'new', 'bus.db'))).toBe(0o600);
    });
  });
});
