-- Secrets every instance on this database shares, made by the first one to
-- need them: the key that signs download links (so a link made by one
-- instance is accepted by all).
CREATE TABLE service_secrets (
  name   text PRIMARY KEY,
  value  text NOT NULL
);
