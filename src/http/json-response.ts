/**
 * An answer's JSON text as Elysia would send it (the same content type), for the hot read routes whose
 * answers are not checked at run time (src/shared/schema.ts UNCHECKED): a Response is sent as it is, so
 * Elysia's normalising copy of the value (exact-mirror) is skipped too — for 30 messages that copy cost
 * more than the rest of the request. The route's schema still documents and types it.
 */
export const jsonResponse = (text: string) => new Response(text, { headers: { 'content-type': 'application/json;charset=utf-8' } })
