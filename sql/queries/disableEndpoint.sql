-- An endpoint answered 410 Gone: nothing more goes to it until enabled.
INSERT INTO webhook_endpoints (url, disabled_at, reason) VALUES ($1, $2, $3)
ON CONFLICT (url) DO NOTHING
