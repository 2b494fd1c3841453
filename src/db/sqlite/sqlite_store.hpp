#pragma once
// The embedded default metadata store: SQLite in WAL mode.
#include <memory>
#include <string>

#include "db/metadata_store.hpp"

namespace s3up::db {

// Opens (creating if needed, with its parent directory) the SQLite database
// file at `path` with `pool_size` connections.
std::unique_ptr<MetadataStore> open_sqlite_store(const std::string& path, unsigned pool_size);

}  // namespace s3up::db
