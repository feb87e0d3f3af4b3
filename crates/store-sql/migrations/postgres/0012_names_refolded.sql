-- `name_folded` now drops invisible characters and unifies compatibility forms (NFKC) before
-- lowercasing; no SQL can compute that, so the store recomputes it for every name that is not
-- plain ASCII in the transaction that applies this migration (queries.rs, `refold_names`).
SELECT 1;
