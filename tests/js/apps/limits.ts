// Runaway and greedy app code, stopped by the runtime's limits (tests/js/node/test_host.py).
import type {WriteTransaction} from '@rocicorp/reflect/server';

export default function makeOptions() {
  return {
    mutators: {
      async put(tx: WriteTransaction, {key, value}: {key: string; value: number}) {
        await tx.set(key, value);
      },
      async spin(tx: WriteTransaction) {
        await tx.set('spun', true);
        for (;;) {
          // runs away before any await
        }
      },
      async spinAfterAwait(tx: WriteTransaction) {
        await tx.get('anything');
        await tx.set('spun', true);
        for (;;) {
          // runs away after an await
        }
      },
      async waitForTimer(tx: WriteTransaction, {ms}: {ms: number}) {
        await new Promise(resolve => setTimeout(resolve, ms));
        await tx.set('waited', ms);
      },
      async digest(tx: WriteTransaction, {text}: {text: string}) {
        const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
        const hex = [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('');
        await tx.set('digest', hex);
      },
      async waitForever(tx: WriteTransaction) {
        await new Promise(() => {});
        await tx.set('never', true);
      },
      async heapBomb(tx: WriteTransaction) {
        await tx.set('bombed', true);
        const hoard: string[][] = [];
        for (;;) hoard.push(new Array(1 << 20).fill('x'.repeat(16)));
      },
      async busy(tx: WriteTransaction, {ms}: {ms: number}) {
        const until = Date.now() + ms;
        while (Date.now() < until) {
          // works for a while, within the limit
        }
        await tx.set(`busy/${tx.mutationID}`, ms);
      },
    },
    authHandler(token: string) {
      if (token === 'spin') {
        for (;;) {
          // runs away
        }
      }
      return {userID: token};
    },
  };
}
