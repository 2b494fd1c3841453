#include "db/metadata_store.hpp"

#include <filesystem>

#include <map>
#include <stdexcept>

#include "db/postgres/postgres_store.hpp"
#include "db/sql_files.hpp"
#include "db/sqlite/sqlite_store.hpp"

namespace s3up::db {

std::optional<std::filesystem::path> missing_sqlite_file(std::string_view url) {
  constexpr std::string_view sqlite_scheme = "sqlite://";
  if (!url.starts_with(sqlite_scheme)) return std::nullopt;
  const auto path = std::filesystem::absolute(std::string(url.substr(sqlite_scheme.size()))).lexically_normal();
  if (std::filesystem::exists(path)) return std::nullopt;
  return path;
}

std::unique_ptr<MetadataStore> open_metadata_store(std::string_view url, unsigned pool_size,
                                                   std::chrono::milliseconds timeout) {
  constexpr std::string_view sqlite_scheme = "sqlite://";
  if (url.starts_with(sqlite_scheme)) {
    std::string path(url.substr(sqlite_scheme.size()));
    if (path.empty()) throw std::invalid_argument("sqlite URL has no path: " + std::string(url));
    return open_sqlite_store(path, pool_size);
  }
  // libpq reads both URL spellings and its keyword strings ("host=... dbname=...").
  if (url.starts_with("postgres://") || url.starts_with("postgresql://") ||
      (url.find('=') != std::string_view::npos && url.find("://") == std::string_view::npos)) {
    return open_postgres_store(std::string(url), pool_size, timeout);
  }
  throw std::invalid_argument(
      "unsupported database URL (expected sqlite://PATH, postgres://USER@HOST/DB or a libpq keyword string): " +
      std::string(url));
}

std::vector<Migration> migrations_for(std::string_view dialect) {
  // file name "NNNN_name.sql" or "NNNN_name.<dialect>.sql"
  std::map<int, Migration> steps;
  std::map<int, bool> dialect_specific;
  for (const auto& f : sql_files()) {
    if (!f.path.starts_with("schema/")) continue;
    std::string_view file = f.path.substr(7);
    const auto us = file.find('_');
    if (us != 4) continue;
    const int version = std::stoi(std::string(file.substr(0, 4)));
    std::string_view rest = file.substr(5);
    rest.remove_suffix(4);  // ".sql"
    std::string_view name = rest;
    bool specific = false;
    if (const auto dot = rest.find('.'); dot != std::string_view::npos) {
      if (rest.substr(dot + 1) != dialect) continue;  // another dialect's file
      name = rest.substr(0, dot);
      specific = true;
    }
    if (steps.contains(version) && dialect_specific[version] && !specific) continue;
    steps[version] = Migration{version, std::string(name), f.text};
    dialect_specific[version] = specific;
  }
  std::vector<Migration> out;
  for (auto& [v, m] : steps) out.push_back(m);
  return out;
}

std::string_view query_for(std::string_view name, std::string_view dialect) {
  const std::string base = "queries/" + std::string(name);
  for (const auto& f : sql_files()) {
    if (f.path == base + "." + std::string(dialect) + ".sql") return f.text;
  }
  return sql_file(base + ".sql");
}

}  // namespace s3up::db
