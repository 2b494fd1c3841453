#pragma once
// A small S3 client: HTTP/1.1 over Beast (TLS through OpenSSL, verified
// against the system trust store), a keep-alive connection pool, SigV4 on
// every request, retries with exponential backoff and full jitter for what is
// worth retrying (connection failures, 5xx, SlowDown, RequestTimeout).
//
// Above the transport (send, open) sit the S3 operations the service uses,
// one method each, named as in the S3 API (s3_operations.cpp). They throw
// storage::Error, with a log line that says what the store answered.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "storage/object_store.hpp"
#include "storage/s3/credentials.hpp"
#include "storage/s3/s3_xml.hpp"
#include "storage/s3/sigv4.hpp"

namespace s3up::storage::s3 {

struct ClientOptions {
  std::string endpoint;  // "https://s3.eu-west-1.amazonaws.com", "http://127.0.0.1:7480"; empty: AWS for the region
  std::string region = "us-east-1";
  std::string bucket;
  // Path style (endpoint/bucket/key) instead of virtual-hosted (bucket.endpoint/key);
  // automatic for an IP address or localhost endpoint.
  bool force_path_style = false;
  std::string ca_file;  // extra CA bundle for private stores
  // The longest the store may keep an attempt waiting without progress: to
  // connect, to take the next bytes of a request, to send the first or the
  // next bytes of its answer. Then the attempt fails and is retried.
  std::chrono::milliseconds timeout{30'000};
  int max_attempts = 5;
  std::size_t max_idle_connections = 64;
};

struct Response {
  unsigned status = 0;
  std::vector<Header> headers;  // names lower-cased
  std::string body;
  std::string header(std::string_view name) const;
};

struct Request {
  std::string method;            // GET PUT POST DELETE HEAD
  std::string key;               // object key; empty for the bucket
  std::vector<Header> query;     // decoded
  std::vector<Header> headers;   // besides host and the signing headers
  std::span<const char> body;    // must stay valid until send() returns (it is resent on retry)
  std::string payload_hash;      // hex SHA-256 of body; computed here if empty
  bool expect_continue = false;  // send the headers, wait for 100 Continue, then the body
  std::string_view operation;    // the S3 API's name for it (PutObject, ...), for metrics and logs
};

// How the store checks every byte of a part (s3_part_checksum):
//  - sha256: the part's SHA-256, signed as x-amz-content-sha256 (SigV4's
//    own check, which every S3 store makes);
//  - md5: Content-MD5 with UNSIGNED-PAYLOAD;
//  - crc32c, crc64nvme: S3's flexible checksums (x-amz-checksum-*) with
//    UNSIGNED-PAYLOAD, as the AWS SDKs send them. The multipart upload
//    declares its algorithm when it is created, and its completion names
//    each part's checksum, so the algorithm belongs to the upload: a
//    resumable upload keeps the one it began with.
enum class PartChecksum { sha256, md5, crc32c, crc64nvme };
// Every name one way of checking parts goes by.
struct PartChecksumSpec {
  PartChecksum kind;
  std::string_view name;       // as configured, and as util::NamedHash names its digest
  std::string_view label;      // for the start-up line
  std::string_view header;     // the part's digest header; "" for sha256 (the signed payload hash)
  std::string_view algorithm;  // x-amz-checksum-algorithm; "" unless a flexible checksum
  std::string_view element;    // its element in CompleteMultipartUpload's Part; "" unless flexible
};
const PartChecksumSpec& spec_of(PartChecksum checksum);
std::optional<PartChecksum> part_checksum_named(std::string_view name);
// A flexible checksum (crc32c, crc64nvme): one the multipart upload declares.
inline bool is_flexible(PartChecksum checksum) { return !spec_of(checksum).algorithm.empty(); }
// The headers CreateMultipartUpload carries for it (none for sha256, md5).
std::vector<Header> declare_checksum(PartChecksum checksum);

// One part of a multipart upload, as UploadPart sends it.
struct PartUpload {
  std::string key;
  std::string upload_id;
  int number = 0;
  std::span<const char> body;
  std::string payload_hash;  // signed as x-amz-content-sha256: the part's SHA-256, or UNSIGNED-PAYLOAD
  // How the store checks the part; unless by its payload hash, `checksum`
  // (base64) goes in the kind's header.
  PartChecksum checksum_kind = PartChecksum::sha256;
  std::string checksum;
};

// Thrown when the store could not be reached (after retries). `silent`: no
// sign of life at all (refused, unresolvable, timed out), unlike a
// connection that broke: what tells the client's Breaker the store is down.
class ConnectionFailure : public std::runtime_error {
 public:
  explicit ConnectionFailure(const std::string& what, bool silent = false)
      : std::runtime_error(what), silent_(silent) {}
  bool silent() const { return silent_; }

