// No mutators in the options.
export default function makeOptions() {
  return {authHandler: () => null};
}
