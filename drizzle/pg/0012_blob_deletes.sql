CREATE TABLE "blob_deletes" (
	"storage_key" text PRIMARY KEY NOT NULL
);
