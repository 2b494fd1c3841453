#pragma once
// The production metadata store: PostgreSQL through libpq.
//
// Like every MetadataStore it is synchronous: the server calls it from the
// blocking thread pool (util::run_blocking), never from an I/O thread. We
// chose that over libpq's non-blocking API driven by Asio because the pool
// already bounds how many queries run at once (one connection per blocking
// thread at most), the CLI and tests use the same code without an event loop,
// and a query's thread hop costs microseconds against its round trip.
//
// Connections are opened on demand up to `pool_size`, each with its prepared
// statements. A connection the server closed (restart, failover, idle
// timeout) is noticed before it is used and replaced; one that breaks during
// a query fails that call with database_unavailable (503) and is dropped, so
// the next call connects afresh: no restart of the service.
#include <memory>
#include <string>

#include "db/metadata_store.hpp"

namespace s3up::db {

// Connects to PostgreSQL: `conninfo` is a postgres:// or postgresql:// URL or
// a libpq keyword string ("host=... dbname=..."); what it leaves out comes
// from the PG* environment (PGHOST, PGUSER, PGPASSWORD, PGSSLMODE, ...) as
// libpq does. Connects once to fail early with a clear message; at most
// `pool_size` connections. A query (or a connection attempt) that gets no
// answer within `timeout` fails as database_unavailable.
std::unique_ptr<MetadataStore> open_postgres_store(const std::string& conninfo, unsigned pool_size,
                                                   std::chrono::milliseconds timeout);

}  // namespace s3up::db
