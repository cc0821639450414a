/** `intent-bus admin …`: the admin API of PROTOCOL.md §6. */
import { withRawMembers } from '@intent-bus/sdk';
import { indentJson, plural, UsageError } from './output.js';
import type { Command } from './commands.js';

export const admin: Command = {
  name: 'admin',
  summary: 'keys, dead letters, retry, cancel, purge, cleanup',
  usage: `intent-bus admin keys create OWNER     mint a tester key (shown once)
intent-bus admin keys revoke KEY       revoke by the key itself or its key_id (kid_…)
intent-bus admin keys list             live keys: key_id, owner, prefix, usage
intent-bus admin dead list [-n NS]     the newest dead letters
intent-bus admin dead show ID          one dead letter with its payload
intent-bus admin discard ID            delete a dead letter for good (its intent too)
intent-bus admin show ID               everything about an intent
intent-bus admin retry ID              back to open, attempts reset
intent-bus admin cancel ID             open or claimed → dead (cancelled)
intent-bus admin purge [-n NS] --yes   delete intents and dead letters (of one namespace)
intent-bus admin cleanup               run every housekeeping pass now`,
  options: {
    namespace: { type: 'string', short: 'n' },
    yes: { type: 'boolean' },
  },
  async run(ctx) {
    const [group, action, arg, ...rest] = ctx.positionals;
    const api = (): ReturnType<typeof ctx.adminClient>['admin'] => ctx.adminClient().admin;
    const ns = ctx.values.namespace as string | undefined;
    const one = (what: string): string => {
      if (!arg || rest.length > 0) throw new UsageError(`expected: admin ${what}`);
      return arg;
    };
    const key = `${group ?? ''} ${action ?? ''}`.trim();
    switch (key) {
      case 'keys create': {
        const k = await api().generateKey(one('keys create OWNER'));
        ctx.out.result(
          k,
          () => `${k.api_key}\n(key_id ${k.key_id}, owner ${k.owner}; the key is shown only now)`,
        );
        return;
      }
      case 'keys revoke': {
        const k = one('keys revoke KEY');
        const r = await api().revokeKey(k.startsWith('kid_') ? { keyId: k } : { apiKey: k });
        ctx.out.result(r, () => 'revoked');
        return;
      }
      case 'keys list': {
        const keys = await api().keys();
        ctx.out.result(keys, () =>
          keys.length === 0
            ? 'no tester keys'
            : keys
                .map(
                  (k) => `${k.key_id}  ${k.prefix}…  ${k.owner}  ${plural(k.requests, 'request')}`,
                )
                .join('\n'),
        );
        return;
      }
      case 'dead list': {
        const dead = await api().deadLetters(ns ? { namespace: ns } : {});
        ctx.out.result(dead, () =>
          dead.length === 0
            ? 'no dead letters'
            : dead
                .map(
                  (d) =>
                    `${d.intent_id}  ${d.namespace}/${d.goal}  ${plural(d.attempts, 'attempt')}  ${d.reason}`,
                )
                .join('\n'),
        );
        return;
      }
      case 'dead show': {
        // As the bus answered, the payload's exact text spliced in last, where it was.
        const { payload, payloadText, ...d } = await api().deadLetter(one('dead show ID'));
        const answer = withRawMembers(d, { payload: payloadText });
        ctx.out.resultText(answer, () => indentJson(answer));
        return;
      }
    }
    // One-word actions take the id as their first argument.
    const id = action;
    const single = (): string => {
      if (!id || arg !== undefined) throw new UsageError(`expected: admin ${group} ID`);
      return id;
    };
    switch (group) {
      case 'show': {
        const { payload, result, payloadText, resultText, ...i } = await api().intent(single());
        const answer = withRawMembers(i, { payload: payloadText, result: resultText });
        ctx.out.resultText(answer, () => indentJson(answer));
        return;
      }
      case 'retry':
      case 'cancel': {
        const r = group === 'retry' ? await api().retry(single()) : await api().cancel(single());
        ctx.out.result(r, () => `${r.id}: ${r.status}`);
        return;
      }
      case 'discard': {
        const r = await api().discardDead(single());
        ctx.out.result(r, () => `${r.id}: discarded`);
        return;
      }
      case 'purge': {
        if (action !== undefined) throw new UsageError('expected: admin purge [-n NS] --yes');
        if (ctx.values.yes !== true)
          throw new UsageError('purge deletes intents for good: add --yes');
        const r = await api().purge(ns ? { namespace: ns } : {});
        ctx.out.result(
          r,
          () =>
            `deleted ${plural(r.intents_deleted, 'intent')} (${plural(r.dead_letters_deleted, 'dead letter')})`,
        );
        return;
      }
      case 'cleanup': {
        if (action !== undefined) throw new UsageError('expected: admin cleanup');
        const r = await api().cleanup();
        ctx.out.result(r, () =>
          Object.entries(r)
            .filter(([k]) => k !== 'ok')
            .map(([k, n]) => `${k}: ${String(n)}`)
            .join('\n'),
        );
        return;
      }
    }
    throw new UsageError(`unknown admin command: ${ctx.positionals.join(' ') || '(none)'}`);
  },
};
