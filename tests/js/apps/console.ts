// The app's console in reflectd's log; logLevel from the env (tests/js/test_runtime.py).
import type {WriteTransaction} from '@rocicorp/reflect/server';

console.log('console.ts loaded');

export default function makeOptions(env: Record<string, string>) {
  console.info('makeOptions called');
  return {
    mutators: {
      async talk(tx: WriteTransaction, {text}: {text: string}) {
        console.log('log', text, {n: 1});
        console.info('info', text);
        console.warn('warn', text);
        console.error('error', text);
        console.debug('debug', text);
        await tx.set('talked', true);
      },
    },
    logLevel: (env.LOG_LEVEL ?? 'debug') as 'debug' | 'info' | 'error',
  };
}
