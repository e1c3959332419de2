import { t } from 'elysia'
import { Int } from '../shared/schema'

/** What POST /uploads answers; its own module so that the client library can take its type alone. */
export const UploadSchema = t.Object({
  id: Int(),
  name: t.String(),
  content_type: t.String(),
  size: Int(),
  sha256: t.String(),
  created_at: t.String({ format: 'date-time' }),
})
