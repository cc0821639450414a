/**
 * JSON values kept exactly as written. JSON.parse turns 1234567890123456789 into
 * 1234567890123456800 and 1.0 into 1; a payload, a result and a KV value are instead kept
 * as the exact text received and spliced into the JSON text of a request or an answer
 * unchanged: by the server (stored text into answers) and by the SDK and the CLI (the
 * text a caller gave into request bodies, the text of an answer's member out of it).
 * Pure string work, no Node API: the SDK ships this file.
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

/** The exact texts of the items of a JSON array text already known to be valid. */
export function rawItems(text: string): string[] | undefined {
  let i = skipWs(text, 0);
  if (text[i] !== '[') return undefined;
  i = skipWs(text, i + 1);
  const out: string[] = [];
  while (i < text.length && text[i] !== ']') {
    const end = skipValue(text, i);
    out.push(text.slice(i, end));
    i = skipWs(text, end);
    if (text[i] === ',') i = skipWs(text, i + 1);
  }
  return out;
}

/** A JSON object text already known to be valid without its members named `key`. */
export function withoutMember(text: string, key: string): string {
  let i = skipWs(text, 0);
  if (text[i] !== '{') return text;
  i = skipWs(text, i + 1);
  const kept: string[] = [];
  while (i < text.length && text[i] === '"') {
    const keyEnd = skipString(text, i);
    const name = JSON.parse(text.slice(i, keyEnd)) as string;
    const colon = skipWs(text, keyEnd);
    if (text[colon] !== ':') break;
    const end = skipValue(text, skipWs(text, colon + 1));
    if (name !== key) kept.push(text.slice(i, end));
    i = skipWs(text, end);
    if (text[i] === ',') i = skipWs(text, i + 1);
  }
  return `{${kept.join(',')}}`;
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

/**
 * The canonical text of a valid JSON text, for comparing bodies exactly (idempotency keys):
 * object keys sorted (a repeated key: the last wins, as with JSON.parse), strings written
 * the one way JSON.stringify writes them, numbers as exact decimals. Two texts give the same
 * canonical text exactly when they denote the same value: `1.0` and `1e0` equal `1`, while
 * 12345678901234567890 and 12345678901234567891 differ (as doubles they are one number).
 */
export function canonicalJsonText(text: string): string {
  return canonicalValue(text, skipWs(text, 0))[0];
}

function canonicalValue(s: string, i: number): [string, number] {
  const c = s[i];
  if (c === '"') {
    const end = skipString(s, i);
    return [JSON.stringify(JSON.parse(s.slice(i, end))), end];
  }
  if (c === '{' || c === '[') {
    const close = c === '{' ? '}' : ']';
    const members = new Map<string, string>();
    const items: string[] = [];
    i = skipWs(s, i + 1);
    while (i < s.length && s[i] !== close) {
      let name: string | null = null;
      if (c === '{') {
        const keyEnd = skipString(s, i);
        name = JSON.parse(s.slice(i, keyEnd)) as string;
        i = skipWs(s, skipWs(s, keyEnd) + 1); // past the colon
      }
      const [value, end] = canonicalValue(s, i);
      if (name === null) items.push(value);
      else {
        members.delete(name);
        members.set(name, value);
      }
      i = skipWs(s, end);
      if (s[i] === ',') i = skipWs(s, i + 1);
    }
    const inner =
      c === '['
        ? items.join(',')
        : [...members.keys()]
            .sort()
            .map((k) => `${JSON.stringify(k)}:${members.get(k)}`)
            .join(',');
    return [c === '{' ? `{${inner}}` : `[${inner}]`, i + 1];
  }
  const end = skipValue(s, i);
  const literal = s.slice(i, end);
  return [c === 't' || c === 'f' || c === 'n' ? literal : exactDecimal(literal), end];
}

/** A JSON number as digits and a power of ten, without leading or trailing zeros: -12.50 → -125e-1. */
function exactDecimal(literal: string): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(literal);
  if (!m) return literal;
  const fraction = m[3] ?? '';
  let digits = (m[2]! + fraction).replace(/^0+/, '');
  if (digits === '') return '0'; // -0 and 0 are one value, as JSON.stringify writes them
  let exponent = BigInt(m[4] ?? '0') - BigInt(fraction.length);
  const trailing = /0+$/.exec(digits)?.[0].length ?? 0;
  digits = digits.slice(0, digits.length - trailing);
  exponent += BigInt(trailing);
  return `${m[1]}${digits}e${exponent}`;
}
