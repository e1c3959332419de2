/** The contract's bounds, in characters: a message's text (or caption), a client_msg_id. */
export const MAX_TEXT_CHARS = 4000
export const MAX_CLIENT_MSG_ID_CHARS = 64

/**
 * Characters (Unicode code points) in `value`, as the contract counts lengths; JavaScript's `length` counts
 * UTF-16 units, two for an emoji. Counting stops past `stopAfter`, so a caller checking a bound reads no
 * further than it needs.
 */
export function charCount(value: string, stopAfter = Infinity): number {
  let chars = 0
  for (const _ of value) if (++chars > stopAfter) break
  return chars
}

/** Whether a message's text (or caption) is longer than the contract allows. */
export const textTooLong = (text: string): boolean => charCount(text, MAX_TEXT_CHARS) > MAX_TEXT_CHARS
