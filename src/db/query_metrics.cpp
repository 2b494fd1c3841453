#include "db/query_metrics.hpp"

#include <string>

#include "metrics/metrics.hpp"

namespace s3up::db {

QueryTimer::~QueryTimer() {
  static auto& durations = metrics::registry().histogram(
      "s3uploader_db_query_duration_seconds",
      "Time a query of the metadata database took, by its name in sql/queries/ (\"batch\": writes grouped "
      "into one transaction).",
      {"query"});
  durations.with({std::string(query_)})
      .observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
}

}  // namespace s3up::db
