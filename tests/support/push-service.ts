import { createECDH, randomBytes, type ECDH } from 'node:crypto'
import type { Server } from 'bun'
// @ts-expect-error http_ece ships no types
import ece from 'http_ece'

/** What the local push service received: one request to one endpoint. */
export interface Received {
  name: string
  headers: Headers
  body: Buffer
  at: number
}

/** How an endpoint answers its next requests: a status (with Retry-After), or never. */
export type Answer = { status: number; retryAfter?: string } | 'hang'

/**
 * A Web Push service on loopback, as the browser vendors run (RFC 8030): each endpoint is `/push/<name>`;
 * it answers 201 unless told otherwise for that endpoint, and keeps what it received.
 */
export class LocalPushService {
  readonly received: Received[] = []
  /** Requests that arrived at a hanging endpoint. */
  hung = 0
  private readonly plans = new Map<string, Answer[]>()
  private readonly hanging = new Set<string>()
  private readonly server: Server<undefined>
  private waiters: (() => void)[] = []

  constructor() {
    this.server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: async (request) => {
        const name = new URL(request.url).pathname.replace(/^\/push\//, '')
        if (this.hanging.has(name)) {
          this.hung++
          return new Promise<Response>(() => {})
        }
        this.received.push({ name, headers: request.headers, body: Buffer.from(await request.arrayBuffer()), at: Date.now() })
        for (const wake of this.waiters.splice(0)) wake()
        const answer = this.plans.get(name)?.shift() ?? { status: 201 }
        if (answer === 'hang') return new Promise<Response>(() => {})
        return new Response(null, { status: answer.status, headers: answer.retryAfter ? { 'retry-after': answer.retryAfter } : {} })
      },
    })
  }

  get origin(): string {
    return `http://127.0.0.1:${this.server.port}`
  }

  /** The next requests to `name` get these answers, in order (then 201). */
  plan(name: string, ...answers: Answer[]): void {
    this.plans.set(name, answers)
  }

  /** Every request to `name` hangs: no answer, ever. */
  hang(name: string): void {
    this.hanging.add(name)
  }

  of(name: string): Received[] {
    return this.received.filter((r) => r.name === name)
  }

  /** Waits until `name` has received `count` requests; rejects after `ms`. */
  async waitFor(name: string, count = 1, ms = 5_000): Promise<Received[]> {
    const deadline = Date.now() + ms
    while (this.of(name).length < count) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`${name}: ${this.of(name).length} of ${count} pushes within ${ms} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    return this.of(name)
  }

  stop(): void {
    this.server.stop(true)
  }
}

/** A browser's side of a subscription: its keys, as `PushSubscription.toJSON()`, and decryption as it does. */
export class Browser {
  private readonly ecdh: ECDH = createECDH('prime256v1')
  private readonly authSecret = randomBytes(16)
  readonly name: string

  constructor(readonly service: LocalPushService, prefix = 'b') {
    this.ecdh.generateKeys()
    this.name = `${prefix}-${randomBytes(6).toString('hex')}`
  }

  get endpoint(): string {
    return `${this.service.origin}/push/${this.name}`
  }

  subscription() {
    return {
      endpoint: this.endpoint,
      expirationTime: null,
      keys: { p256dh: this.ecdh.getPublicKey('base64url'), auth: this.authSecret.toString('base64url') },
    }
  }

  /** Decrypts an aes128gcm push body (RFC 8291) with this subscription's private key and auth secret. */
  decrypt(body: Buffer): any {
    const plain: Buffer = ece.decrypt(body, { version: 'aes128gcm', privateKey: this.ecdh, authSecret: this.authSecret })
    return JSON.parse(plain.toString('utf8'))
  }
}

/** Checks a VAPID Authorization header (RFC 8292) as a push service does; returns the JWT's claims. */
export async function verifyVapid(header: string | null): Promise<{ k: string; claims: Record<string, any>; verified: boolean }> {
  const match = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(header ?? '')
  if (!match) throw new Error(`not a VAPID Authorization header: ${header}`)
  const [, token, k] = match as unknown as [string, string, string]
  const [head, claims, signature] = token.split('.') as [string, string, string]
  const key = await crypto.subtle.importKey('raw', Buffer.from(k, 'base64url'), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify'])
  const verified = await crypto.subtle.verify(
    { name: 'ECDSA', hash: 'SHA-256' },
    key,
    Buffer.from(signature, 'base64url'),
    new TextEncoder().encode(`${head}.${claims}`),
  )
  expectHeader(JSON.parse(Buffer.from(head, 'base64url').toString()))
  return { k, claims: JSON.parse(Buffer.from(claims, 'base64url').toString()), verified }
}

function expectHeader(header: { alg?: string }): void {
  if (header.alg !== 'ES256') throw new Error(`VAPID JWT alg ${header.alg}, expected ES256`)
}
