import { t } from 'elysia'

/** What POST /uploads answers; its own module so that the client library can take its type alone. */
export const UploadSchema = t.Object({
  id: t.Integer(),
  name: t.String(),
  content_type: t.String(),
  size: t.Integer(),
  sha256: t.String(),
  created_at: t.String({ format: 'date-time' }),
})
