// The options made as Reflect's CLI scripts made them: newOptionsBuilder with logLevel,
// defaultConsoleLogSink, logFilter, datadogLogging and datadogMetrics, then
// createReflectServer, its worker as the default export (tests/js/node/test_reflect_server.py).
import {
  createReflectServer,
  datadogLogging,
  datadogMetrics,
  defaultConsoleLogSink,
  logFilter,
  logLevel,
  newOptionsBuilder,
} from '@rocicorp/reflect/server';
import type {ReflectServerOptions, WriteTransaction} from '@rocicorp/reflect/server';

const mutators = {
  async talk(tx: WriteTransaction, {text}: {text: string}) {
    console.debug('debug', text);
    console.log('info', text);
    console.error('error', text);
    await tx.set('talked', text);
  },
};

function makeOptions(): ReflectServerOptions<typeof mutators> {
  return {mutators, maxMutationsPerTurn: 7};
}

const optionsBuilder = newOptionsBuilder(makeOptions)
  .add(logLevel())
  .add(defaultConsoleLogSink())
  .add(logFilter(level => level !== 'debug'))
  .add(datadogLogging('app-name-team-label', 'app-script-name'))
  .add(datadogMetrics('app-name-team-label', {script: 'app-script-name'}))
  .build();
const {worker, RoomDO, AuthDO} = createReflectServer(optionsBuilder);
export {AuthDO, RoomDO, worker as default};
