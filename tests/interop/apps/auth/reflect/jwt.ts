// An auth handler for stateless tokens: an HS256 JWT signed with the app's secret
// (REFLECTD_VAR_JWT_SECRET), verified with jose; its subject is the userID.
import type {AuthHandler, ReflectServerOptions, WriteTransaction} from '@rocicorp/reflect/server';
import {jwtVerify} from 'jose';
import {mutators, type M} from '../src/mutators.js';

type Env = Record<string, string | undefined>;

export default function makeOptions(env: Env): ReflectServerOptions<M> {
  const secret = new TextEncoder().encode(env.JWT_SECRET);
  const authHandler: AuthHandler = async (token, roomID) => {
    const {payload} = await jwtVerify(token, secret, {algorithms: ['HS256'], audience: 'reflect'});
    const rooms = payload.rooms as string[] | undefined;
    if (rooms && !rooms.includes(roomID)) return null;
    return {userID: payload.sub as string, role: payload.role as string};
  };
  // The deprecated name's successor: a client's profile goes when it disconnects.
  const onClientDisconnect = async (tx: WriteTransaction) => {
    await tx.del(`profile/${tx.clientID}`);
  };
  return {mutators, authHandler, onClientDisconnect};
}
