/**
 * The request-signing vectors of PROTOCOL.md §3, kept in the repository (a copy of the
 * spec's hmac-vectors.json, checked against it when the spec folder is beside the repo).
 */
import { readFileSync } from 'node:fs';

export interface Vector {
  method: string;
  raw_path: string;
  raw_query: string;
  body_utf8: string;
  api_key: string;
  timestamp: string;
  nonce: string;
  canonical_path: string;
  signature: string;
}

export const VECTORS_URL = new URL('./hmac-vectors.json', import.meta.url);
export const SPEC_VECTORS_URL = new URL(
  '../../../../shared/spec/hmac-vectors.json',
  import.meta.url,
);

export const VECTORS = (JSON.parse(readFileSync(VECTORS_URL, 'utf8')) as { vectors: Vector[] })
  .vectors;
