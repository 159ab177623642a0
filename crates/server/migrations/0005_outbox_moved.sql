-- The server's webhook is a channel of the proxy's outbox now (proxy_events with a body of
-- their own, proxy_notifications); its old table goes. Deliveries still queued in it at the
-- upgrade are not carried over.
DROP INDEX webhook_due;
DROP TABLE webhook_outbox;
