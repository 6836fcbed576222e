DROP TABLE deals;
DROP TYPE deal_status;
