-- The init segment each recorded segment was packaged under, named as stored beside it (in the
-- rendition's folder): 'init.mp4' for the stream's first configuration, 'init<msn>.mp4' for the
-- init segment that a codec configuration change started at segment <msn>. Rows recorded before
-- this column existed all used 'init.mp4'.
ALTER TABLE rendition_segments ADD COLUMN init_name TEXT NOT NULL DEFAULT 'init.mp4';
