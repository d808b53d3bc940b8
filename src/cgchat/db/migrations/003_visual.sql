-- Visual search (CLIP): which assets still need a visual embedding, per-keyframe video vectors, HNSW indexes.

-- NULL: the asset has no picture to embed (documents, meshes...). pending: it has one and the installed
-- visual model has not embedded it yet (no model installed, or ingest ran with --no-visual).
-- embedded: done by the model named in the type row's visual_model (a different installed model makes it
-- stale: re-embedded, never compared). no_picture: a .blend saved without a preview thumbnail.
-- failed: the pixels could not be decoded (the reason is in metadata_json.visual_error).
ALTER TABLE files ADD COLUMN visual_status text
    CHECK (visual_status IN ('pending', 'embedded', 'no_picture', 'failed'));
CREATE INDEX files_visual_pending ON files (id) WHERE visual_status = 'pending';

UPDATE files f SET visual_status = CASE
    WHEN f.asset_type IN ('image', 'video') THEN 'pending'
    WHEN EXISTS (SELECT 1 FROM thumbnails t WHERE t.file_id = f.id) THEN 'pending'
    ELSE 'no_picture' END
WHERE f.asset_type IN ('image', 'video', 'blend');

-- Keyframes sampled evenly over a video's duration; videos.visual_embedding is their normalised mean.
CREATE TABLE video_keyframes (
    file_id          bigint           NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    frame_index      integer          NOT NULL,          -- 0, 1, ... in time order
    time_s           double precision NOT NULL,          -- seconds from the start of the clip
    visual_embedding vector(512)      NOT NULL,
    visual_model     text             NOT NULL,
    PRIMARY KEY (file_id, frame_index)
);

CREATE INDEX images_visual_hnsw ON images USING hnsw (visual_embedding vector_cosine_ops);
CREATE INDEX videos_visual_hnsw ON videos USING hnsw (visual_embedding vector_cosine_ops);
CREATE INDEX blend_files_visual_hnsw ON blend_files USING hnsw (visual_embedding vector_cosine_ops);
CREATE INDEX video_keyframes_visual_hnsw ON video_keyframes USING hnsw (visual_embedding vector_cosine_ops);
