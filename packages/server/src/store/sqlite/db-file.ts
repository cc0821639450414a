/**
 * Whether BUS_DB_PATH may be used, checked before anything is written or changed: the
 * bus must never take over (chmod, migrate, put secrets.json beside) a file or folder
 * that is not its database, such as a mistyped path to someone's notes.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

/** The first 16 bytes of every SQLite 3 database file. */
const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/**
 * Null when `path` is absent (the bus will create it), an empty regular file, or a regular
 * file that starts with the SQLite header; otherwise why it cannot be used, in a few words.
 * A symbolic link is judged by what it points to.
 */
export function unusableDbFile(path: string): string | null {
  let size: number;
  try {
    const st = statSync(path);
    if (st.isDirectory()) return 'it is a folder, not a database file';
    if (!st.isFile()) return 'it is not a regular file';
    size = st.size;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Absent: created later. A parent that is not a folder fails there, as before.
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    return `cannot read it (${code ?? (err as Error).message})`;
  }
  if (size === 0) return null;
  const head = Buffer.alloc(SQLITE_HEADER.length);
  try {
    const fd = openSync(path, 'r');
    try {
      readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    return `cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
  return head.equals(SQLITE_HEADER) ? null : 'it is not a SQLite database';
}

/**
 * Makes the folder of the data files when it is missing: mode 700, with a `.gitignore` of
 * `*`, so that a data folder made inside a work tree (`--db ./data/bus.db`) is never one
 * `git add .` away from a commit of its secrets. A folder that exists is left as it is.
 */
export function makeDataFolder(dir: string): void {
  if (existsSync(dir)) return;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, '.gitignore'), '# Made by Intent Bus: its data and secrets.\n*\n', {
    mode: 0o600,
  });
}

/**
 * One bus per SQLite file: a second one would not hear the first's wake-ups (a publish on
 * one would not wake a long poll on the other). `<db>.pid` names the process that has the
 * file; a second start refuses with one line naming it, a stale file (its process is gone)
 * is taken over. Returns the release, which removes the file. Several nodes: PostgreSQL.
 */
export function claimDbFile(path: string): () => void {
  const pidFile = `${path}.pid`;
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(pidFile, 'wx', 0o600);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      return () => {
        try {
          if (readFileSync(pidFile, 'utf8').trim() === String(process.pid)) unlinkSync(pidFile);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
    }
    const holder = Number(readFileSync(pidFile, 'utf8').trim());
    if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
      throw new Error(
        `${path} is in use by another bus (process ${holder}); one bus per SQLite file ` +
          `(for several nodes use PostgreSQL, BUS_DATABASE_URL); if no bus runs, remove ${pidFile}`,
      );
    }
    unlinkSync(pidFile); // left by a bus that was killed
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
