import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
// s3rver: an S3-compatible server in Node, from npm (see README: why this one).
import S3rver from 's3rver'

export interface LocalS3 {
  /** Environment for a server using it: S3_BUCKET, S3_ENDPOINT, keys, region. */
  env: Record<string, string>
  /** Keys of the objects in the bucket. */
  keys(): Promise<string[]>
  close(): Promise<void>
}

/** A local S3-compatible server with one empty bucket, on a free port, its data in a temporary folder. */
export async function startS3(bucket = 'chat-uploads'): Promise<LocalS3> {
  const directory = mkdtempSync(join(tmpdir(), 'chat-s3-'))
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: [{ name: bucket, configs: [] }] })
  const { port } = (await server.run()) as { port: number }
  const env = {
    S3_BUCKET: bucket,
    S3_ENDPOINT: `http://127.0.0.1:${port}`,
    // s3rver's fixed credentials.
    S3_ACCESS_KEY_ID: 'S3RVER',
    S3_SECRET_ACCESS_KEY: 'S3RVER',
    S3_REGION: 'us-east-1',
  }
  const client = new Bun.S3Client({
    bucket,
    endpoint: env.S3_ENDPOINT,
    accessKeyId: env.S3_ACCESS_KEY_ID,
    secretAccessKey: env.S3_SECRET_ACCESS_KEY,
    region: env.S3_REGION,
  })
  return {
    env,
    keys: async () => ((await client.list()).contents ?? []).map((o) => o.key),
    close: async () => {
      // Bun's S3 client keeps connections alive; the server would wait for them.
      server.httpServer?.closeAllConnections()
      await server.close()
      rmSync(directory, { recursive: true, force: true })
    },
  }
}
