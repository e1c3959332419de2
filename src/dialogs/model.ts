import { t } from 'elysia'
import { Int, UNCHECKED } from '../shared/schema'
import { MessageSchema } from '../messages/model'
import { BodyId, ParamId } from '../shared/ids'

export const DialogSchema = t.Object({
  id: Int(),
  peer: t.Object({
    id: Int(),
    username: t.String(),
    online: t.Boolean(),
    last_seen_at: t.Union([t.String(), t.Null()]),
  }),
  created_at: t.String(),
  last_message: t.Union([MessageSchema, t.Null()]),
  unread_count: Int(),
  last_read_message_id: Int(),
  peer_last_read_message_id: Int(),
  peer_last_delivered_message_id: Int(),
  /** The dialog's change counter: its latest message change (see GET …/messages?changed_after=). */
  version: Int(),
})
export type DialogDto = typeof DialogSchema.static

export const DialogList = t.Object({ dialogs: t.Array(DialogSchema) }, UNCHECKED)

export const DialogListQuery = t.Object({
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 100 })),
  before: t.Optional(t.String({ maxLength: 64 })),
  /** With `before` only: the last dialog of the previous page, so that dialogs tied on `before` are not skipped. */
  before_id: t.Optional(ParamId('before_id')),
})

export const CreateDialogBody = t.Object({ peer_user_id: BodyId() })

export const DialogParams = t.Object({ dialog_id: ParamId('dialog_id') })
