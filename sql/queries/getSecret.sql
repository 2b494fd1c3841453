SELECT value FROM service_secrets WHERE name = $1
