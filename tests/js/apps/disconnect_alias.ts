// The deprecated `disconnectHandler`, an alias of onClientDisconnect; a sync auth handler;
// the options object as the default export (no makeOptions).
import type {WriteTransaction} from '@rocicorp/reflect/server';

export default {
  mutators: {
    async putPresence(tx: WriteTransaction) {
      await tx.set(`presence/${tx.clientID}`, true);
    },
  },
  authHandler: (token: string) => (token === 'ok' ? {userID: 'sync-user'} : null),
  async disconnectHandler(tx: WriteTransaction) {
    await tx.del(`presence/${tx.clientID}`);
    await tx.set('disconnected', tx.clientID);
  },
};
