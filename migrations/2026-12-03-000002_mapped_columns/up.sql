-- HUBSPOT_SYNC_CONFIG's typed columns: `hubspot-sync migrate` adds each mapping as a column
-- `GENERATED ALWAYS AS (hubspot_sync_to_<type>(properties ->> 'name')) STORED`, so the upsert path
-- is unchanged and a column can never drift from `properties`. The conversions below never fail:
-- a value that does not parse (wrong shape, out of range, an impossible date) gives NULL. They
-- are IMMUTABLE (generated columns require it): they read nothing but their argument, and parse
-- dates by hand instead of through the session's DateStyle and TimeZone. Every value is checked
-- before it is cast, so no exception block (a subtransaction per call) is needed; the SQL ones
-- are inlined into the generated column's expression.

-- A decimal number (optional sign, fraction and exponent), at most 1000 characters (so the cast
-- cannot overflow numeric's range); anything else, NaN and Infinity included, is NULL.
CREATE FUNCTION hubspot_sync_to_numeric(v text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN length(v) <= 1000 AND btrim(v) ~ '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,4})?$'
                THEN btrim(v)::numeric END
$$;

-- A whole number written plainly that fits in a bigint ("12" and "12.0"; "12.5" and "1e3" are NULL).
CREATE FUNCTION hubspot_sync_to_bigint(v text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN btrim(v) ~ '^[+-]?[0-9]{1,18}(\.0*)?$' THEN trunc(btrim(v)::numeric)::bigint
        WHEN btrim(v) ~ '^[+-]?[0-9]{19}(\.0*)?$'
             AND trunc(btrim(v)::numeric) BETWEEN -9223372036854775808 AND 9223372036854775807
            THEN trunc(btrim(v)::numeric)::bigint
    END
$$;

-- true/false (HubSpot's), also 1/0 and yes/no, any case.
CREATE FUNCTION hubspot_sync_to_boolean(v text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE lower(btrim(v))
        WHEN 'true' THEN true WHEN '1' THEN true WHEN 'yes' THEN true
        WHEN 'false' THEN false WHEN '0' THEN false WHEN 'no' THEN false
    END
$$;

-- HubSpot's datetime values: ISO 8601 (`2025-06-01T12:34:56.789Z`, an offset, or none: UTC) or
-- epoch milliseconds; years 1 to 9999 only. The shape is checked by one regular expression
-- without captures (PostgreSQL then matches it with a fast DFA), the parts cut by position.
CREATE FUNCTION hubspot_sync_to_timestamptz(v text) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    s text := btrim(v);
    rest text;
    zone text := '';
    sign_at int;
    t timestamp;
BEGIN
    IF s ~ '^-?[0-9]{1,15}$' THEN
        IF s::bigint NOT BETWEEN -62135596800000 AND 253402300799999 THEN
            RETURN NULL;
        END IF;
        -- Whole seconds and milliseconds apart, so no float rounding.
        RETURN to_timestamp(s::bigint / 1000) + make_interval(secs => (s::bigint % 1000) / 1000.0);
    END IF;
    IF s !~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?)?(Z|z|[+-]([01][0-9]|2[0-3]):?([0-5][0-9])?)?$'
       OR left(s, 4) = '0000'
       OR substr(s, 9, 2)::int
          > extract(day FROM make_date(left(s, 4)::int, substr(s, 6, 2)::int, 1) + interval '1 month - 1 day') THEN
        RETURN NULL;
    END IF;
    rest := substr(s, 11);
    IF right(rest, 1) IN ('Z', 'z') THEN
        rest := left(rest, -1);
    ELSE
        -- After the date, a sign can only start the offset.
        sign_at := greatest(strpos(rest, '+'), strpos(rest, '-'));
        IF sign_at > 0 THEN
            zone := replace(substr(rest, sign_at), ':', '');
            rest := left(rest, sign_at - 1);
        END IF;
    END IF;
    t := (left(s, 10) || ' ' || coalesce(nullif(substr(rest, 2), ''), '00:00'))::timestamp;
    IF zone <> '' THEN
        t := t - (CASE left(zone, 1) WHEN '-' THEN -1 ELSE 1 END)
                 * make_interval(hours => substr(zone, 2, 2)::int, mins => coalesce(nullif(substr(zone, 4, 2), ''), '0')::int);
    END IF;
    RETURN t AT TIME ZONE 'UTC';
END
$$;

-- HubSpot's date values: `2025-06-01`, midnight UTC in epoch milliseconds, or a datetime (its UTC
-- date).
CREATE FUNCTION hubspot_sync_to_date(v text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (hubspot_sync_to_timestamptz(v) AT TIME ZONE 'UTC')::date
$$;

-- A multi-select value (`a;b;c`), split on ';', each part trimmed of spaces, empty parts left
-- out; a value with no part is NULL.
CREATE FUNCTION hubspot_sync_to_text_array(v text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT nullif(array_remove(string_to_array(regexp_replace(btrim(v), ' *; *', ';', 'g'), ';'), ''), '{}'::text[])
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
