import { MAX_CHARS } from '../shared/schema'

/**
 * A schema as the documents publish it: a string's `maxLength` in characters, as JSON Schema counts them,
 * where the validating schema bounds twice that in UTF-16 units (src/shared/schema.ts `chars`).
 */
export function published(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(published)
  if (node === null || typeof node !== 'object') return node
  const { [MAX_CHARS]: max, ...rest } = node as Record<string, unknown>
  const out = Object.fromEntries(Object.entries(rest).map(([key, value]) => [key, published(value)]))
  return max === undefined ? out : { ...out, maxLength: max }
}
