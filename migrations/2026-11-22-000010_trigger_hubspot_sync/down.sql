DROP FUNCTION trigger_hubspot_sync(text);