 private:
  bool silent_;
};

class Client;

// A response whose body is read as it arrives (GetObject), with backpressure:
// nothing more is read from the store until the caller asks. It holds its
// connection until the body is read (the connection then goes back to the
// pool) or it is dropped (then the connection is closed).
class ResponseStream {
 public:
  ~ResponseStream();
  unsigned status() const;
  std::string header(std::string_view name) const;  // lower-case name
  // Up to into.size() bytes of the body; 0 at its end. Throws ConnectionFailure.
  boost::asio::awaitable<std::size_t> read_some(std::span<char> into);
  // The rest of the body as a string, up to a small limit (error answers).
  boost::asio::awaitable<std::string> read_rest();

  struct State;
  explicit ResponseStream(std::unique_ptr<State> state);

 private:
  std::unique_ptr<State> state_;
};

class Client : public std::enable_shared_from_this<Client> {
 public:
  Client(boost::asio::any_io_executor executor, ClientOptions options,
         std::shared_ptr<CredentialsProvider> credentials);
  ~Client();

  // Sends with retries; returns the final response whatever its status (the
  // caller decides what a 404 means). Throws ConnectionFailure.
  boost::asio::awaitable<Response> send(const Request& request);
  // Sends a request without a body (a GET) with the same retries, and
  // returns once the response headers are in; the body is the caller's to
  // read. A 5xx is retried; any other status is returned.
  boost::asio::awaitable<std::unique_ptr<ResponseStream>> open(const Request& request);

  // A presigned URL for a GET (or other method) of `key`, valid for `expires`;
  // `query` (e.g. partNumber and uploadId) is signed with it.
  boost::asio::awaitable<std::string> presign(std::string method, std::string key, std::chrono::seconds expires,
                                              std::vector<Header> query = {});

  // The S3 operations. Keys are as stored in the bucket (with any prefix).
  // Object headers (Content-Type, Content-Disposition) for PutObject and
  // CreateMultipartUpload come from object_headers().

  // PutObject of a whole body whose SHA-256 (hex) is `sha256`: its ETag.
  boost::asio::awaitable<std::string> put_object(const std::string& key, const std::vector<Header>& headers,
                                                 std::span<const char> body, const std::string& sha256);
  // HeadObject: the object's size and ETag; nullopt if there is none.
  boost::asio::awaitable<std::optional<ObjectInfo>> head_object(const std::string& key);
  // GetObject of bytes [first, last], the body left to read; nullptr when
  // the range starts past the end (416). Error(not_found) without an object.
  boost::asio::awaitable<std::unique_ptr<ResponseStream>> get_object(const std::string& key, std::uint64_t first,
                                                                     std::uint64_t last);
  // DeleteObject; an absent key is no error.
  boost::asio::awaitable<void> delete_object(const std::string& key);
  // ListObjectsV2: the keys that start with `prefix` (the first 1,000).
  boost::asio::awaitable<std::vector<std::string>> list_objects(const std::string& prefix);
  // CreateMultipartUpload: the store's upload id.
  boost::asio::awaitable<std::string> create_multipart_upload(const std::string& key,
                                                              const std::vector<Header>& headers);
  // UploadPart: the part's ETag.
  boost::asio::awaitable<std::string> upload_part(const PartUpload& part);
  // UploadPartCopy: bytes [first, last] of the object `source` (in this
  // bucket), copied by the store into part `number`: the part as
  // CompleteMultipartUpload names it (its ETag, and the checksum the store
  // computed if the upload declared one).
  boost::asio::awaitable<CompletedPart> upload_part_copy(const std::string& key, const std::string& upload_id,
                                                         int number, const std::string& source, std::uint64_t first,
                                                         std::uint64_t last);
  // CompleteMultipartUpload with `parts` in order: the object's ETag. An
  // <Error> inside a 200 answer is a failure too.
  // `declared`: the flexible checksum the upload declared, whose element
  // carries each part's checksum.
  boost::asio::awaitable<std::string> complete_multipart_upload(const std::string& key, const std::string& upload_id,
                                                                const std::vector<CompletedPart>& parts,
                                                                PartChecksum declared = PartChecksum::sha256);
  // AbortMultipartUpload, then ListParts until the upload is gone: a part the
  // store was still receiving can land after an abort and keep the upload
  // alive, and S3's documentation asks for exactly this check and another
  // abort. Throws when the upload outlives three aborts.
  boost::asio::awaitable<void> abort_multipart_upload(const std::string& key, const std::string& upload_id);
  // ListParts, page by page: every part the upload holds, in order; nullopt
  // if there is no such upload (aborted or completed).
  boost::asio::awaitable<std::optional<std::vector<CompletedPart>>> list_parts(const std::string& key,
                                                                               const std::string& upload_id);
  // ListMultipartUploads: the uploads in progress whose keys start with
  // `prefix` (the first 1,000).
  boost::asio::awaitable<std::vector<MultipartUploadEntry>> list_multipart_uploads(const std::string& prefix);
  // CreateBucket; a bucket we own already is fine.
  boost::asio::awaitable<void> create_bucket();
  // HeadBucket: the bucket is there and these credentials may use it.
  boost::asio::awaitable<void> head_bucket();

