export const VALUE: number = 1;
