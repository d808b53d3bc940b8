-- cgchat schema, version 1. Applied once, in one transaction, by cgchat.db.migrate.
CREATE EXTENSION IF NOT EXISTS vector;

-- Every asset, whatever its type. One row per path; a changed file is updated in place.
CREATE TABLE files (
    id                 bigserial PRIMARY KEY,
    path               text        NOT NULL UNIQUE,           -- absolute, as scanned
    name               text        NOT NULL,                  -- basename
    extension          text        NOT NULL DEFAULT '',       -- lower case, no dot
    size_bytes         bigint      NOT NULL CHECK (size_bytes >= 0),
    mtime_ns           bigint      NOT NULL,                  -- st_mtime_ns, for the cheap unchanged check
    sha256             char(64)    NOT NULL,
    mime_type          text,
    asset_type         text        NOT NULL
        CHECK (asset_type IN ('image', 'video', 'blend', 'model', 'document', 'other')),
    status             text        NOT NULL DEFAULT 'indexed' CHECK (status IN ('indexed', 'missing')),
    description        text        NOT NULL,                  -- what the text embedding was computed from
    metadata_json      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    metadata_embedding vector(384),
    embedding_model    text,                                  -- never compare vectors of two models
    search_tsv         tsvector    NOT NULL,                  -- weighted: name A, path B, metadata C
    name_trigrams      text[]      NOT NULL DEFAULT '{}',     -- pg_trgm-style trigrams of the name
    tokens             text[]      NOT NULL DEFAULT '{}',     -- exact name/path tokens: sh010, v003, dragon
    indexed_at         timestamptz NOT NULL DEFAULT now(),
    missing_since      timestamptz
);
CREATE INDEX files_embedding_hnsw ON files USING hnsw (metadata_embedding vector_cosine_ops);
CREATE INDEX files_search_tsv ON files USING gin (search_tsv);
CREATE INDEX files_name_trigrams ON files USING gin (name_trigrams);
CREATE INDEX files_tokens ON files USING gin (tokens);
CREATE INDEX files_asset_type ON files (asset_type);
CREATE INDEX files_extension ON files (extension);
CREATE INDEX files_sha256 ON files (sha256);

CREATE TABLE images (
    file_id          bigint PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
    width            integer,
    height           integer,
    mode             text,
    channels         integer,
    format           text,
    bit_depth        integer,
    visual_embedding vector(512),
    visual_model     text
);

CREATE TABLE videos (
    file_id          bigint PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
    duration_s       double precision,
    fps              double precision,
    codec            text,
    width            integer,
    height           integer,
    frame_count      bigint,
    visual_embedding vector(512),
    visual_model     text
);

CREATE TABLE blend_files (
    file_id               bigint PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
    render_engine         text,
    resolution_x          integer,
    resolution_y          integer,
    resolution_percentage integer,
    frame_start           integer,
    frame_end             integer,
    fps                   double precision,
    blender_version       text,
    compression           text,
    scene_names           text[],
    objects               jsonb,
    materials             text[],
    has_preview           boolean NOT NULL DEFAULT false,
    visual_embedding      vector(512),
    visual_model          text
);
CREATE INDEX blend_files_engine ON blend_files (render_engine);

-- glTF / GLB / OBJ / FBX / USD.
CREATE TABLE models_3d (
    file_id        bigint PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
    format         text,
    mesh_count     integer,
    face_count     bigint,
    vertex_count   bigint,
    material_count integer,
    node_count     integer,
    bounds         jsonb,
    fps            double precision,
    frame_start    integer,
    frame_end      integer
);

-- Embedded previews (a .blend's thumbnail), kept so the visual issue can embed them and the UI show them.
CREATE TABLE thumbnails (
    file_id   bigint PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
    source    text    NOT NULL,
    mime_type text    NOT NULL,
    width     integer,
    height    integer,
    data      bytea   NOT NULL
);

-- What an asset needs: "which .blend files use brick_albedo.png?" is one query on name.
CREATE TABLE dependencies (
    id            bigserial PRIMARY KEY,
    file_id       bigint  NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    kind          text    NOT NULL,
    raw_path      text    NOT NULL,
    resolved_path text,
    name          text    NOT NULL,     -- basename of raw_path
    exists        boolean NOT NULL
);
CREATE INDEX dependencies_file_id ON dependencies (file_id);
CREATE INDEX dependencies_name ON dependencies (lower(name));
CREATE INDEX dependencies_resolved_path ON dependencies (resolved_path);