  const ClientOptions& options() const { return options_; }
  const boost::asio::any_io_executor& executor() const { return executor_; }
  bool path_style() const { return path_style_; }
  std::string credentials_source() const { return credentials_->describe(); }

 private:
  struct Connection;
  std::string path_for(const std::string& key) const;  // raw (unencoded) request path
  boost::asio::awaitable<std::unique_ptr<Connection>> connect();
  std::unique_ptr<Connection> take_idle();
  void give_back(std::unique_ptr<Connection> c);
  boost::asio::awaitable<Response> attempt(const Request& request, const std::string& payload_hash);
  boost::asio::awaitable<std::unique_ptr<ResponseStream>> attempt_open(const Request& request);
  // send() whose connection failure is a storage Error (`op` names it in the log).
  boost::asio::awaitable<Response> call(Request& request, std::string_view op);
  boost::asio::awaitable<bool> multipart_upload_holds_parts(const std::string& key, const std::string& upload_id);
  friend class ResponseStream;

  boost::asio::any_io_executor executor_;
  ClientOptions options_;
  std::shared_ptr<CredentialsProvider> credentials_;
  bool tls_ = false;
  std::string endpoint_host_;
  std::string endpoint_port_;
  bool path_style_ = false;
  std::string connect_host_;  // endpoint host, with the bucket in front when virtual-hosted
  std::string host_header_;   // connect_host_ plus a non-default port
  struct TlsContext;
  std::unique_ptr<TlsContext> tls_context_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Connection>> idle_;
  // A store that checks a part's flexible checksum names it in its answer
  // (AWS, MinIO); one that answers without it ignores them (radosgw before
  // Squid), which the log says once.
  std::atomic<bool> ignores_flexible_checksums_{false};

 public:
  // Whether the store answers at all, learnt from every attempt: after
  // kFailuresToOpen attempts in a row got no answer (refused, reset, timed
  // out), attempts fail at once for kOpenFor, then are tried again. An
  // outage then costs a request a few timeouts at most, and the requests
  // behind it none, instead of each waiting out all its attempts.
  class Breaker {
   public:
    static constexpr int kFailuresToOpen = 3;
    static constexpr std::chrono::seconds kOpenFor{2};
    bool open() const;
    void answered();
    void no_answer();

   private:
    std::atomic<int> failures_in_a_row_{0};
    std::atomic<std::int64_t> open_until_{0};  // steady clock, nanoseconds
  };

 private:
  Breaker breaker_;
};

// The headers an object is stored with (PutObject, CreateMultipartUpload).
std::vector<Header> object_headers(const ObjectMetadata& metadata);

// Turns a failed S3 answer into a storage Error (refused, unavailable or
// rejected), with a log line that says what happened (never a secret).
[[noreturn]] void fail(std::string_view op, const std::string& key, unsigned status, std::string_view body);
[[noreturn]] void fail(std::string_view op, const std::string& key, const Response& response);

}  // namespace s3up::storage::s3
