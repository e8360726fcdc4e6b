// The room handlers and the auth handler (tests/js/test_runtime.py).
import type {AuthData, WriteTransaction} from '@rocicorp/reflect/server';

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

async function authHandler(token: string, roomID: string, env: Record<string, string>) {
  switch (token) {
    case 'null':
      return null;
    case 'throw':
      throw new TypeError(`bad token for ${roomID}`);
    case 'throw-string':
      throw 'just a string';
    case 'async':
      await sleep(10);
      return {userID: 'later', roomID};
    case 'spin':
      for (;;) {
        // runs away
      }
    default:
      return {userID: token, roomID, role: 'admin', tags: ['a', 'b'], region: env.REGION ?? null};
  }
}

export default function makeOptions() {
  return {
    mutators: {
      async putPresence(tx: WriteTransaction) {
        await tx.set(`presence/${tx.clientID}`, true);
      },
      async saveAuth(tx: WriteTransaction) {
        await tx.set('auth', (tx.auth ?? null) as AuthData);
      },
    },
    authHandler,
    async roomStartHandler(tx: WriteTransaction, roomID: string) {
      if (roomID === 'cannot-start') throw new Error(`room ${roomID} refuses to start`);
      if (await tx.isEmpty()) {
        await tx.set('seeded', {roomID, clientID: tx.clientID});
      }
      await tx.set('starts', (((await tx.get('starts')) as number | undefined) ?? 0) + 1);
    },
    async onClientDisconnect(tx: WriteTransaction) {
      await tx.del(`presence/${tx.clientID}`);
    },
    async onClientDelete(tx: WriteTransaction) {
      await tx.set(`deleted/${tx.clientID}`, tx.reason);
    },
  };
}
