import { notFound } from '../errors'
import { isStorableId } from '../shared/ids'
import type { Db } from '../storage/database'
import { dialogMembers } from './store'
import { Lru } from '../shared/lru'

const MAX_CACHED = 100_000

/**
 * Who is in which dialog. Members of a 1:1 dialog never change, so an entry once read stays true;
 * this saves the message hot path a database read per send.
 */
export class Membership {
  private readonly cache = new Lru<number, [number, number]>(MAX_CACHED)

  constructor(private readonly db: Db) {}

  /** The two members; not_found when the dialog does not exist or the user is not one of them. */
  require(dialogId: number, userId: number): [number, number] | Promise<[number, number]> {
    const members = this.cache.get(dialogId)
    if (!members && !isStorableId(dialogId)) throw notFound('dialog')
    // Answered from the cache without a promise: this is on every message send.
    if (members) return checked(members, userId)
    return this.load(dialogId).then((loaded) => checked(loaded, userId))
  }

  private async load(dialogId: number): Promise<[number, number] | undefined> {
    const members = await this.db.read((s) => dialogMembers(s, dialogId))
    if (members) this.remember(dialogId, members)
    return members
  }

  remember(dialogId: number, members: [number, number]): void {
    this.cache.set(dialogId, members)
  }
}

function checked(members: [number, number] | undefined, userId: number): [number, number] {
  if (!members || (members[0] !== userId && members[1] !== userId)) throw notFound('dialog')
  return members
}

export const peerOf = (members: [number, number], userId: number) => (members[0] === userId ? members[1] : members[0])
