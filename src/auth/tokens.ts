import { jwt } from '@elysiajs/jwt'

export type TokenKind = 'access' | 'refresh'

export interface TokenClaims {
  userId: number
  sessionId: string
  kind: TokenKind
}

/** HS256 tokens through @elysiajs/jwt; a `typ` claim keeps a refresh token from passing as an access token. */
export class Tokens {
  private readonly signer

  constructor(
    secret: string,
    readonly accessTtlSeconds: number,
    readonly refreshTtlSeconds: number,
  ) {
    this.signer = jwt({ name: 'jwt', secret, alg: 'HS256' }).decorator.jwt
  }

  sign(claims: TokenClaims): Promise<string> {
    const ttl = claims.kind === 'access' ? this.accessTtlSeconds : this.refreshTtlSeconds
    return this.signer.sign({
      sub: String(claims.userId),
      sid: claims.sessionId,
      typ: claims.kind,
      // Unique per token, so two refreshes in the same second never produce the same string.
      jti: crypto.randomUUID(),
      exp: Math.floor(Date.now() / 1000) + ttl,
    })
  }

  /** The claims of a valid, unexpired token of that kind; undefined for anything else. */
  async verify(token: string, kind: TokenKind): Promise<TokenClaims | undefined> {
    const payload = await this.signer.verify(token, { algorithms: ['HS256'] })
    if (!payload || payload.typ !== kind || typeof payload.sid !== 'string' || typeof payload.sub !== 'string')
      return undefined
    const userId = Number(payload.sub)
    if (!Number.isSafeInteger(userId) || userId <= 0) return undefined
    return { userId, sessionId: payload.sid, kind }
  }
}
