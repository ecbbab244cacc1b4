-- The ping and bid logs are written on every auction (a bid row per buyer asked). Their
-- second indexes led with the seller and the buyer, so one auction over 100 buyers wrote
-- into 100 leaf pages of the bid index far apart from each other, and every commit wrote
-- each of those pages out whole again (load-tests/RESULTS.md). Nothing reads by those
-- prefixes: the auction statistics read both logs by time range, through `bid_created`
-- and `ping_created`, which append at one end.
drop index if exists bid_buyer_created;
drop index if exists ping_seller_created;
