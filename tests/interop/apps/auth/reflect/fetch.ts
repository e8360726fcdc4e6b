// An auth handler that asks the app's session service: GET $SESSION_URL/session with the
// token. The service's address comes as the handler's `env` (its 3rd argument) and the key the
// service wants from `makeOptions(env)`: both from REFLECTD_VAR_<NAME>.
import type {AuthHandler, ReflectServerOptions} from '@rocicorp/reflect/server';
import {mutators, type M} from '../src/mutators.js';

type Env = Record<string, string | undefined>;

export default function makeOptions(env: Env): ReflectServerOptions<M> {
  const serviceKey = env.SESSION_KEY ?? '';
  const authHandler: AuthHandler = async (auth, roomID, handlerEnv) => {
    const url = new URL('/session', (handlerEnv as Env).SESSION_URL);
    url.searchParams.set('room', roomID);
    const response = await fetch(url, {headers: {authorization: `Bearer ${auth}`, 'x-service-key': serviceKey}});
    if (response.status === 401) return null;
    if (!response.ok) throw new Error(`the session service answered ${response.status}`);
    const session = (await response.json()) as {userID: string; role: string};
    return {userID: session.userID, role: session.role};
  };
  return {mutators, authHandler};
}
