#include "client/state.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <boost/json.hpp>

#include "util/crypto.hpp"

namespace s3up::client {

namespace fs = std::filesystem;

UploadState::UploadState(fs::path dir) : dir_(std::move(dir)) {}

std::string UploadState::key(const std::string& server, const fs::path& absolute_path, std::uint64_t size,
                             std::int64_t mtime_ns) {
  return util::sha256_hex(server + '\n' + absolute_path.string() + '\n' + std::to_string(size) + '\n' +
                          std::to_string(mtime_ns));
}

fs::path UploadState::file_of(const std::string& key) const { return dir_ / (key + ".json"); }

std::optional<std::string> UploadState::load(const std::string& key) const {
  std::ifstream in(file_of(key));
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  const auto value = boost::json::parse(text.str(), ec);
  if (ec || !value.is_object()) return std::nullopt;
  const auto* url = value.as_object().if_contains("url");
  if (url == nullptr || !url->is_string()) return std::nullopt;
  const std::string_view u = url->as_string();
  if (!u.starts_with("http://") && !u.starts_with("https://")) return std::nullopt;
  return std::string(u);
}

void UploadState::save(const std::string& key, const std::string& url) const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  ::chmod(dir_.c_str(), 0700);
  const auto target = file_of(key);
  const auto temporary = fs::path(target.string() + ".tmp");
  const std::string text = boost::json::serialize(boost::json::object{{"url", url}}) + "\n";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    throw std::runtime_error("cannot save the upload's state in " + dir_.string() + ": " + std::strerror(errno));
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!written || ::rename(temporary.c_str(), target.c_str()) != 0) {
    ::unlink(temporary.c_str());
    throw std::runtime_error("cannot save the upload's state in " + dir_.string());
  }
}

void UploadState::remove(const std::string& key) const {
  std::error_code ec;
  fs::remove(file_of(key), ec);
}

void UploadState::prune(std::chrono::hours age) const {
  std::error_code ec;
  const auto cutoff = fs::file_time_type::clock::now() - age;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code entry_ec;
    if (it->is_regular_file(entry_ec) && it->last_write_time(entry_ec) < cutoff && !entry_ec) {
      fs::remove(it->path(), entry_ec);
    }
  }
}

}  // namespace s3up::client
