-- S3 objects read with range requests (long videos: the index and the keyframes, not the whole file)
-- have no SHA-256 of their bytes unless S3 stored a full-object checksum at upload. NULL says
-- "not known"; it never matches another file's hash.
ALTER TABLE files ALTER COLUMN sha256 DROP NOT NULL;
COMMENT ON COLUMN files.sha256 IS
    'SHA-256 of the bytes; NULL for an S3 object read in ranges without a full-object checksum from S3';
