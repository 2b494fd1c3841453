// The listener's certificate: loaded from PEM files, swapped on reload.
#include <openssl/ssl.h>

#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/ssl/context.hpp>

#include "http/server.hpp"

namespace s3up::http {

namespace ssl = boost::asio::ssl;

namespace {

// Mozilla's "intermediate" configuration: TLS 1.2 with forward-secret AEAD
// suites only (TLS 1.3 has its own list, all of which qualify).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

// ALPN: this server speaks HTTP/1.1 only. A client that offers it gets it;
// one that offers only others continues without ALPN (and HTTP/1.1).
int select_http11(SSL*, const unsigned char** out, unsigned char* out_length, const unsigned char* offered,
                  unsigned int offered_length, void*) {
  static constexpr unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_length, kHttp11, sizeof kHttp11, offered, offered_length) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

void readable(const std::string& path, std::string_view what) {
  if (!std::ifstream(path)) throw std::runtime_error(fmt::format("{} {}: cannot be read", what, path));
}

std::shared_ptr<ssl::context> load(const std::string& cert_file, const std::string& key_file) {
  readable(cert_file, "tls_cert");
  readable(key_file, "tls_key");
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                       ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(native, kTls12Ciphers);
  SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_alpn_select_cb(native, select_http11, nullptr);
  try {
    context->use_certificate_chain_file(cert_file);
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error(fmt::format("tls_cert {}: not a PEM certificate chain ({})", cert_file, e.what()));
  }
  try {
    context->use_private_key_file(key_file, ssl::context::pem);
  } catch (const boost::system::system_error& e) {
    // OpenSSL checks the pair as it loads the key.
    throw std::runtime_error(fmt::format("tls_key {}: not a PEM private key, or not the key of the certificate "
                                         "in {} ({})",
                                         key_file, cert_file, e.code().message()));
  }
  return context;
}

}  // namespace

TlsCertificate::TlsCertificate(std::string cert_file, std::string key_file)
    : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)), current_(load(cert_file_, key_file_)) {}

TlsCertificate::~TlsCertificate() = default;

bool TlsCertificate::reload() {
  try {
    auto fresh = load(cert_file_, key_file_);
    std::lock_guard lock(mutex_);
    current_ = std::move(fresh);
  } catch (const std::exception& e) {
    spdlog::error("tls: reloading the certificate failed, the one loaded before stays: {}", e.what());
    return false;
  }
  spdlog::info("tls: certificate reloaded from {}", cert_file_);
  return true;
}

std::shared_ptr<ssl::context> TlsCertificate::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

}  // namespace s3up::http
