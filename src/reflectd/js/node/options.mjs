// The options of a Reflect server module (`@rocicorp/reflect/server` 0.39), checked once the
// module is loaded, and what the runtime reports of them to reflectd.

const OPTION_NAMES = [
  'mutators',
  'authHandler',
  'roomStartHandler',
  'onClientDisconnect',
  'disconnectHandler',
  'onClientDelete',
  'logLevel',
  'logSinks',
  'maxMutationsPerTurn',
  'allowUnconfirmedWrites',
  'datadogMetricsOptions',
];
const HANDLER_NAMES = [
  'authHandler',
  'roomStartHandler',
  'onClientDisconnect',
  'disconnectHandler',
  'onClientDelete',
];

/** What is wrong with the app's module (the host's own stack would not help its author). */
export class ModuleError extends Error {}

/** Throws a ModuleError naming `where` if `options` are not a server module's options. */
export function checkOptions(options, where, log) {
  if (options === null || typeof options !== 'object') {
    throw new ModuleError(`${where}: the default export must be makeOptions or the options object`);
  }
  if (options.mutators === null || typeof options.mutators !== 'object') {
    throw new ModuleError(`${where}: the options have no mutators object`);
  }
  for (const [name, mutator] of Object.entries(options.mutators)) {
    if (typeof mutator !== 'function') {
      throw new ModuleError(`${where}: mutator ${name} is not a function`);
    }
  }
  for (const name of HANDLER_NAMES) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new ModuleError(`${where}: ${name} is not a function`);
    }
  }
  if (options.logLevel !== undefined && !['debug', 'info', 'error'].includes(options.logLevel)) {
    throw new ModuleError(`${where}: logLevel must be 'debug', 'info' or 'error'`);
  }
  const max = options.maxMutationsPerTurn;
  if (max !== undefined && !(Number.isInteger(max) && max > 0)) {
    throw new ModuleError(`${where}: maxMutationsPerTurn must be a positive integer`);
  }
  for (const name of Object.keys(options)) {
    if (!OPTION_NAMES.includes(name)) {
      log('info', `${where}: option ${name} is not known to reflectd; ignored`);
    }
  }
}

/** The options' shape, as reflectd's AppShape reads it. */
export function describeOptions(options) {
  return {
    mutators: Object.keys(options.mutators),
    authHandler: options.authHandler !== undefined,
    roomStartHandler: options.roomStartHandler !== undefined,
    onClientDisconnect: (options.onClientDisconnect ?? options.disconnectHandler) !== undefined,
    onClientDelete: options.onClientDelete !== undefined,
    logLevel: options.logLevel ?? 'info',
    maxMutationsPerTurn: options.maxMutationsPerTurn ?? null,
    allowUnconfirmedWrites: options.allowUnconfirmedWrites ?? false,
  };
}
