-- Keeps the first value offered for a secret; later offers change nothing.
INSERT INTO service_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING
