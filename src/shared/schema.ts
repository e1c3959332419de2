import { Type } from '@sinclair/typebox'

/**
 * An integer in a response (or a frame the server sends): TypeBox's own, not Elysia's `t.Integer`, which is
 * a transform that also takes `"2"` — made for coercing query strings. A transform anywhere in a response
 * schema makes Elysia encode every answer through TypeBox's interpreted `Encode` (for 20 dialogs ~0.5 ms,
 * two thirds of `GET /dialogs`) instead of its compiled `Check`; and an answer is never a string to coerce.
 */
export const Int = () => Type.Integer()

/**
 * Options for a response schema whose answers Elysia sends without checking them against it at run time
 * (Elysia's `noValidate`); the schema still types the handler and documents the route. For the hot read
 * routes (a dialog list, a page of history), whose answers are built field by field from typed records:
 * checking 20 dialogs cost ~60 µs a request, a fifth of `GET /dialogs`, to catch what the compiler and the
 * tests (which check every answer against the schema) already do.
 */
export const UNCHECKED = { noValidate: true } as const

/**
 * Options for a string of at most `max` characters (code points): the schema bounds its UTF-16 length at
 * twice that (a character is one or two units) and the route counts the characters. The API documents
 * publish `max` as the `maxLength` (JSON Schema counts characters): see src/docs/limits.ts.
 */
export const chars = (max: number) => ({ maxLength: max * 2, [MAX_CHARS]: max })

/** The keyword `chars` leaves for the documents. */
export const MAX_CHARS = 'x-max-chars'
