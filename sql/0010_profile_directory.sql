-- Name and creation-date lookups move from `profiles` into `profile_directory`.
--
-- Every event resolved to a profile updates its aggregates (event_count, last_seen, ...), and
-- that update is never HOT: the list-sorting indexes on last_seen / total_spent / order_count
-- see the new values. A non-HOT update inserts the new row version into every index of the
-- table, so the name sort, creation-date sort and trigram (GIN) indexes paid for each event
-- although name and creation date had not changed: 15 of the 31 ms of a 1,000-profile
-- aggregate update, and the end-to-end ingest bench went from 4,500 to 5,400 events/s without
-- them (session 3). Here they index a narrow table that changes only when a name, a creation
-- date or merged_into does. It holds live profiles only; `profiles.name_norm` stays the source.
--
-- Kept in step by triggers, so every writer (streaming, merge, unmerge, erasure, bulk SQL
-- loads) stays correct without knowing about it: statement-level with transition tables for
-- INSERT and DELETE (one set-based statement per batch), and a row trigger for the rare updates
-- that change a directory column. No foreign key: its per-row check would cost what the move
-- saves; the DELETE trigger removes the entries of deleted profiles (brand deletion cascades
-- to profiles, which fires it).
CREATE TABLE profile_directory (
    brand_id    uuid NOT NULL,
    profile_id  uuid NOT NULL,
    name_norm   text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (brand_id, profile_id)
);

INSERT INTO profile_directory (brand_id, profile_id, name_norm, created_at)
SELECT brand_id, id, name_norm, created_at FROM profiles WHERE merged_into IS NULL;

CREATE INDEX profile_directory_by_name ON profile_directory (brand_id, name_norm, profile_id);
CREATE INDEX profile_directory_by_created ON profile_directory (brand_id, created_at, profile_id);
CREATE INDEX profile_directory_name_trgm ON profile_directory
    USING gin (brand_id, name_norm gin_trgm_ops);

DROP INDEX IF EXISTS profiles_live_by_name;
DROP INDEX IF EXISTS profiles_live_by_created;
DROP INDEX IF EXISTS profiles_name_trgm_live;

CREATE FUNCTION profile_directory_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO profile_directory (brand_id, profile_id, name_norm, created_at)
    SELECT brand_id, id, name_norm, created_at FROM inserted_profiles WHERE merged_into IS NULL;
    RETURN NULL;
END $$;

CREATE FUNCTION profile_directory_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM profile_directory d USING deleted_profiles o
    WHERE d.brand_id = o.brand_id AND d.profile_id = o.id;
    RETURN NULL;
END $$;

CREATE FUNCTION profile_directory_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.merged_into IS NULL THEN
        INSERT INTO profile_directory (brand_id, profile_id, name_norm, created_at)
        VALUES (NEW.brand_id, NEW.id, NEW.name_norm, NEW.created_at)
        ON CONFLICT (brand_id, profile_id) DO UPDATE
            SET name_norm = EXCLUDED.name_norm, created_at = EXCLUDED.created_at;
    ELSE
        DELETE FROM profile_directory WHERE brand_id = NEW.brand_id AND profile_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER profiles_directory_insert AFTER INSERT ON profiles
    REFERENCING NEW TABLE AS inserted_profiles
    FOR EACH STATEMENT EXECUTE FUNCTION profile_directory_inserted();

CREATE TRIGGER profiles_directory_delete AFTER DELETE ON profiles
    REFERENCING OLD TABLE AS deleted_profiles
    FOR EACH STATEMENT EXECUTE FUNCTION profile_directory_deleted();

-- The aggregate updates name none of these columns, so this trigger is not even considered
-- for them; the WHEN clause skips the merge/trait updates that leave all three unchanged.
CREATE TRIGGER profiles_directory_update AFTER UPDATE OF name_norm, created_at, merged_into
    ON profiles FOR EACH ROW
    WHEN (OLD.name_norm IS DISTINCT FROM NEW.name_norm
          OR OLD.created_at IS DISTINCT FROM NEW.created_at
          OR OLD.merged_into IS DISTINCT FROM NEW.merged_into)
    EXECUTE FUNCTION profile_directory_updated();
