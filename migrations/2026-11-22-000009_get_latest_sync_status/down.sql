DROP FUNCTION get_latest_sync_status();
