/**
 * Whether BUS_DB_PATH may be used, checked before anything is written or changed: the
 * bus must never take over (chmod, migrate, put secrets.json beside) a file or folder
 * that is not its database, such as a mistyped path to someone's notes.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';

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
