#pragma once
// A POST signed as Standard Webhooks says, on libcurl: what the deliverer
// sends each event with, and the pre-upload hook its question.
#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace s3up::webhooks {

struct PostOptions {
  std::chrono::milliseconds timeout{10'000};
  std::string user_agent;
  std::string ca_file;                        // extra CA bundle, beside the system's
  const std::atomic<bool>* stopping = nullptr;  // when set, a transfer under way gives up
};

struct SignedPost {
  std::string_view url;
  std::string_view id;  // webhook-id
  std::string_view body;
};

// What the endpoint answered.
struct Answer {
  long status = 0;                     // 0: no HTTP answer
  std::string error;                   // why there was none
  std::chrono::seconds retry_after{};  // Retry-After in seconds, when given
};

// Once per process, before the first transfer.
void start_curl();

// POSTs `post` with webhook-id, webhook-timestamp (now) and
// webhook-signature under `secrets`, as JSON, on `curl` (its connections
// kept for the next call). With `body`, the answer's body is kept there
// (at most 64 KiB; a longer one is an error).
Answer post_signed(CURL* curl, const SignedPost& post, const std::vector<std::string>& secrets,
                   const PostOptions& options, std::string* body);

}  // namespace s3up::webhooks
