/**
 * A Postgres URL as libpq and SQLAlchemy read it, for postgres.js. They reach a server on the same host
 * through its Unix socket with `postgresql://user@/db?host=/var/run/postgresql` (or with the directory
 * percent-encoded as the host), and take `host` and `port` from the query as well. postgres.js takes the
 * socket's file as an option instead, rejects an empty host, and would pass `host` and `port` in the
 * query on to the server as settings. Every other URL goes through unchanged.
 */
export interface PgConnection {
  url: string
  /** The socket file (`<dir>/.s.PGSQL.<port>`), when the URL names a directory as its host. */
  path?: string
}

/** Throws (a TypeError) on a URL that does not parse even with its host filled in. */
export function pgConnection(url: string): PgConnection {
  // `user@` followed by no host is valid for libpq but not for WHATWG URLs: fill in a placeholder.
  const filled = url.replace(/^(postgres(?:ql)?:\/\/[^/?#]*@)(?=[/?#]|$)/i, '$1localhost')
  const parsed = new URL(filled)
  const host = parsed.searchParams.get('host') ?? decodeURIComponent(parsed.hostname)
  const port = parsed.searchParams.get('port') ?? parsed.port
  if (!parsed.searchParams.has('host') && !parsed.searchParams.has('port') && !host.startsWith('/')) return { url: filled }
  parsed.searchParams.delete('host')
  parsed.searchParams.delete('port')
  if (!host.startsWith('/')) {
    parsed.hostname = host || 'localhost'
    parsed.port = port
    return { url: parsed.toString() }
  }
  // The URL's host only has to parse; postgres.js connects to the socket's path.
  parsed.hostname = 'localhost'
  parsed.port = ''
  return { url: parsed.toString(), path: `${host.replace(/\/+$/, '')}/.s.PGSQL.${port || '5432'}` }
}
