#pragma once
// The query behind FileCatalog::list_files, shared by both databases: one
// template (sql/queries/listFiles.sql) shaped by what a listing asks for.
#include <string>

#include "db/metadata_store.hpp"

namespace s3up::db {

struct FileListingQuery {
  // Names the query's shape, so each shape is prepared once per connection.
  std::string name;
  // With $1.. placeholders, bound in this order, each only where the listing
  // has it: user_id; the name pattern (file_listing_pattern); the after
  // row's key (created_at, file_name or file_size) and its id; the limit.
  std::string sql;
};

FileListingQuery file_listing_query(const FileListing& listing, std::string_view dialect);

// The LIKE pattern for names containing `text` (its %, _ and \ escaped).
std::string file_listing_pattern(std::string_view text);

}  // namespace s3up::db
