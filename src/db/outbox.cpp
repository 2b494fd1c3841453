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

void EventRecording::hand_to(DeliveryTaker take, Micros lease) {
  std::lock_guard lock(mutex_);
  take_ = std::move(take);
  lease_ = lease;
}

std::optional<Micros> EventRecording::claim_until(Micros now) const {
  std::lock_guard lock(mutex_);
  if (!take_) return std::nullopt;
  return now + lease_;
}

void EventRecording::hand_over(std::vector<WebhookDelivery> claimed) const {
  if (claimed.empty()) return;
  // Under the lock, so once hand_to(nullptr) returns no hand-over to the
  // deliverer before is under way (taking does not block).
  std::lock_guard lock(mutex_);
  if (take_) take_(std::move(claimed));
}

}  // namespace s3up::db
