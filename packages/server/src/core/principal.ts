/** Who a request comes from, once its key is known (http/auth.ts finds it). */

/** The key id of the main key (BUS_SECRET): the owner's. */
export const MAIN_KEY_ID = 'main';

export interface Principal {
  keyId: string;
  isMain: boolean;
  /** The tester key's SHA-256, to check it again during a long wait; null for the main key. */
  keyHash: string | null;
}
