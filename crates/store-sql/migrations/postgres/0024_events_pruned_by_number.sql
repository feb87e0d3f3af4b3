-- The retention prunes each workspace's events from its oldest up to the first still inside it
-- (they are numbered in the order they were written), so nothing needs the events' times in an
-- index: one index fewer to keep up on every change.
DROP INDEX events_by_time;
