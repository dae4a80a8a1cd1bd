-- The rows' file is now requests.file_key (0040); the 64-character file_id per row goes.
ALTER TABLE requests DROP COLUMN file_id;
