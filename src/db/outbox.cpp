#include "db/outbox.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

namespace s3up::db {

void EventRecording::set(const std::vector<std::string>& endpoints, const std::vector<std::string>& types) {
  std::map<std::string, std::string, std::less<>> by_type;
  if (!endpoints.empty()) {
    boost::json::array list;
    for (const auto& url : endpoints) list.emplace_back(url);
    const std::string json = boost::json::serialize(list);
    for (const auto& type : types) by_type[type] = json;
  }
  std::lock_guard lock(mutex_);
  endpoints_by_type_ = std::move(by_type);
}

std::optional<std::string> EventRecording::endpoints_for(std::string_view type) const {
  std::lock_guard lock(mutex_);
  const auto it = endpoints_by_type_.find(type);
  if (it == endpoints_by_type_.end()) return std::nullopt;
  return it->second;
}

}  // namespace s3up::db
