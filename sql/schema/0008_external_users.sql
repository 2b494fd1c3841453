-- Users who sign in with a JWT from the app's identity provider: the issuer
-- (the token's iss, '' when it names none) that vouches for them. NULL: a
-- user of API tokens. A JWT names its user by a claim; the row with that
-- name is the user only if the same issuer made it, so no token from a
-- provider can become a user created here by hand.
ALTER TABLE users ADD COLUMN issuer TEXT;
