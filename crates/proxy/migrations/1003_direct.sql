-- Messages to named addresses through the same outbox (a share from the studio, the server's
-- own webhook): the body a webhook receives in place of the proxy's message, when the event
-- brings its own.
ALTER TABLE proxy_events ADD COLUMN body TEXT;
