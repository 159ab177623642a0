-- Where a waiting receipt came from (the destination of the original message) and when that
-- message was submitted (the receipt's "submit date", SMPP v3.4 Appendix B): lets a receipt
-- whose message id the outbox never learned (a dispatcher died between writing a submit_sm and
-- reading its response) still settle the `unconfirmed` row it belongs to.
ALTER TABLE proxy_receipts ADD COLUMN address TEXT;
ALTER TABLE proxy_receipts ADD COLUMN submitted_at BIGINT;
CREATE INDEX proxy_notifications_unconfirmed ON proxy_notifications(state, address);
