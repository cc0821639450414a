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

/**
 * [ext] A vector whose signature is also valid for another request, `refused_twin` (a
 * request target), which a verifier refuses (hmac-ambiguous.json).
 */
export interface AmbiguousVector extends Vector {
  refused_twin: string;
  why: string;
}

export const AMBIGUOUS_VECTORS_URL = new URL('./hmac-ambiguous.json', import.meta.url);
export const AMBIGUOUS_VECTORS = (
  JSON.parse(readFileSync(AMBIGUOUS_VECTORS_URL, 'utf8')) as { vectors: AmbiguousVector[] }
).vectors;
