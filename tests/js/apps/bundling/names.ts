export const MUTATOR_NAME = 'compute';
