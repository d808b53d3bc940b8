-- BM25 keyword search. ts_rank has no inverse document frequency (a word in every file counts as much as
-- a rare one), so keyword search keeps its own term statistics: one posting per (term, asset) with a
-- field-weighted term frequency, each term's document frequency, and the collection's size and length.
-- The write path (cgchat.ingest.store) keeps them in step with files.search_tsv, from which they are
-- derived: same English stemming and stop words, same name (A) / path (B) / metadata (C) / body (D) fields.

-- An asset's terms with their field-weighted frequency: a word in the name counts 3, in the path 2, in the
-- metadata or body 1 (BM25F with one length normalisation over the weighted length). The only place the
-- field weights live: the write path and the backfill below both call it.
CREATE FUNCTION keyword_terms_of(doc tsvector) RETURNS TABLE (term text, tf real)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT u.lexeme, sum(CASE w WHEN 'A' THEN 3 WHEN 'B' THEN 2 ELSE 1 END)::real
    FROM unnest(doc) u CROSS JOIN LATERAL unnest(u.weights) w
    GROUP BY u.lexeme
$$;

-- BM25's term-frequency part: saturates with tf (k1) and is normalised by the asset's length (b).
CREATE FUNCTION keyword_bm25_tf(tf real, dl real, avgdl double precision, k1 real, b real)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / greatest(avgdl, 1e-9)))
$$;

-- The collection: one row. Writers lock it first (SELECT ... FOR UPDATE), which serialises their short
-- keyword updates and so rules out deadlocks on keyword_terms rows.
CREATE TABLE keyword_stats (
    id           boolean          PRIMARY KEY DEFAULT true CHECK (id),
    n_docs       bigint           NOT NULL DEFAULT 0 CHECK (n_docs >= 0),   -- assets with at least one term
    total_length double precision NOT NULL DEFAULT 0,                       -- sum of their weighted lengths
    k1           real             NOT NULL DEFAULT 0.9,                     -- BM25 parameters (Pyserini's
    b            real             NOT NULL DEFAULT 0.4                      -- BEIR defaults)
);

-- Document frequency per term. A term whose last asset went keeps its row with df 0 (unknown to search).
CREATE TABLE keyword_terms (
    term text    PRIMARY KEY,
    df   integer NOT NULL CHECK (df >= 0)
);

-- One row per (asset, term). ``impact`` is the BM25 tf part at the average length of the moment it was
-- written: it only orders a term's postings, so a query can read the best N of a huge list through the
-- index; the score itself is recomputed from tf and dl with the current statistics.
CREATE TABLE keyword_postings (
    file_id bigint NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    term    text   NOT NULL,
    tf      real   NOT NULL,   -- field-weighted term frequency
    dl      real   NOT NULL,   -- the asset's field-weighted length (sum of its tf)
    impact  real   NOT NULL,
    PRIMARY KEY (file_id, term)
);
CREATE INDEX keyword_postings_term_impact ON keyword_postings (term, impact DESC) INCLUDE (file_id, tf, dl);

-- Backfill from the assets already indexed (set-based; impacts at the final average length).
INSERT INTO keyword_stats (id, n_docs, total_length)
SELECT true, count(*), coalesce(sum(dl), 0)
FROM (SELECT f.id, sum(k.tf) AS dl FROM files f CROSS JOIN LATERAL keyword_terms_of(f.search_tsv) k GROUP BY f.id) d;

INSERT INTO keyword_postings (file_id, term, tf, dl, impact)
SELECT t.file_id, t.term, t.tf, t.dl, keyword_bm25_tf(t.tf, t.dl, s.total_length / greatest(s.n_docs, 1), s.k1, s.b)
FROM (SELECT f.id AS file_id, k.term, k.tf, sum(k.tf) OVER (PARTITION BY f.id) AS dl
      FROM files f CROSS JOIN LATERAL keyword_terms_of(f.search_tsv) k) t
CROSS JOIN keyword_stats s;

INSERT INTO keyword_terms (term, df) SELECT term, count(*) FROM keyword_postings GROUP BY term;
