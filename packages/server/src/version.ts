/** The server's version (kept equal to packages/server/package.json by a test). */
export const VERSION = '0.1.0';
/** The protocol level spoken, sent as X-Intent-Version on every response. */
export const PROTOCOL_VERSION = '2.1';
