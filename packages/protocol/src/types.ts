/** Wire types of Intent Protocol 2.1 (PROTOCOL.md §5). Every time is unix seconds. */

export type IntentStatus = 'open' | 'claimed' | 'fulfilled' | 'dead';
export type Visibility = 'private' | 'public';
export type ResultType = 'json' | 'text';

export interface PublishRequest {
  goal: string;
  payload: unknown;
  namespace?: string;
  visibility?: Visibility;
  priority?: number;
  delay?: number;
  max_attempts?: number;
  backoff_base?: number;
  target_worker?: string | null;
  required_capability?: string | null;
  ttl?: number;
}

export interface PublishResponse {
  id: string;
  status: 'published';
  namespace: string;
}

export interface ClaimedIntent {
  id: string;
  namespace: string;
  goal: string;
  payload: unknown;
  claim_attempts: number;
  priority: number;
  target_worker: string | null;
  required_capability: string | null;
  claim_token: string;
  claim_timeout: number;
  claim_expires_at: number;
}

export interface StatusObject {
  id: string;
  namespace: string;
  goal: string;
  status: IntentStatus;
  priority: number;
  visibility: Visibility;
  claim_attempts: number;
  max_attempts: number;
  run_at: number;
  created_at: number;
  expires_at: number;
  claim_expires_at: number | null;
  target_worker: string | null;
  required_capability: string | null;
  worker_id: string | null;
  error?: string;
}

export interface ResultObject extends StatusObject {
  result: unknown;
  result_type: ResultType | null;
  completed_at: number | null;
}

export interface AdminIntent extends ResultObject {
  payload: unknown;
  publisher: string;
  backoff_base: number;
  ttl: number;
  dead_reason: string | null;
}

export interface DeadLetter {
  intent_id: string;
  namespace: string;
  goal: string;
  attempts: number;
  reason: string;
  created_at: number;
}

export interface KeyInfo {
  key_id: string;
  owner: string;
  prefix: string;
  created_at: number;
  last_used_at: number | null;
  requests: number;
}

export type { CleanupCounts } from './cleanup.js';
