-- The video server recording a live video (its instance id): recovery at start-up finishes
-- only its own. Rows from before this column have '' (any video server may finish them).
ALTER TABLE videos ADD COLUMN instance_id TEXT NOT NULL DEFAULT '';
