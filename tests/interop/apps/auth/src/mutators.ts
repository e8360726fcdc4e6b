// The auth apps' one mutator: it records what the server knows of the user (tx.auth is what
// the auth handler returned, extra fields included; the client has no auth of its own).
import type {WriteTransaction} from '@rocicorp/reflect';

export type Profile = {userID: string | null; role: string | null; location: string};

export const mutators = {
  whoami: async (tx: WriteTransaction) => {
    const auth = tx.auth as {userID?: string; role?: string} | undefined;
    await tx.set(`profile/${tx.clientID}`, {
      userID: auth?.userID ?? null,
      role: auth?.role ?? null,
      location: tx.location,
    } satisfies Profile);
  },
};

export type M = typeof mutators;
