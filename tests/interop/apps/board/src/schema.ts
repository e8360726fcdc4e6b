// The board's data and the arguments its mutators accept, as zod schemas: the server checks
// what clients send (reflect/index.ts), since anyone can send anything.
import {z} from 'zod';

export const itemSchema = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_-]{21}$/, 'ids are nanoids'),
    title: z.string().min(1).max(100),
    owner: z.string().min(1),
    done: z.boolean(),
    order: z.number(),
    votes: z.number().int().nonnegative(),
  })
  .strict();

export type Item = z.infer<typeof itemSchema>;

const id = itemSchema.shape.id;
const title = itemSchema.shape.title;
const owner = itemSchema.shape.owner;

const operation = z.discriminatedUnion('op', [
  z.object({op: z.literal('add'), path: z.string(), value: z.unknown()}),
  z.object({op: z.literal('remove'), path: z.string()}),
  z.object({op: z.literal('replace'), path: z.string(), value: z.unknown()}),
  z.object({op: z.literal('test'), path: z.string(), value: z.unknown()}),
]);

/** The arguments of each mutator. */
export const argSchemas = {
  createItem: z.object({id, title, owner}).strict(),
  addRandomItem: z.object({title, owner}).strict(),
  toggleDone: z.object({id}).strict(),
  renameItem: z.object({id, title}).strict(),
  deleteItem: z.object({id}).strict(),
  patchItems: z.array(operation).max(100),
  clearDone: z.null(),
  stamp: z.unknown(),
  join: z.object({userID: z.string(), name: z.string().max(50)}).strict(),
  moveCursor: z.object({x: z.number(), y: z.number()}).strict(),
} satisfies Record<string, z.ZodTypeAny>;
