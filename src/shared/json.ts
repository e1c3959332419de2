/**
 * JSON.parse with every `__proto__` key dropped (an ordinary key, ignored like any unknown one). JSON.parse
 * makes it an own property, but copying such an object (a spread, Object.assign, the framework's body
 * handling) sets the copy's prototype, whose fields then read as the body's own:
 * `{"__proto__": {"peer_user_id": 2}}` passed as `{"peer_user_id": 2}`. The reviver, which is slower, runs
 * only when the text could spell that key: literally, or with a `\u` escape (no other escape makes a letter).
 */
export function parseJson(text: string): unknown {
  return text.includes('__proto__') || text.includes('\\u') ? JSON.parse(text, dropProto) : JSON.parse(text)
}

const dropProto = (key: string, value: unknown) => (key === '__proto__' ? undefined : value)
