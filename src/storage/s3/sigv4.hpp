#pragma once
// AWS Signature Version 4 for S3, as a pure function of the request, the
// credentials, the region and the clock: no I/O, no global state, so it is
// tested against the examples AWS publishes ("Signature Calculations for the
// Authorization Header" and "Authenticating Requests: Using Query Parameters").
#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace s3up::storage::s3 {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials (STS, instance roles); empty otherwise
};

using Header = std::pair<std::string, std::string>;

// A request as the signer sees it. The path and the query are given decoded:
// the signer encodes them the way S3 expects (each path byte once, '/' kept).
struct SignableRequest {
  std::string method;           // "GET", "PUT", ...
  std::string path;             // "/bucket/key" or "/key"; raw bytes, starts with '/'
  std::vector<Header> query;    // name, value; a value-less parameter has ""
  std::vector<Header> headers;  // must include "host"; names in any case
  std::string payload_hash;     // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
};

struct SigningContext {
  std::string region;
  std::string service = "s3";
  std::chrono::system_clock::time_point now;
};

// The SHA-256 of an empty payload, which GETs and DELETEs sign.
inline constexpr std::string_view kEmptyPayloadHash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

// RFC 3986 percent-encoding as SigV4 defines it: everything but A-Z a-z 0-9
// - _ . ~ is encoded, '/' too unless encode_slash is false.
std::string uri_encode(std::string_view s, bool encode_slash);

// "20130524T000000Z"
std::string amz_date(std::chrono::system_clock::time_point t);

struct SignedRequest {
  // Headers to add to the request: x-amz-date, x-amz-content-sha256,
  // x-amz-security-token (with temporary credentials) and authorization.
  std::vector<Header> headers;
  // The intermediate values, for tests and for debugging a SignatureDoesNotMatch.
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;
  std::string signature;
};

// Signs with the Authorization header. x-amz-date, x-amz-content-sha256 (and
// x-amz-security-token) are added to the signed headers.
SignedRequest sign(const SignableRequest& request, const Credentials& credentials, const SigningContext& context);

// A presigned URL's query string (query-string authentication): the request's
// own query plus X-Amz-Algorithm, -Credential, -Date, -Expires, -SignedHeaders
// (host only), -Security-Token if any, and -Signature, all encoded.
std::string presign_query(const SignableRequest& request, const Credentials& credentials, const SigningContext& context,
                          std::chrono::seconds expires);

}  // namespace s3up::storage::s3
