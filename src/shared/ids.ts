import { Type } from '@sinclair/typebox'
import { t } from 'elysia'
import { invalidField } from '../errors'

/**
 * The largest id the storage holds (ids are 32-bit integer columns). A larger number names nothing, and
 * Postgres would reject it as a parameter: schemas bound ids with it, and lookups answer "not found".
 */
export const MAX_ID = 2_147_483_647

export const isStorableId = (id: number) => Number.isSafeInteger(id) && id >= 0 && id <= MAX_ID

/**
 * An id in a JSON body: a JSON integer, never a string (Elysia's own `t.Integer` also takes `"2"`), bounded
 * as the storage is.
 */
export const BodyId = () => Type.Integer({ minimum: 1, maximum: MAX_ID })

/**
 * An id in a path or query: canonical decimal digits only (no sign, leading zero, fraction, exponent, hex
 * or space: `01`, `+1`, `1.0`, `1e3`, `0x10` name nothing), from `minimum` to MAX_ID; `field` names it in the
 * error. Decoded to a number for the route.
 */
export const ParamId = (field: string, minimum = 1) =>
  t
    // `x-id` is no validation keyword: it tells the OpenAPI document to show an integer (src/docs/openapi.ts).
    .Transform(t.String({ 'x-id': { minimum, maximum: MAX_ID } }))
    .Decode((raw) => {
      if (!/^(0|[1-9][0-9]{0,9})$/.test(raw)) throw invalidField(field, 'expected an id in decimal digits')
      const id = Number(raw)
      if (id < minimum || id > MAX_ID) throw invalidField(field, `expected an id from ${minimum} to ${MAX_ID}`)
      return id
    })
    .Encode(String)
