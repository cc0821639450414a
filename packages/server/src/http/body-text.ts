/**
 * What a JSON body's text must be beyond JSON.parse: valid UTF-8, and no lone surrogate.
 * Either would otherwise be stored changed (U+FFFD, or a surrogate each store and driver
 * encodes its own way), so the bus refuses both with 400 invalid_json.
 */

// `fatal`: invalid UTF-8 throws instead of becoming U+FFFD. `ignoreBOM`: a BOM stays in
// the text, as Buffer#toString keeps it (and JSON.parse refuses it, as before).
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The body's text, or null when its bytes are not valid UTF-8. */
export function decodeUtf8(body: Buffer): string | null {
  try {
    return UTF8.decode(body);
  } catch {
    return null;
  }
}

// Valid UTF-8 cannot encode a surrogate, so a lone one can only come from a JSON escape of
// U+D800–U+DFFF. Most bodies have none: only those that do are walked. The regex also
// matches an escaped backslash before "ud800" (the text \\ud800); the walk decides.
const SURROGATE_ESCAPE = /\\ud[89a-f][0-9a-f]{2}/i;

// ES2024 (Node 20 has it); the project's lib is ES2023.
type WellFormed = { isWellFormed(): boolean };
const wellFormed = (s: string): boolean => (s as unknown as WellFormed).isWellFormed();

/**
 * Whether a string or object key of `parsed` (the result of JSON.parse(text)) holds a lone
 * surrogate. `parsed` must be bounded in depth already (nestingExceeds).
 */
export function hasLoneSurrogate(text: string, parsed: unknown): boolean {
  return SURROGATE_ESCAPE.test(text) && walk(parsed);
}

function walk(v: unknown): boolean {
  if (typeof v === 'string') return !wellFormed(v);
  if (v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) return v.some(walk);
  for (const k in v) {
    if (!wellFormed(k) || walk((v as Record<string, unknown>)[k])) return true;
  }
  return false;
}
