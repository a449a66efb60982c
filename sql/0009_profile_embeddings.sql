-- Profile embeddings move out of `profiles` into their own table.
--
-- Every aggregate update of a profile (each event resolved to it) is a non-HOT update (the list
-- sort indexes see last_seen / total_spent / order_count change), and a non-HOT update inserts
-- the new row version into every index of the table, the HNSW index included: once a profile
-- had an embedding, each of its updates re-ran an HNSW graph insertion. Measured: 2,000 such
-- updates took 1,135 ms with embeddings against 7 ms without, so ingestion slowed ~100-fold
-- per profile right after the first `cbrain train`. Embeddings change only when ML writes them.
CREATE TABLE profile_embeddings (
    brand_id    uuid NOT NULL,
    profile_id  uuid NOT NULL,
    embedding   vector(32) NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, profile_id),
    FOREIGN KEY (brand_id, profile_id) REFERENCES profiles (brand_id, id) ON DELETE CASCADE
);
INSERT INTO profile_embeddings (brand_id, profile_id, embedding)
SELECT brand_id, id, embedding FROM profiles WHERE embedding IS NOT NULL;
DROP INDEX IF EXISTS profiles_embedding;
ALTER TABLE profiles DROP COLUMN embedding;
-- Shared by all brands like the one it replaces; queries filter by brand with iterative scans.
CREATE INDEX profile_embeddings_hnsw ON profile_embeddings USING hnsw (embedding vector_cosine_ops);
