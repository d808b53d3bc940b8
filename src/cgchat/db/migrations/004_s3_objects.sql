-- The last S3 event applied to each object key. S3 delivers notifications at least once and in no
-- particular order; comparing each event's `sequencer` with the one stored here makes the ingestion
-- worker idempotent (a redelivered event changes nothing) and order-proof (an old "created" that
-- arrives after a "removed" cannot resurrect the asset). The row outlives its asset on purpose.
CREATE TABLE s3_objects (
    bucket     text        NOT NULL,
    key        text        NOT NULL,
    state      text        NOT NULL CHECK (state IN ('present', 'deleted')),
    sequencer  text,                   -- S3's per-key event order (hex); NULL when only seen in a listing
    etag       text,
    version_id text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket, key)
);
