/** A stored hash behind this prefix belongs to a disabled user (the `user disable` command): it never matches. */
export const DISABLED_PREFIX = '!'

/** argon2id through Bun.password, with a dummy hash so an unknown user costs the same time as a wrong password. */
export class Passwords {
  private dummy: Promise<string> | undefined

  constructor(
    private readonly memoryCost: number,
    private readonly timeCost: number,
  ) {}

  hash(password: string): Promise<string> {
    return Bun.password.hash(password, { algorithm: 'argon2id', memoryCost: this.memoryCost, timeCost: this.timeCost })
  }

  /**
   * Verifies against the stored hash, or against a dummy one when there is no user or the user is
   * disabled, and then answers false: the same time either way. A password that is not well-formed
   * Unicode matches nothing (a lone surrogate is hashed as U+FFFD, so it would match that character).
   */
  async verify(password: string, hash: string | undefined): Promise<boolean> {
    if (hash !== undefined && !hash.startsWith(DISABLED_PREFIX) && password.isWellFormed()) return Bun.password.verify(password, hash)
    this.dummy ??= this.hash(crypto.randomUUID())
    await Bun.password.verify(password.toWellFormed(), await this.dummy)
    return false
  }

  /**
   * Whether a hash that verified was made with other settings than these (ARGON2_MEMORY_KIB /
   * ARGON2_TIME_COST changed since): it is then made again at login, so hashes follow the settings, and a
   * wrong password costs what the dummy hash of an unknown user costs.
   */
  outdated(hash: string): boolean {
    const params = /^\$argon2id\$v=\d+\$m=(\d+),t=(\d+),/.exec(hash)
    return !params || Number(params[1]) !== this.memoryCost || Number(params[2]) !== this.timeCost
  }
}
