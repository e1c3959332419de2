/**
 * The peer address of each request, recorded by the server before the app sees it. Elysia is driven
 * through `fetch` (so tests can call it without a socket); this keeps the address reachable by routes.
 */
const addresses = new WeakMap<Request, string>()

export const recordAddress = (request: Request, address: string | undefined) => {
  if (address) addresses.set(request, address)
}

/** In-process requests have no socket and share one bucket. */
export const addressOf = (request: Request) => addresses.get(request) ?? 'local'
