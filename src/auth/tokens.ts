import { jwt } from '@elysiajs/jwt'
import { Lru } from '../shared/lru'

export type TokenKind = 'access' | 'refresh'

export interface TokenClaims {
  userId: number
  sessionId: string
  kind: TokenKind
}

/** HS256 tokens through @elysiajs/jwt; a `typ` claim keeps a refresh token from passing as an access token. */
const MAX_CACHED = 10_000

export class Tokens {
  private readonly signer
  /** Tokens already verified, until they expire: a signature check is the same answer every time. */
  private readonly verified = new Lru<string, { claims: TokenClaims; expiresAtMs: number }>(MAX_CACHED)

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
      // Rounded up: a token lives at least its TTL (JWT times are whole seconds).
      exp: Math.ceil(Date.now() / 1000) + ttl,
    })
  }

  /** The claims of a valid, unexpired token of that kind; undefined for anything else. */
  async verify(token: string, kind: TokenKind): Promise<TokenClaims | undefined> {
    const cached = this.verified.get(token)
    if (cached) {
      if (Date.now() < cached.expiresAtMs) return cached.claims.kind === kind ? cached.claims : undefined
      this.verified.delete(token)
    }
    if (!isCanonical(token)) return undefined
    const payload = await this.signer.verify(token, { algorithms: ['HS256'] })
    if (!payload || typeof payload.sid !== 'string' || typeof payload.sub !== 'string' || typeof payload.exp !== 'number')
      return undefined
    if (payload.typ !== 'access' && payload.typ !== 'refresh') return undefined
    const userId = Number(payload.sub)
    if (!Number.isSafeInteger(userId) || userId <= 0) return undefined
    const claims: TokenClaims = { userId, sessionId: payload.sid, kind: payload.typ }
    this.verified.set(token, { claims, expiresAtMs: payload.exp * 1000 })
    return claims.kind === kind ? claims : undefined
  }
}

/**
 * Three base64url parts, each spelled the one way its bytes encode: no padding, no stray unused bits in the
 * last character. The verifier decodes leniently, so `token=` would pass as `token` (and a padded refresh
 * token, being another string, would count as reuse and revoke its own session).
 */
function isCanonical(token: string): boolean {
  const parts = token.split('.')
  return parts.length === 3 && parts.every((part) => /^[A-Za-z0-9_-]+$/.test(part) && Buffer.from(part, 'base64url').toString('base64url') === part)
}
