#pragma once
// What the stores tell the metrics about their queries (internal to db/).
#include <chrono>
#include <string_view>

namespace s3up::db {

// Observes, when it goes, the time since it was made into
// s3uploader_db_query_duration_seconds{query=<name>}: a named query from
// sql/queries/, "batch" for a group of writes in one transaction.
class QueryTimer {
 public:
  explicit QueryTimer(std::string_view query) : query_(query), started_(std::chrono::steady_clock::now()) {}
  ~QueryTimer();
  QueryTimer(const QueryTimer&) = delete;
  QueryTimer& operator=(const QueryTimer&) = delete;

 private:
  std::string_view query_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace s3up::db
