-- The user a JWT names, made on its first request; a name already taken
-- (by this issuer's user, made by another request meanwhile, or by anyone
-- else's) is left as it is: the caller reads the row and decides.
INSERT INTO users (name, issuer, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING
