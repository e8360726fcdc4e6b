// What an app's server module gets when it imports '@rocicorp/reflect/server' under reflectd.
//
// Types vanish when the module is bundled; these are the runtime values of the package's
// server entry (0.39), implemented for reflectd: options builders and log levels work as in
// the hosted service; Datadog sinks and metrics cannot reach Datadog from here, so they keep
// the app's logs in reflectd's log and say so once.

const LEVELS = ['debug', 'info', 'error'];

function warnOnce(what) {
  const flag = `__reflectdWarned_${what}`;
  if (globalThis[flag]) return;
  globalThis[flag] = true;
  console.warn(`${what} is not supported by reflectd: the app's logs go to reflectd's log`);
}

/** A log sink that writes to the console (which reflectd routes into its log). */
export const consoleLogSink = {
  log(level, context, ...args) {
    const method = level === 'error' ? 'error' : level === 'debug' ? 'debug' : 'info';
    const prefix = context ? Object.entries(context).map(([k, v]) => `${k}=${v}`) : [];
    console[method](...prefix, ...args);
  },
};

export class OptionsBuilder {
  #make;
  constructor(base) {
    this.#make = base;
  }
  add(adder) {
    const make = this.#make;
    this.#make = env => adder(make(env), env);
    return this;
  }
  build() {
    return this.#make;
  }
}

export function newOptionsBuilder(base) {
  return new OptionsBuilder(base);
}

export function defaultConsoleLogSink() {
  return options => ({...options, logSinks: [...(options.logSinks ?? []), consoleLogSink]});
}

export function logLevel(defaultLogLevel = 'info') {
  return (options, env) => {
    const fromEnv = env?.LOG_LEVEL;
    const level = LEVELS.includes(fromEnv) ? fromEnv : defaultLogLevel;
    return {...options, logLevel: level};
  };
}

export function logFilter(include) {
  return (options, env) => {
    if (env?.DISABLE_LOG_FILTERING === 'true' || !options.logSinks) return options;
    const logSinks = options.logSinks.map(sink => ({
      log: (level, context, ...args) => {
        if (include(level, context, ...args)) sink.log(level, context, ...args);
      },
      flush: () => sink.flush?.(),
    }));
    return {...options, logSinks};
  };
}

export function createWorkerDatadogLogSink(_options) {
  warnOnce('the Datadog log sink');
  return consoleLogSink;
}

export function datadogLogging(_defaultServiceLabel, _host) {
  return (options, env) => {
    if (env?.DATADOG_LOGS_API_KEY) warnOnce('Datadog logging');
    return options;
  };
}

export function datadogMetrics(_defaultServiceLabel, _tags) {
  return (options, env) => {
    if (env?.DATADOG_METRICS_API_KEY) warnOnce('Datadog metrics');
    return options;
  };
}

/**
 * The hosted service's worker factory: under reflectd it only carries the options, also in
 * its `worker` (Reflect's scripts export `worker as default`).
 */
export function createReflectServer(makeOptions) {
  const worker = {__reflectdMakeOptions: makeOptions};
  return {__reflectdMakeOptions: makeOptions, worker, RoomDO: class {}, AuthDO: class {}};
}
