#include "storage/object_store.hpp"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include "storage/local/local_store.hpp"
#include "storage/s3/s3_store.hpp"
#include "util/blocking.hpp"

namespace s3up::storage {

boost::asio::awaitable<ResumePoint> ObjectWriter::checkpoint() {
  throw Error(Failure::internal, "a single-shot writer keeps no checkpoints");
  co_return ResumePoint{};
}

boost::asio::awaitable<std::string> ObjectWriter::head(std::size_t) {
  throw Error(Failure::internal, "a single-shot writer keeps no checkpoints");
  co_return std::string();
}

boost::asio::awaitable<std::string> read_range(ObjectStore& store, const std::string& key, std::uint64_t offset,
                                               std::uint64_t length) {
  auto reader = co_await store.open_reader(key, offset, length);
  std::string out;
  for (;;) {
    const auto piece = co_await reader->read_some();
    if (piece.empty()) break;
    out.append(piece.data(), piece.size());
  }
  co_return out;
}

std::unique_ptr<ObjectStore> open_object_store(const StoreSettings& settings, boost::asio::any_io_executor executor,
                                               boost::asio::thread_pool& blocking) {
  const std::string_view url = settings.url;
  if (!settings.buffers || !settings.download_buffers) {
    throw std::invalid_argument("StoreSettings::buffers and download_buffers are required");
  }
  auto buffers = settings.buffers;
  constexpr std::string_view file_scheme = "file://";
  constexpr std::string_view s3_scheme = "s3://";
  if (url.starts_with(file_scheme)) {
    std::string path(url.substr(file_scheme.size()));
    if (path.empty()) throw std::invalid_argument("file URL has no path: " + std::string(url));
    return std::make_unique<LocalStore>(path, blocking, std::move(buffers), settings.download_buffers);
  }
  if (url.starts_with(s3_scheme)) {
    const std::string rest(url.substr(s3_scheme.size()));
    const auto slash = rest.find('/');
    s3::S3StoreOptions options;
    options.client.bucket = rest.substr(0, slash);
    if (options.client.bucket.empty()) throw std::invalid_argument("s3 URL has no bucket: " + std::string(url));
    options.prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
    options.client.endpoint = settings.s3_endpoint;
    options.client.region = settings.s3_region;
    options.client.force_path_style = settings.s3_force_path_style;
    options.client.ca_file = settings.s3_ca_file;
    options.client.timeout = settings.s3_timeout;
    const auto checksum = s3::choose_part_checksum(settings.s3_part_checksum, settings.s3_endpoint);
    if (!checksum) throw std::invalid_argument("unknown S3 part checksum: " + settings.s3_part_checksum);
    options.part_checksum = *checksum;
    options.part_size = settings.part_size;
    options.parts_in_flight = std::max(1, settings.parts_in_flight);
    const auto getenv = settings.getenv ? settings.getenv : [](const char* n) -> const char* { return std::getenv(n); };
    auto credentials = s3::default_credentials_chain(getenv);
    return std::make_unique<s3::S3Store>(std::move(executor), std::move(options), std::move(credentials),
                                         std::move(buffers), settings.download_buffers);
  }
  throw std::invalid_argument("unsupported storage URL (expected file://PATH or s3://BUCKET/PREFIX): " +
                              std::string(url));
}

bool is_valid_key(std::string_view key) {
  if (key.empty() || key.front() == '/' || key.size() > 1024) return false;
  std::size_t start = 0;
  while (start <= key.size()) {
    auto end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    const auto seg = key.substr(start, end - start);
    if (seg.empty() || seg == "." || seg == "..") return false;
    for (char c : seg) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-';
      if (!ok) return false;
    }
    start = end + 1;
  }
  return true;
}

}  // namespace s3up::storage
