-- Messages lose their foreign key to the sender, as they lost the one to the dialog in 0008: its check took a
-- row lock on the user per inserted row (measured: a sixth of Postgres's CPU per message). The writer only
-- inserts a message from one of the dialog's two users, under the dialog's row lock (batch.pg.ts), and the
-- dialog's own keys hold those users; deleting a user deletes their dialogs, and 0008's trigger the messages.
ALTER TABLE "messages" DROP CONSTRAINT "messages_sender_id_users_id_fk";
