/**
 * Who may claim what (PROTOCOL.md §4). The store's claim statement encodes the same rule
 * in SQL; this predicate decides which waiting claimers a newly claimable intent wakes.
 */
import { LIMITS, type Visibility } from '@intent-bus/protocol';

/** What a claim asks for, with the publisher filter already resolved to a key id. */
export interface ClaimFilter {
  keyId: string;
  namespace: string;
  goal: string | null;
  /** Key id of the publisher filter, or null for "public or mine". */
  publisher: string | null;
  workerId: string | null;
  capabilities: readonly string[];
}

/** The attributes of an intent that routing looks at. */
export interface RoutingAttrs {
  namespace: string;
  goal: string;
  visibility: Visibility;
  publisher: string;
  targetWorker: string | null;
  requiredCapability: string | null;
}

export function matchesClaim(intent: RoutingAttrs, claim: ClaimFilter): boolean {
  if (intent.namespace !== claim.namespace) return false;
  if (claim.goal != null && intent.goal !== claim.goal) return false;
  if (intent.targetWorker != null && intent.targetWorker !== claim.workerId) return false;
  if (intent.requiredCapability != null && !claim.capabilities.includes(intent.requiredCapability))
    return false;
  if (claim.publisher != null) return intent.publisher === claim.publisher;
  return intent.visibility === 'public' || intent.publisher === claim.keyId;
}

/**
 * A claimer names itself freely (PROTOCOL.md §4 sets no format): any text up to 128
 * characters without control characters. A name that no intent targets simply matches none.
 */
export const isClaimerName = (s: string): boolean =>
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  s.length <= LIMITS.claimerNameMaxLength && !/[\u0000-\u001f\u007f]/.test(s);

/** A comma list, whitespace around items ignored, empty items dropped. */
export function parseCapabilities(raw: string | undefined | null): string[] {
  if (raw == null) return [];
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
