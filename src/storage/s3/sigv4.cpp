#include "storage/s3/sigv4.hpp"

#include <algorithm>
#include <array>
#include <ctime>

#include <fmt/format.h>

#include "util/crypto.hpp"
#include "util/text.hpp"

namespace s3up::storage::s3 {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

using Mac = std::array<std::uint8_t, 32>;

Mac hmac(std::string_view key, std::string_view data) { return util::hmac_sha256(key, data); }

std::string_view as_view(const Mac& m) { return {reinterpret_cast<const char*>(m.data()), m.size()}; }

std::string lower(std::string_view s) { return util::ascii_lower(s); }

// Header values: trimmed, runs of spaces collapsed to one.
std::string canonical_value(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

std::string date_stamp(std::chrono::system_clock::time_point t) { return amz_date(t).substr(0, 8); }

std::string scope(const SigningContext& ctx) {
  return fmt::format("{}/{}/{}/aws4_request", date_stamp(ctx.now), ctx.region, ctx.service);
}

std::string canonical_query(const std::vector<Header>& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [k, v] : query) encoded.emplace_back(uri_encode(k, true), uri_encode(v, true));
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [k, v] : encoded) {
    if (!out.empty()) out.push_back('&');
    out += k;
    out.push_back('=');
    out += v;
  }
  return out;
}

struct CanonicalHeaders {
  std::string block;         // "name:value\n" lines
  std::string signed_names;  // "host;x-amz-date"
};

CanonicalHeaders canonical_headers(const std::vector<Header>& headers) {
  std::vector<std::pair<std::string, std::string>> h;
  for (const auto& [k, v] : headers) h.emplace_back(lower(k), canonical_value(v));
  std::stable_sort(h.begin(), h.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  CanonicalHeaders out;
  for (std::size_t i = 0; i < h.size(); ++i) {
    if (i > 0 && h[i].first == h[i - 1].first) {
      out.block.pop_back();  // same name again: values joined with ','
      out.block += "," + h[i].second + "\n";
      continue;
    }
    out.block += h[i].first + ":" + h[i].second + "\n";
    if (!out.signed_names.empty()) out.signed_names.push_back(';');
    out.signed_names += h[i].first;
  }
  return out;
}

std::string signature_of(const std::string& string_to_sign, const Credentials& creds, const SigningContext& ctx) {
  const Mac k_date = hmac("AWS4" + creds.secret_access_key, date_stamp(ctx.now));
  const Mac k_region = hmac(as_view(k_date), ctx.region);
  const Mac k_service = hmac(as_view(k_region), ctx.service);
  const Mac k_signing = hmac(as_view(k_service), "aws4_request");
  return util::to_hex(hmac(as_view(k_signing), string_to_sign));
}

std::string build_canonical_request(const SignableRequest& r, const std::string& query, const CanonicalHeaders& h,
                                    std::string_view payload_hash) {
  return fmt::format("{}\n{}\n{}\n{}\n{}\n{}", r.method, uri_encode(r.path, false), query, h.block, h.signed_names,
                     payload_hash);
}

std::string build_string_to_sign(const SigningContext& ctx, const std::string& canonical_request) {
  return fmt::format("{}\n{}\n{}\n{}", kAlgorithm, amz_date(ctx.now), scope(ctx), util::sha256_hex(canonical_request));
}

}  // namespace

std::string uri_encode(std::string_view s, bool encode_slash) { return util::percent_encode(s, !encode_slash); }

std::string amz_date(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

SignedRequest sign(const SignableRequest& request, const Credentials& credentials, const SigningContext& context) {
  SignedRequest out;
  out.headers.emplace_back("x-amz-date", amz_date(context.now));
  out.headers.emplace_back("x-amz-content-sha256", request.payload_hash);
  if (!credentials.session_token.empty()) out.headers.emplace_back("x-amz-security-token", credentials.session_token);

  std::vector<Header> all = request.headers;
  all.insert(all.end(), out.headers.begin(), out.headers.end());
  const auto headers = canonical_headers(all);
  out.canonical_request =
      build_canonical_request(request, canonical_query(request.query), headers, request.payload_hash);
  out.string_to_sign = build_string_to_sign(context, out.canonical_request);
  out.signed_headers = headers.signed_names;
  out.signature = signature_of(out.string_to_sign, credentials, context);
  out.headers.emplace_back("authorization",
                           fmt::format("{} Credential={}/{},SignedHeaders={},Signature={}", kAlgorithm,
                                       credentials.access_key_id, scope(context), out.signed_headers, out.signature));
  return out;
}

std::string presign_query(const SignableRequest& request, const Credentials& credentials, const SigningContext& context,
                          std::chrono::seconds expires) {
  std::vector<Header> query = request.query;
  query.emplace_back("X-Amz-Algorithm", std::string(kAlgorithm));
  query.emplace_back("X-Amz-Credential", credentials.access_key_id + "/" + scope(context));
  query.emplace_back("X-Amz-Date", amz_date(context.now));
  query.emplace_back("X-Amz-Expires", std::to_string(expires.count()));
  if (!credentials.session_token.empty()) query.emplace_back("X-Amz-Security-Token", credentials.session_token);
  // Only host is signed: a presigned URL must work from any client.
  std::vector<Header> host_only;
  for (const auto& h : request.headers) {
    if (lower(h.first) == "host") host_only.push_back(h);
  }
  const auto headers = canonical_headers(host_only);
  query.emplace_back("X-Amz-SignedHeaders", headers.signed_names);
  const std::string q = canonical_query(query);
  const std::string canonical = build_canonical_request(request, q, headers, kUnsignedPayload);
  const std::string signature = signature_of(build_string_to_sign(context, canonical), credentials, context);
  return q + "&X-Amz-Signature=" + signature;
}

}  // namespace s3up::storage::s3
