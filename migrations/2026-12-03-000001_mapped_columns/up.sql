-- HUBSPOT_SYNC_CONFIG's typed columns: `hubspot-sync migrate` adds each mapping as a column
-- `GENERATED ALWAYS AS (hubspot_sync_to_<type>(properties ->> 'name')) STORED`, so the upsert path
-- is unchanged and a column can never drift from `properties`. The conversions below never fail:
-- a value that does not parse (wrong shape, out of range, an impossible date) gives NULL. They
-- are IMMUTABLE (generated columns require it): they read nothing but their argument, and parse
-- dates by hand instead of through the session's DateStyle and TimeZone.

-- A decimal number (optional sign, fraction and exponent); anything else, NaN and Infinity
-- included, is NULL.
CREATE FUNCTION hubspot_sync_to_numeric(v text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    IF btrim(v) !~ '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,4})?$' THEN
        RETURN NULL;
    END IF;
    BEGIN
        RETURN btrim(v)::numeric;
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END;
END
$$;

-- A whole number that fits in a bigint ("12" and "12.0"; "12.5" is NULL).
CREATE FUNCTION hubspot_sync_to_bigint(v text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    n numeric := hubspot_sync_to_numeric(v);
BEGIN
    IF n IS NULL OR n <> trunc(n) OR n < -9223372036854775808 OR n > 9223372036854775807 THEN
        RETURN NULL;
    END IF;
    RETURN n::bigint;
END
$$;

-- true/false (HubSpot's), also 1/0 and yes/no, any case.
CREATE FUNCTION hubspot_sync_to_boolean(v text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE lower(btrim(v))
        WHEN 'true' THEN true WHEN '1' THEN true WHEN 'yes' THEN true
        WHEN 'false' THEN false WHEN '0' THEN false WHEN 'no' THEN false
    END
$$;

-- HubSpot's datetime values: ISO 8601 (`2025-06-01T12:34:56.789Z`, an offset, or none: UTC) or
-- epoch milliseconds; years 1 to 9999 only.
CREATE FUNCTION hubspot_sync_to_timestamptz(v text) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    s text := btrim(v);
    m text[];
    t timestamp;
BEGIN
    IF s ~ '^-?[0-9]{1,15}$' THEN
        -- Years 1 to 9999 only; whole seconds and milliseconds apart, so no float rounding.
        IF s::bigint NOT BETWEEN -62135596800000 AND 253402300799999 THEN
            RETURN NULL;
        END IF;
        RETURN to_timestamp(s::bigint / 1000) + make_interval(secs => (s::bigint % 1000) / 1000.0);
    END IF;
    m := regexp_match(s, '^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2}(?:\.[0-9]{1,9})?))?)?(Z|z|([+-])([0-9]{2}):?([0-9]{2})?)?$');
    IF m IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        t := make_timestamp(m[1]::int, m[2]::int, m[3]::int, coalesce(m[4], '0')::int, coalesce(m[5], '0')::int,
                            coalesce(m[6], '0')::float8);
        IF m[8] IS NOT NULL THEN
            t := t - (CASE m[8] WHEN '-' THEN -1 ELSE 1 END)
                     * make_interval(hours => m[9]::int, mins => coalesce(m[10], '0')::int);
        END IF;
        RETURN t AT TIME ZONE 'UTC';
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END;
END
$$;

-- HubSpot's date values: `2025-06-01`, midnight UTC in epoch milliseconds, or a datetime (its UTC
-- date).
CREATE FUNCTION hubspot_sync_to_date(v text) RETURNS date
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    s text := btrim(v);
BEGIN
    IF s ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
        BEGIN
            RETURN make_date(left(s, 4)::int, substr(s, 6, 2)::int, substr(s, 9, 2)::int);
        EXCEPTION WHEN others THEN
            RETURN NULL;
        END;
    END IF;
    RETURN (hubspot_sync_to_timestamptz(s) AT TIME ZONE 'UTC')::date;
END
$$;

-- A multi-select value (`a;b;c`), split on ';', each part trimmed, empty parts left out; a value
-- with no part is NULL.
CREATE FUNCTION hubspot_sync_to_text_array(v text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT nullif(ARRAY(SELECT btrim(x) FROM unnest(string_to_array(v, ';')) WITH ORDINALITY AS u(x, n)
                         WHERE btrim(x) <> '' ORDER BY n), '{}'::text[])
$$;

-- The mappings `migrate` applied, so a changed or removed mapping is migrated (its column dropped
-- and added again, its index created or dropped) and `serve` refuses a file that differs.
CREATE TABLE mapped_columns (
    table_name text NOT NULL CHECK (table_name IN ('contacts', 'deals', 'calls')),
    column_name text NOT NULL,
    property text NOT NULL,
    column_type text NOT NULL,
    indexed boolean NOT NULL DEFAULT false,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, column_name)
);
COMMENT ON TABLE mapped_columns IS
    'Typed columns generated from properties by HUBSPOT_SYNC_CONFIG, as hubspot-sync migrate applied them.';
