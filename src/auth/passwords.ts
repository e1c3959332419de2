/** A stored hash behind this prefix belongs to a disabled user (the `user disable` command): it never matches. */
export const DISABLED_PREFIX = '!'

/** argon2id through Bun.password, with a dummy hash so an unknown user costs the same time as a wrong password. */
export class Passwords {
  private dummy: Promise<string> | undefined

  constructor(
    private readonly memoryCost: number,
    private readonly timeCost: number,
  ) {}

  /** Hashes the password composed (NFC): the same typed text is one password whatever the device's input sends. */
  hash(password: string): Promise<string> {
    return Bun.password.hash(password.normalize('NFC'), { algorithm: 'argon2id', memoryCost: this.memoryCost, timeCost: this.timeCost })
  }

  /**
   * Verifies against the stored hash, or against a dummy one when there is no user or the user is
   * disabled, and then answers false: the same time either way. A password that is not well-formed
   * Unicode matches nothing (a lone surrogate is hashed as U+FFFD, so it would match that character).
   * Text typed decomposed is tried composed, then as typed (a hash made before passwords were composed;
   * login then rehashes it): two verifications whether or not the user exists, so the time tells nothing.
   */
  async verify(password: string, hash: string | undefined): Promise<boolean> {
    const usable = hash !== undefined && !hash.startsWith(DISABLED_PREFIX) && password.isWellFormed()
    this.dummy ??= this.hash(crypto.randomUUID())
    const against = usable ? hash : await this.dummy
    const typed = password.toWellFormed()
    const composed = typed.normalize('NFC')
    const matched = (await Bun.password.verify(composed, against)) || (composed !== typed && (await Bun.password.verify(typed, against)))
    return usable && matched
  }

  /**
   * Whether a hash that `password` verified against should be made again at login: made with other
   * settings than these (ARGON2_MEMORY_KIB / ARGON2_TIME_COST changed since), so hashes follow the
   * settings and a wrong password costs what the dummy hash of an unknown user costs; or perhaps of the
   * password as typed decomposed, before passwords were composed.
   */
  outdated(hash: string, password: string): boolean {
    const params = /^\$argon2id\$v=\d+\$m=(\d+),t=(\d+),/.exec(hash)
    return !params || Number(params[1]) !== this.memoryCost || Number(params[2]) !== this.timeCost || password !== password.normalize('NFC')
  }
}
