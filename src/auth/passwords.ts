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
   * disabled, and then answers false: the same time either way.
   */
  async verify(password: string, hash: string | undefined): Promise<boolean> {
    if (hash !== undefined && !hash.startsWith(DISABLED_PREFIX)) return Bun.password.verify(password, hash)
    this.dummy ??= this.hash(crypto.randomUUID())
    await Bun.password.verify(password, await this.dummy)
    return false
  }
}
