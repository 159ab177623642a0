-- A stream can start private: a stream key's default, or an upload token's own choice (1).
ALTER TABLE stream_keys ADD COLUMN private_default INTEGER NOT NULL DEFAULT 0;
ALTER TABLE upload_tokens ADD COLUMN private INTEGER NOT NULL DEFAULT 0;
