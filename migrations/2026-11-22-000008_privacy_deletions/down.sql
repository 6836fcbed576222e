DROP TABLE privacy_deletions;
