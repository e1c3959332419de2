/**
 * The largest id the storage holds (ids are 32-bit integer columns). A larger number names nothing, and
 * Postgres would reject it as a parameter: schemas bound ids with it, and lookups answer "not found".
 */
export const MAX_ID = 2_147_483_647

export const isStorableId = (id: number) => Number.isSafeInteger(id) && id >= 0 && id <= MAX_ID
