/**
 * Values kept exactly as the client sent them. JSON.parse turns 1234567890123456789 into
 * 1234567890123456800 and 1.0 into 1; a payload, a result and a KV value are instead
 * stored as the exact text of the request and spliced back into answers unchanged.
 */

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

function skipWs(s: string, i: number): number {
  while (i < s.length && WS.has(s.charCodeAt(i))) i++;
  return i;
}

/** Index just past the string literal that starts at `i` (a quote). */
function skipString(s: string, i: number): number {
  for (let j = i + 1; j < s.length; j++) {
    const c = s[j];
    if (c === '\\') j++;
    else if (c === '"') return j + 1;
  }
  return s.length;
}

/** Index just past the JSON value that starts at `i`. */
function skipValue(s: string, i: number): number {
  const c = s[i];
  if (c === '"') return skipString(s, i);
  if (c === '{' || c === '[') {
    let depth = 0;
    for (let j = i; j < s.length; j++) {
      const d = s[j];
      if (d === '"') j = skipString(s, j) - 1;
      else if (d === '{' || d === '[') depth++;
      else if (d === '}' || d === ']') {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return s.length;
  }
  let j = i;
  while (j < s.length && !',}] \t\n\r'.includes(s[j]!)) j++;
  return j;
}

/**
 * The exact text of the value of `key` in a JSON object text already known to be valid
 * (the last occurrence wins, as with JSON.parse); undefined when absent or not an object.
 */
export function rawMember(text: string, key: string): string | undefined {
  let i = skipWs(text, 0);
  if (text[i] !== '{') return undefined;
  i = skipWs(text, i + 1);
  let found: string | undefined;
  while (i < text.length && text[i] === '"') {
    const keyEnd = skipString(text, i);
    const name = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipWs(text, keyEnd);
    if (text[i] !== ':') return found;
    const start = skipWs(text, i + 1);
    const end = skipValue(text, start);
    if (name === key) found = text.slice(start, end);
    i = skipWs(text, end);
    if (text[i] === ',') i = skipWs(text, i + 1);
  }
  return found;
}

/** JSON text of `obj` with `raw` members spliced in as they are (null when absent). */
export function withRawMembers(obj: object, raw: Record<string, string | null>): string {
  let out = JSON.stringify(obj);
  const extra = Object.entries(raw)
    .map(([k, v]) => `${JSON.stringify(k)}:${v ?? 'null'}`)
    .join(',');
  if (extra) out = out.length > 2 ? `${out.slice(0, -1)},${extra}}` : `{${extra}}`;
  return out;
}
