import { AppError, unauthorized } from '../errors'
import type { RealtimePort } from '../realtime/port'
import type { Db } from '../storage/database'
import { toUserDto, type UserRecord } from '../users/model'
import { insertUser, replacePasswordHash, userById, userWithHash } from '../users/store'
import { checkPassword, type Principal, type TokenPairDto } from './model'
import type { Passwords } from './passwords'
import type { SessionCache } from './session-cache'
import { insertSession, revokeSession, rotateSession, sessionById } from './store'
import type { Tokens } from './tokens'

const sha256 = (value: string) => new Bun.CryptoHasher('sha256').update(value).digest('hex')

export class AuthService {
  constructor(
    private readonly db: Db,
    private readonly tokens: Tokens,
    private readonly passwords: Passwords,
    private readonly realtime: Pick<RealtimePort, 'sessionEnded'>,
    private readonly sessions: SessionCache,
  ) {}

  async register(username: string, password: string): Promise<TokenPairDto> {
    checkPassword(password)
    const passwordHash = await this.passwords.hash(password)
    const user = await this.db.tx((s) => insertUser(s, { username, passwordHash, createdAt: new Date() }))
    if (!user) throw new AppError('username_taken', 'username is taken', { field: 'username' })
    return this.startSession(user)
  }

  async login(username: string, password: string): Promise<TokenPairDto> {
    const found = await this.db.read((s) => userWithHash(s, username))
    const refused = () => new AppError('invalid_credentials', 'unknown username or wrong password')
    if (!(await this.passwords.verify(password, found?.passwordHash)) || !found) throw refused()
    const { sessionId, refresh } = await this.openSession(found.id)
    // The password was checked against the hash read before: a `user disable` or password reset that
    // committed meanwhile ended the sessions there were, not this one. Read after the session is in, the
    // hash tells: changed, and the session goes; changed later, and that change's revocation finds it.
    // A hash that changed for the same password (another login's rehash, below) is no reason to refuse:
    // the password is checked against the new one.
    const now = await this.db.read((s) => userWithHash(s, username))
    let hash = found.passwordHash
    if (now?.passwordHash !== hash) {
      if (!now || !(await this.passwords.verify(password, now.passwordHash))) {
        await this.db.tx((s) => revokeSession(s, sessionId, new Date()))
        throw refused()
      }
      hash = now.passwordHash
    }
    if (this.passwords.outdated(hash, password)) {
      const rehashed = await this.passwords.hash(password)
      await this.db.tx((s) => replacePasswordHash(s, found.id, hash, rehashed))
    }
    return this.pair(found, sessionId, refresh)
  }

  /** Rotates the refresh token; a token already rotated away revokes its whole session (theft detection). */
  async refresh(refreshToken: string): Promise<TokenPairDto> {
    const claims = await this.tokens.verify(refreshToken, 'refresh')
    if (!claims) throw unauthorized('invalid refresh token')
    const session = await this.db.read((s) => sessionById(s, claims.sessionId))
    const now = new Date()
    if (!session || session.revokedAt || session.expiresAt <= now || session.userId !== claims.userId)
      throw unauthorized('session ended')
    const presented = sha256(refreshToken)
    const user = await this.db.read((s) => userById(s, claims.userId))
    if (!user) throw unauthorized('session ended')
    const next = await this.tokens.sign({ userId: user.id, sessionId: session.id, kind: 'refresh' })
    const expiresAt = new Date(now.getTime() + this.tokens.refreshTtlSeconds * 1000)
    const rotated =
      session.tokenHash === presented &&
      (await this.db.tx((s) => rotateSession(s, session.id, presented, sha256(next), expiresAt)))
    if (!rotated) await this.reused(session.id)
    return this.pair(user, session.id, next)
  }

  /** Ends the session; its refresh token already used (at logout too) ends it as well, and answers 401. */
  async logout(refreshToken: string): Promise<void> {
    const claims = await this.tokens.verify(refreshToken, 'refresh')
    if (!claims) throw unauthorized('invalid refresh token')
    const session = await this.db.read((s) => sessionById(s, claims.sessionId))
    if (!session || session.revokedAt || session.userId !== claims.userId) throw unauthorized('session ended')
    if (session.tokenHash !== sha256(refreshToken)) await this.reused(session.id)
    await this.end(session.id)
  }

  /** A refresh token presented again after its rotation: someone else may hold the session, so it ends. */
  private async reused(sessionId: string): Promise<never> {
    await this.end(sessionId)
    throw unauthorized('refresh token reused; session revoked')
  }

  private async end(sessionId: string): Promise<void> {
    await this.db.tx((s) => revokeSession(s, sessionId, new Date()))
    this.sessions.forget(sessionId)
    await this.realtime.sessionEnded(sessionId)
  }

  /**
   * Checks an access token: signature, kind, expiry, and that its session has not been revoked — from
   * memory when the session is known live (SessionCache says when that can be trusted), else read.
   */
  async authenticate(accessToken: string | undefined): Promise<Principal> {
    if (!accessToken) throw unauthorized('missing access token')
    const claims = await this.tokens.verify(accessToken, 'access')
    if (!claims) throw unauthorized()
    const principal = { userId: claims.userId, sessionId: claims.sessionId }
    if (this.sessions.has(claims.sessionId, claims.userId)) return principal
    const since = this.sessions.begin()
    const session = await this.db.read((s) => sessionById(s, claims.sessionId))
    if (!session || session.revokedAt || session.userId !== claims.userId) throw unauthorized('session ended')
    this.sessions.remember(claims.sessionId, claims.userId, since)
    return principal
  }

  private async startSession(user: UserRecord): Promise<TokenPairDto> {
    const { sessionId, refresh } = await this.openSession(user.id)
    return this.pair(user, sessionId, refresh)
  }

  private async openSession(userId: number): Promise<{ sessionId: string; refresh: string }> {
    const sessionId = crypto.randomUUID()
    const refresh = await this.tokens.sign({ userId, sessionId, kind: 'refresh' })
    const now = new Date()
    await this.db.tx((s) =>
      insertSession(s, {
        id: sessionId,
        userId,
        tokenHash: sha256(refresh),
        createdAt: now,
        expiresAt: new Date(now.getTime() + this.tokens.refreshTtlSeconds * 1000),
      }),
    )
    return { sessionId, refresh }
  }

  private async pair(user: UserRecord, sessionId: string, refreshToken: string): Promise<TokenPairDto> {
    return {
      user: toUserDto(user),
      access_token: await this.tokens.sign({ userId: user.id, sessionId, kind: 'access' }),
      refresh_token: refreshToken,
      token_type: 'Bearer',
      expires_in: this.tokens.accessTtlSeconds,
    }
  }
}
