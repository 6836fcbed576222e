DROP TRIGGER associations_refuse_erased ON associations;
DROP FUNCTION refuse_erased_edge();
