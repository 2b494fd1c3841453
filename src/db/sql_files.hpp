#pragma once
// The files under sql/, compiled into the binary (see cmake/EmbedSql.cmake).
#include <string_view>
#include <vector>

namespace s3up::db {

struct SqlFile {
  std::string_view path;  // relative to sql/, e.g. "schema/0001_init.sqlite.sql"
  std::string_view text;
};

const std::vector<SqlFile>& sql_files();

// The text of sql/<path>; throws std::out_of_range if there is no such file.
std::string_view sql_file(std::string_view path);

}  // namespace s3up::db
