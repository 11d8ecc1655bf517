-- A SQLite database serves one node, whose in-process limiter (buzzgate-local) counts rate
-- limits without a disk write per request: the table is no longer used.
DROP TABLE IF EXISTS rate_limits;
