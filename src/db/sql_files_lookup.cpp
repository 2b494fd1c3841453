#include <stdexcept>
#include <string>

#include "db/sql_files.hpp"

namespace s3up::db {

std::string_view sql_file(std::string_view path) {
  for (const auto& f : sql_files()) {
    if (f.path == path) return f.text;
  }
  throw std::out_of_range("no embedded SQL file " + std::string(path));
}

}  // namespace s3up::db
