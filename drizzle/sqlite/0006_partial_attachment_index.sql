DROP INDEX `messages_attachment_uq`;--> statement-breakpoint
CREATE UNIQUE INDEX `messages_attachment_uq` ON `messages` (`attachment_id`) WHERE attachment_id is not null;