import { afterAll, beforeAll } from 'bun:test'
import { ChatClient, type ClientEvent } from 'bun-chat/client'
import { uniqueName } from './app'
import { freshDatabase, type FreshDatabase } from './databases'
import { freePort } from './ports'
import { startServer, type ServerProcess } from './server-process'

/** For the client library's tests: a real server process, and signed-up clients recording their events. */

export const PASSWORD = 'correct horse battery'

export async function until(what: string, condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(10)
  }
}

/** A server process that can be killed and started again at the same address, on the same database. */
export class Server {
  proc!: ServerProcess
  readonly port = freePort()
  constructor(
    readonly db: FreshDatabase,
    readonly env: Record<string, string> = {},
  ) {}
  get url() {
    return `http://127.0.0.1:${this.port}`
  }
  async start() {
    this.proc = await startServer(this.db.target, { PORT: String(this.port), ...this.env })
    return this
  }
  async kill() {
    this.proc.proc.kill('SIGKILL')
    await this.proc.exited
  }
}

/**
 * A server process (on a fresh sqlite database, `env` added to its environment) for the tests of a describe
 * block. Read `suite.server` inside the tests (it exists once beforeAll has run).
 */
export function suiteServer(env?: Record<string, string>): { server: Server } {
  const suite = {} as { server: Server }
  beforeAll(async () => {
    suite.server = await new Server(await freshDatabase('sqlite'), env).start()
  }, 30_000)
  afterAll(async () => {
    await suite.server.kill()
    await suite.server.db.drop()
  }, 30_000)
  return suite
}

/** A new user's client (options as ChatClient's), every event it reports recorded; live unless `connect: false`. */
export async function signedUp(
  server: Server,
  options: Omit<ConstructorParameters<typeof ChatClient>[0], 'baseUrl'> & { connect?: boolean } = {},
) {
  const { connect, ...clientOptions } = options
  const client = new ChatClient({ baseUrl: server.url, ...clientOptions })
  const events: ClientEvent[] = []
  const stream = client.events()
  void (async () => {
    for await (const event of stream) events.push(event)
  })()
  const name = uniqueName('u')
  await client.register(name, PASSWORD)
  if (connect !== false) {
    client.connect()
    await until(`${name} live`, () => client.state === 'live')
  }
  const texts = (dialogId?: number) =>
    events.flatMap((e) => (e.type === 'message' && (dialogId === undefined || e.message.dialog_id === dialogId) ? [e.message.text] : []))
  return { client, name, events, texts }
}
