#include "db/file_listing.hpp"

#include <fmt/format.h>

namespace s3up::db {

namespace {

void replace(std::string& text, std::string_view marker, std::string_view with) {
  const auto at = text.find(marker);
  if (at == std::string::npos) throw std::logic_error(fmt::format("listFiles.sql lacks {}", marker));
  text.replace(at, marker.size(), with);
}

}  // namespace

FileListingQuery file_listing_query(const FileListing& listing, std::string_view dialect) {
  // Both sides of every comparison go through the same expression, so the
  // position compares exactly as the rows were ordered. Names compare by
  // their bytes once lowered, whatever the database's locale: the same
  // order on both databases, and one an index holds (0011_file_order).
  const bool postgres = dialect == "postgres";
  std::string_view key = "created_at";
  std::string_view after_key = "${}";
  std::string_view order_name = "created";
  if (listing.order == FileListing::Order::name) {
    key = postgres ? "(lower(file_name) COLLATE \"C\")" : "lower(file_name)";
    after_key = postgres ? "(lower(${}) COLLATE \"C\")" : "lower(${})";
    order_name = "name";
  } else if (listing.order == FileListing::Order::size) {
    key = "file_size";
    order_name = "size";
  }
  std::string conditions;
  int n = 0;
  if (listing.user_id) conditions += fmt::format(" AND user_id = ${}", ++n);
  if (!listing.name_contains.empty()) conditions += fmt::format(" AND lower(file_name) LIKE lower(${}) ESCAPE '\\'", ++n);
  if (listing.after) {
    const int key_param = ++n;
    const int id_param = ++n;
    conditions += fmt::format(" AND ({}, id) {} ({}, ${})", key, listing.descending ? "<" : ">",
                              fmt::format(fmt::runtime(after_key), key_param), id_param);
  }
  FileListingQuery q;
  q.sql = std::string(query_for("listFiles", dialect));
  replace(q.sql, "{conditions}", conditions);
  replace(q.sql, "{key}", key);
  const std::string_view direction = listing.descending ? "DESC" : "ASC";
  replace(q.sql, "{direction}", direction);
  replace(q.sql, "{direction}", direction);
  replace(q.sql, "{limit}", fmt::format("${}", ++n));
  q.name = fmt::format("listFiles:{}:{}{}{}{}", order_name, listing.descending ? "desc" : "asc",
                       listing.user_id ? ":user" : "", listing.name_contains.empty() ? "" : ":search",
                       listing.after ? ":after" : "");
  return q;
}

std::string file_listing_pattern(std::string_view text) {
  std::string pattern = "%";
  for (const char c : text) {
    if (c == '%' || c == '_' || c == '\\') pattern += '\\';
    pattern += c;
  }
  pattern += '%';
  return pattern;
}

}  // namespace s3up::db
