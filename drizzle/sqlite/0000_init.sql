CREATE TABLE `dialog_members` (
	`dialog_id` integer NOT NULL,
	`user_id` integer NOT NULL,
	`peer_id` integer NOT NULL,
	`last_read_message_id` integer DEFAULT 0 NOT NULL,
	`read_at` integer,
	`last_delivered_message_id` integer DEFAULT 0 NOT NULL,
	`delivered_at` integer,
	PRIMARY KEY(`dialog_id`, `user_id`),
	FOREIGN KEY (`dialog_id`) REFERENCES `dialogs`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`peer_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `dialog_members_user_idx` ON `dialog_members` (`user_id`);--> statement-breakpoint
CREATE TABLE `dialogs` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`user_low` integer NOT NULL,
	`user_high` integer NOT NULL,
	`created_at` integer NOT NULL,
	`last_seq` integer DEFAULT 0 NOT NULL,
	`last_message_id` integer,
	`last_activity_at` integer NOT NULL,
	FOREIGN KEY (`user_low`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`user_high`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "dialogs_pair_ordered" CHECK("dialogs"."user_low" < "dialogs"."user_high")
);
--> statement-breakpoint
CREATE UNIQUE INDEX `dialogs_pair_uq` ON `dialogs` (`user_low`,`user_high`);--> statement-breakpoint
CREATE INDEX `dialogs_activity_idx` ON `dialogs` (`last_activity_at`);--> statement-breakpoint
CREATE TABLE `messages` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`dialog_id` integer NOT NULL,
	`seq` integer NOT NULL,
	`sender_id` integer NOT NULL,
	`client_msg_id` text NOT NULL,
	`type` text NOT NULL,
	`text` text NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`dialog_id`) REFERENCES `dialogs`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`sender_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `messages_dialog_seq_uq` ON `messages` (`dialog_id`,`seq`);--> statement-breakpoint
CREATE UNIQUE INDEX `messages_client_id_uq` ON `messages` (`dialog_id`,`sender_id`,`client_msg_id`);--> statement-breakpoint
CREATE INDEX `messages_dialog_created_idx` ON `messages` (`dialog_id`,`created_at`);--> statement-breakpoint
CREATE TABLE `sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`user_id` integer NOT NULL,
	`token_hash` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`revoked_at` integer,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `sessions_user_idx` ON `sessions` (`user_id`);--> statement-breakpoint
CREATE TABLE `users` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`username` text NOT NULL,
	`username_lower` text NOT NULL,
	`password_hash` text NOT NULL,
	`created_at` integer NOT NULL,
	`last_seen_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `users_username_lower_uq` ON `users` (`username_lower`);