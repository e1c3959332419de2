CREATE TABLE "message_reactions" (
	"message_id" integer NOT NULL,
	"emoji" text NOT NULL,
	"user_id" integer NOT NULL,
	"created_at" timestamp (3) with time zone NOT NULL,
	CONSTRAINT "message_reactions_message_id_emoji_user_id_pk" PRIMARY KEY("message_id","emoji","user_id")
);
--> statement-breakpoint
ALTER TABLE "dialogs" ADD COLUMN "version" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "version" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "edited_at" timestamp (3) with time zone;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "deleted" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "message_reactions" ADD CONSTRAINT "message_reactions_message_id_messages_id_fk" FOREIGN KEY ("message_id") REFERENCES "public"."messages"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "message_reactions" ADD CONSTRAINT "message_reactions_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "messages_dialog_version_idx" ON "messages" USING btree ("dialog_id","version");--> statement-breakpoint
-- Hand-written: existing messages' versions are their seqs (each was its dialog's last change when made).
UPDATE "messages" SET "version" = "seq";--> statement-breakpoint
UPDATE "dialogs" SET "version" = "last_seq";--> statement-breakpoint
-- Hand-written: full-text search over messages.text in the 'simple' configuration (no language favoured).
CREATE INDEX "messages_text_fts_idx" ON "messages" USING gin (to_tsvector('simple', "text"));
