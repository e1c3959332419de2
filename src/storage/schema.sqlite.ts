import { sql } from 'drizzle-orm'
import { check, index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core'

// Timestamps are milliseconds (timestamp_ms), never seconds: the contract promises millisecond precision.
const ts = (name: string) => integer(name, { mode: 'timestamp_ms' })

export const users = sqliteTable(
  'users',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    username: text('username').notNull(),
    usernameLower: text('username_lower').notNull(),
    passwordHash: text('password_hash').notNull(),
    createdAt: ts('created_at').notNull(),
    lastSeenAt: ts('last_seen_at'),
  },
  (t) => [uniqueIndex('users_username_lower_uq').on(t.usernameLower)],
)

/** One row per login: the refresh token is rotated inside it; revoking it ends the whole login. */
export const sessions = sqliteTable(
  'sessions',
  {
    id: text('id').primaryKey(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    tokenHash: text('token_hash').notNull(),
    createdAt: ts('created_at').notNull(),
    expiresAt: ts('expires_at').notNull(),
    revokedAt: ts('revoked_at'),
  },
  (t) => [index('sessions_user_idx').on(t.userId)],
)

export const dialogs = sqliteTable(
  'dialogs',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    // The unordered pair, stored ordered, so the unique index makes it one dialog per pair.
    userLow: integer('user_low')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    userHigh: integer('user_high')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: ts('created_at').notNull(),
    lastSeq: integer('last_seq').notNull().default(0),
    lastMessageId: integer('last_message_id'),
    // Not indexed: lists sort one user's dialogs (found through dialog_members), and every batch of
    // sends moves it, which an index would make a costlier (on Postgres, non-HOT) update.
    lastActivityAt: ts('last_activity_at').notNull(),
    // The dialog's change counter: every new message, edit, delete and reaction change takes the next one.
    version: integer('version').notNull().default(0),
  },
  (t) => [
    uniqueIndex('dialogs_pair_uq').on(t.userLow, t.userHigh),
    check('dialogs_pair_ordered', sql`${t.userLow} < ${t.userHigh}`),
  ],
)

export const dialogMembers = sqliteTable(
  'dialog_members',
  {
    dialogId: integer('dialog_id')
      .notNull()
      .references(() => dialogs.id, { onDelete: 'cascade' }),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    peerId: integer('peer_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    lastReadMessageId: integer('last_read_message_id').notNull().default(0),
    readAt: ts('read_at'),
    lastDeliveredMessageId: integer('last_delivered_message_id').notNull().default(0),
    deliveredAt: ts('delivered_at'),
  },
  (t) => [primaryKey({ columns: [t.dialogId, t.userId] }), index('dialog_members_user_idx').on(t.userId)],
)

export const messages = sqliteTable(
  'messages',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    dialogId: integer('dialog_id')
      .notNull()
      .references(() => dialogs.id, { onDelete: 'cascade' }),
    seq: integer('seq').notNull(),
    senderId: integer('sender_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    clientMsgId: text('client_msg_id').notNull(),
    type: text('type').notNull(),
    text: text('text').notNull(),
    // Not indexed: within a dialog it grows with seq (the writer sees to it), so history by time is a
    // binary search on (dialog, seq), and every send saves an index update.
    createdAt: ts('created_at').notNull(),
    // The dialog's version at this message's last change (its creation, an edit, a delete, a reaction).
    version: integer('version').notNull().default(0),
    editedAt: ts('edited_at'),
    // A deleted message keeps its row (id, seq) and loses its content: text '' and no reactions.
    deleted: integer('deleted', { mode: 'boolean' }).notNull().default(false),
    // An image/file message's upload, and its {id, name, content_type, size} as JSON: uploads never
    // change, so a message row carries what its Message shows and no query joins for it.
    attachmentId: integer('attachment_id'),
    attachment: text('attachment'),
  },
  (t) => [
    uniqueIndex('messages_dialog_seq_uq').on(t.dialogId, t.seq),
    uniqueIndex('messages_client_id_uq').on(t.dialogId, t.senderId, t.clientMsgId),
    // Catching up: a dialog's messages changed after a version, in version order.
    index('messages_dialog_version_idx').on(t.dialogId, t.version),
    // An upload is attached once (also the lookup of who may download it). Partial: a text message adds
    // no entry, so the send path writes one index fewer (measured: SQLite FULL e2e lost a quarter to it).
    uniqueIndex('messages_attachment_uq').on(t.attachmentId).where(sql`attachment_id is not null`),
  ],
)

/**
 * A browser's Web Push subscription, owned by the login session that made it: it ends with the session.
 * An endpoint names one browser profile, so it is unique: a second account subscribing it takes it over.
 */
export const pushSubscriptions = sqliteTable(
  'push_subscriptions',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    sessionId: text('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    endpoint: text('endpoint').notNull(),
    p256dh: text('p256dh').notNull(),
    auth: text('auth').notNull(),
    createdAt: ts('created_at').notNull(),
  },
  (t) => [
    uniqueIndex('push_subscriptions_endpoint_uq').on(t.endpoint),
    index('push_subscriptions_user_idx').on(t.userId),
    index('push_subscriptions_session_idx').on(t.sessionId),
  ],
)

/** One row per (message, emoji, user): a user's reaction with that emoji. */
export const messageReactions = sqliteTable(
  'message_reactions',
  {
    messageId: integer('message_id')
      .notNull()
      .references(() => messages.id, { onDelete: 'cascade' }),
    emoji: text('emoji').notNull(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: ts('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.messageId, t.emoji, t.userId] })],
)

/** Who blocks whom. While either of two users blocks the other, nothing new passes between them. */
export const blocks = sqliteTable(
  'blocks',
  {
    blockerId: integer('blocker_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    blockedId: integer('blocked_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: ts('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.blockerId, t.blockedId] }), index('blocks_blocked_idx').on(t.blockedId)],
)

/**
 * An uploaded file. On the local disk the bytes are stored once per sha256 (content-addressed), so
 * several uploads may share them. `dialog_id` + `client_msg_id` is the send that claimed it (set before the message commits,
 * so a retried send finds its own claim); the message that carries it has `attachment_id` = `id`.
 */
export const uploads = sqliteTable(
  'uploads',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    uploaderId: integer('uploader_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    contentType: text('content_type').notNull(),
    size: integer('size').notNull(),
    sha256: text('sha256').notNull(),
    /** Where the bytes are: the sha256 on the local disk (shared by equal files), an object key in S3. */
    storageKey: text('storage_key').notNull(),
    createdAt: ts('created_at').notNull(),
    dialogId: integer('dialog_id'),
    clientMsgId: text('client_msg_id'),
    /** When that send claimed it: a claim an hour old whose message never committed was a send that died. */
    claimedAt: ts('claimed_at'),
  },
  (t) => [index('uploads_storage_key_idx').on(t.storageKey), index('uploads_created_idx').on(t.createdAt)],
)

/**
 * Storage keys whose bytes are to go: written in the transaction that removes their last upload row, emptied
 * as each delete succeeds, so bytes a failed delete (the bucket or the disk refusing) left are deleted again at
 * the next sweep. Not deleted if an upload committed since uses the key again (a local blob is shared).
 */
export const blobDeletes = sqliteTable('blob_deletes', {
  storageKey: text('storage_key').primaryKey(),
})
