DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT table_name, column_name FROM mapped_columns LOOP
        EXECUTE format('ALTER TABLE %I DROP COLUMN IF EXISTS %I', r.table_name, r.column_name);
    END LOOP;
END
$$;
DROP TABLE mapped_columns;
DROP FUNCTION hubspot_sync_to_text_array(text);
DROP FUNCTION hubspot_sync_to_date(text);
DROP FUNCTION hubspot_sync_to_timestamptz(text);
DROP FUNCTION hubspot_sync_to_boolean(text);
DROP FUNCTION hubspot_sync_to_bigint(text);
DROP FUNCTION hubspot_sync_to_numeric(text);
