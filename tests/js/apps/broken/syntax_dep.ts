// A syntax error on line 2, in an imported module.
export const broken = {;
