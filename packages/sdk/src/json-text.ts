/**
 * JSON as text: a payload, a result or a KV value sent as it is written. JSON.parse turns
 * 12345678901234567890 into 12345678901234567000, 1.0 into 1 and 1e400 into Infinity; the
 * bus keeps the exact text it receives, and so do the client and the runtime when they are
 * given text: it is spliced into the request body (withRawMembers), never parsed and
 * serialised again.
 */

/** A JSON text, checked once (JSON.parse) and then sent as written, without its outer spaces. */
export class JsonText {
  readonly text: string;
  constructor(text: string) {
    this.text = checkedJsonText(text);
  }
}

/** `jsonText(s)`: send `s` as written, as a payload, a result (a handler's return) or a value. */
export const jsonText = (text: string): JsonText => new JsonText(text);

/**
 * `text` when it is one JSON value, without the spaces around it; a TypeError naming `what`
 * otherwise. JSON.parse accepts only JSON's own spaces around a value, which trim() removes.
 */
export function checkedJsonText(text: string, what?: string): string {
  const prefix = what ? `${what}: ` : '';
  if (typeof text !== 'string') throw new TypeError(`${prefix}not JSON text: not a string`);
  try {
    JSON.parse(text);
  } catch (err) {
    throw new TypeError(`${prefix}not JSON text: ${(err as Error).message}`, { cause: err });
  }
  return text.trim();
}

/**
 * The exact text to send for a member given as a value or as text: the text (checked) when
 * given, a JsonText's own, else undefined (the value goes through JSON.stringify).
 */
export function exactText(
  name: string,
  value: unknown,
  textName: string,
  text: string | undefined,
): string | undefined {
  if (text !== undefined) {
    if (value !== undefined) throw new TypeError(`pass ${name} or ${textName}, not both`);
    return checkedJsonText(text, textName);
  }
  return value instanceof JsonText ? value.text : undefined;
}
