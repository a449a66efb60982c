-- The whole-properties GIN (jsonb_path_ops) indexed every leaf of every event's properties
-- (urls, item names, prices...): ~10 entries per event, a fifth of the cost of storing an
-- event. The only queries it served look events up by the product ids of their items, so
-- index just those (1-3 entries per event). Queries use the same expression:
--   jsonb_path_query_array(properties, '$.items[*].product_id') @> jsonb_build_array($pid)
DROP INDEX IF EXISTS events_properties;
CREATE INDEX events_item_products ON events
    USING gin ((jsonb_path_query_array(properties, '$.items[*].product_id')) jsonb_path_ops);
