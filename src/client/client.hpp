#pragma once
// The command-line client, `s3uploader push|ls|get|rm`: talks to a running
// service over its public API, the way any user's client would.
//   push  tus uploads, resumable across runs (state in ~/.cache/s3uploader),
//         a checksum on every chunk, retries with backoff, files in parallel;
//   ls    the caller's files, newest first;
//   get   a download, resumed with Range and checked against its SHA-256;
//   rm    deletes files.
// Each command returns the process's exit status and prints one line per
// failure on stderr.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace s3up::client {

// Which service to talk to, and as whom.
struct Endpoint {
  std::string server;   // base URL, without a trailing slash
  std::string token;    // an API token
  std::string ca_file;  // PEM bundle to verify the server with; empty: the system's
};

// What the command line said; unset fields were not given.
struct EndpointFlags {
  std::optional<std::string> server, token, ca_file;
};

// A mistake in how the client was called or configured: one line for the user.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The client configuration file: $XDG_CONFIG_HOME/s3uploader/client.toml,
// else ~/.config/s3uploader/client.toml. Keys: server, token, ca_file.
std::filesystem::path config_file_path();
// Where push keeps resumable state: $XDG_CACHE_HOME/s3uploader, else ~/.cache/s3uploader.
std::filesystem::path cache_dir();

// Each field from the flag, else S3UP_SERVER / S3UP_TOKEN / S3UP_CA_FILE,
// else the configuration file (which must not be readable by group or
// others: it holds a token), else the default server http://127.0.0.1:8080.
// Throws UsageError when there is no token or the file is unsafe or malformed.
Endpoint resolve_endpoint(const EndpointFlags& flags);

struct TransferOptions {
  unsigned retries = 10;            // attempts after a failure that may pass (network, 5xx, 423, 429)
  std::uint64_t max_send_rate = 0;  // bytes per second per file; 0: no limit
};

struct PushOptions {
  std::vector<std::string> files;
  unsigned jobs = 4;                       // files uploaded at once
  std::uint64_t chunk_size = 64ull << 20;  // bytes per PATCH, each with its own checksum
  // Upload-Checksum on every chunk: "auto" (the cheapest the server offers:
  // crc32, else sha256, sha1, md5), one of those, or "none". Without, the
  // server keeps what arrives of a broken request, so one PATCH can carry
  // the whole file.
  std::string checksum = "auto";
  TransferOptions transfer;
};

struct GetOptions {
  std::string id;
  std::string output;  // path, "-" for stdout, empty: the file's own name here
  bool force = false;  // replace an existing output file
  TransferOptions transfer;
};

int push(const Endpoint& endpoint, const PushOptions& options);
int list(const Endpoint& endpoint, const TransferOptions& transfer);
int get(const Endpoint& endpoint, const GetOptions& options);
int remove(const Endpoint& endpoint, const std::vector<std::string>& ids, const TransferOptions& transfer);

}  // namespace s3up::client
