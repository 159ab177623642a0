-- Segments of every rendition of a video: '' is the source as received, other names are
-- transcoded rungs of the ladder (240p, 480p, …).
CREATE TABLE rendition_segments (
    video_id TEXT NOT NULL REFERENCES videos(id),
    rendition TEXT NOT NULL,
    msn BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    size BIGINT NOT NULL,
    PRIMARY KEY (video_id, rendition, msn)
);
INSERT INTO rendition_segments (video_id, rendition, msn, duration_us, size)
    SELECT video_id, '', msn, duration_us, size FROM segments;
DROP TABLE segments;
