// `s3uploader serve`: the composition root. Opens the stores, wires the
// upload services, the API, the janitor and the HTTP server together, and
// runs them until a signal asks for a graceful shutdown.
#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>

#include "api/api.hpp"
#include "cli/cli.hpp"
#include "db/metadata_store.hpp"
#include "http/server.hpp"
#include "metrics/metrics.hpp"
#include "storage/object_store.hpp"
#include "upload/janitor.hpp"
#include "util/text.hpp"
#include "util/units.hpp"
#include "webhooks/webhooks.hpp"

namespace s3up::cli {

namespace asio = boost::asio;

namespace {


// Gauges of what holds the service's state, set when scraped: the memory
// budget, the uploads in progress here, the database's pool.
void register_state_metrics(metrics::Registry& registry, std::shared_ptr<util::BufferPool> buffers,
                            const upload::LiveUploads& live, const db::MetadataStore& database) {
  auto& budget = registry.gauge("s3uploader_buffer_budget_bytes",
                                "The memory budget for upload bodies in flight (buffer_budget), used and free.",
                                {"state"});
  auto& waiters = registry.gauge("s3uploader_buffer_budget_waiters",
                                 "Requests waiting for room in the memory budget.", {});
  auto& in_progress =
      registry.gauge("s3uploader_uploads_in_progress", "Uploads this instance is receiving now.", {});
  auto& pool = registry.gauge("s3uploader_db_pool_connections",
                              "The metadata database's connections: in_use, idle, and waiting (threads waiting "
                              "for one).",
                              {"state"});
  registry.on_scrape([&, buffers] {
    budget.with({"free"}).set(static_cast<double>(buffers->available()));
    budget.with({"used"}).set(static_cast<double>(buffers->budget() - buffers->available()));
    waiters.with({}).set(static_cast<double>(buffers->waiters()));
    in_progress.with({}).set(static_cast<double>(live.size()));
    const auto state = database.pool_state();
    pool.with({"in_use"}).set(static_cast<double>(state.in_use));
    pool.with({"idle"}).set(static_cast<double>(state.idle));
    pool.with({"waiting"}).set(static_cast<double>(state.waiting));
  });
}

// s3uploader_webhook_outbox{status}: deliveries pending and dead. Counting
// them is a query, so a scrape never waits for it: it shows the last count
// and asks the blocking pool for a new one when that is older than 10 s.
class OutboxCounts {
 public:
  OutboxCounts(metrics::Registry& registry, db::WebhookOutbox& outbox, asio::thread_pool& blocking)
      : outbox_(outbox), blocking_(blocking) {
    auto& gauge = registry.gauge("s3uploader_webhook_outbox",
                                 "Webhook deliveries in the outbox, by status (pending: not yet delivered; dead: "
                                 "given up). Counted at most every 10 s.",
                                 {"status"});
    pending_ = &gauge.with({"pending"});
    dead_ = &gauge.with({"dead"});
    refresh();
    registry.on_scrape([this] {
      if (std::chrono::steady_clock::now() - refreshed_.load() > std::chrono::seconds(10)) refresh();
    });
  }

 private:
  void refresh() {
    if (refreshing_.exchange(true)) return;
    asio::post(blocking_, [this] {
      try {
        pending_->set(static_cast<double>(outbox_.count_deliveries(db::DeliveryStatus::pending)));
        dead_->set(static_cast<double>(outbox_.count_deliveries(db::DeliveryStatus::dead)));
      } catch (const std::exception& e) {
        spdlog::debug("metrics: counting the webhook outbox failed: {}", e.what());
      }
      refreshed_ = std::chrono::steady_clock::now();
      refreshing_ = false;
    });
  }

  db::WebhookOutbox& outbox_;
  asio::thread_pool& blocking_;
  metrics::Gauge* pending_ = nullptr;
  metrics::Gauge* dead_ = nullptr;
  std::atomic<std::chrono::steady_clock::time_point> refreshed_{};
  std::atomic<bool> refreshing_{false};
};

void write_port_file(const std::string& path, unsigned short port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
  }
  std::filesystem::rename(tmp, path);
}

// Each connection, upload file and store connection is a descriptor: the
// soft limit goes up to the hard one (systemd's default soft limit is
// 1024, its hard one far higher), as nginx's and Go's servers do.
void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  const auto before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) {
    spdlog::debug("open files: limit raised from {} to {}", before, limit.rlim_cur);
  }
}

}  // namespace

asio::ip::tcp::endpoint parse_listen(const std::string& listen) {
  const auto colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty() || host == "*") host = "0.0.0.0";
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) throw config::ConfigError("listen: '" + host + "' is not an IP address");
  const auto port_number = std::stoul(port);
  if (port_number > 65535) throw config::ConfigError("listen: port out of range");
  return {address, static_cast<unsigned short>(port_number)};
}

int serve(const config::Config& cfg) {
  raise_descriptor_limit();
  asio::thread_pool blocking(cfg.service.blocking_threads);
  // Each failure to start names the setting behind it, not only the system's words.
  const auto naming = [](std::string_view setting, std::string_view env, auto&& open) {
    try {
      return open();
    } catch (const std::filesystem::filesystem_error& e) {
      throw std::runtime_error(
          fmt::format("{}: {} (the {} setting, {})", e.path1().string(), e.code().message(), setting, env));
    }
  };
  auto metadata = naming("database", "S3UP_DATABASE",
                         [&] { return db::open_metadata_store(cfg.database.url, cfg.database.pool_size, cfg.database.timeout); });
  if (cfg.service.migrate_on_start) metadata->migrate();
  asio::io_context io(static_cast<int>(cfg.service.threads));
  // One memory budget for bodies in flight: the store's buffers and the
  // server's receive buffers.
  auto buffers = std::make_shared<util::BufferPool>(cfg.buffer_budget);
  storage::StoreSettings store_settings = cfg.storage;
  store_settings.buffers = buffers;
  // Downloads have a budget of their own (see StoreSettings::download_buffers).
  store_settings.download_buffers = std::make_shared<util::BufferPool>(cfg.download_budget);
  auto store = naming("storage", "S3UP_STORAGE",
                      [&] { return storage::open_object_store(store_settings, io.get_executor(), blocking); });
  auth::Authenticator authenticator(*metadata, blocking, cfg.jwt);
  // The JWT keys load in the background: a provider that is down does not
  // keep the service from starting (tokens wait for the next try).
  asio::co_spawn(io, authenticator.start(), asio::detached);
  upload::Services uploads{*store, *metadata, *metadata, blocking, cfg.uploads};
  const std::string user_agent = "s3uploader/" + std::string(S3UP_VERSION);
  std::optional<webhooks::PreUploadHook> pre_upload_hook;
  if (!cfg.webhooks.pre_upload_hook_url.empty()) {
    uploads.gate = &pre_upload_hook.emplace(cfg.webhooks, user_agent);
    spdlog::info("pre-upload hook: every upload asks {} first", util::redact_url_userinfo(cfg.webhooks.pre_upload_hook_url));
  }
  api::Readiness readiness(*metadata, *store, blocking);
  const bool metrics_apart = !cfg.service.metrics_listen.empty();
  api::Api api(api::Dependencies{uploads, authenticator, cfg.downloads, cfg.rate_limit, cfg.web, cfg.resumable,
                                 cfg.upload_links, metadata.get(), &readiness, !metrics_apart});
  // Clean-up after uploads of crashed processes: now, then periodically.
  upload::Janitor janitor(uploads, cfg.janitor.stale_upload_age, &api.uploads(), metadata.get());
  asio::co_spawn(io, janitor.run_every(cfg.janitor.interval), asio::detached);
  // Events are recorded whenever webhooks are set, and delivered by every
  // instance: one that is down leaves its events to the others.
  std::optional<webhooks::Deliverer> deliverer;
  if (cfg.webhooks.enabled()) {
    metadata->record_events(cfg.webhooks.urls, cfg.webhooks.event_types());
    deliverer.emplace(*metadata, cfg.webhooks, user_agent);
    deliverer->start();
    spdlog::info("webhooks: {} event type(s) to {} endpoint(s)", cfg.webhooks.event_types().size(),
                 cfg.webhooks.urls.size());
  }

  // Metrics: the process, the build, what holds its state (read when
  // scraped), and every exchange (by route, method and status) beside its
  // access log line. The modules count their own events.
  auto& registry = metrics::registry();
  metrics::register_process_metrics(registry, version());
  register_state_metrics(registry, buffers, *uploads.live, *metadata);
  std::optional<OutboxCounts> outbox;
  if (cfg.webhooks.enabled()) outbox.emplace(registry, *metadata, blocking);
  auto& requests = registry.counter("s3uploader_http_requests_total",
                                    "HTTP requests answered, by route (its pattern; \"none\" when none matched), "
                                    "method and status (499: the client went away).",
                                    {"route", "method", "code"});
  auto& durations = registry.histogram("s3uploader_http_request_duration_seconds",
                                       "Time from a request's head to the end of its answer, by route.", {"route"});

  http::ServerOptions options;
  static_cast<http::Limits&>(options) = cfg.http;
  options.on_exchange = [log = http::access_log(), &requests, &durations](const http::Exchange& e) {
    log(e);
    // Labels take only values from short lists: a client's odd method is "other".
    const std::string route = e.route.empty() ? "none" : std::string(e.route);
    static constexpr std::string_view kMethods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    const bool known = std::find(std::begin(kMethods), std::end(kMethods), e.method) != std::end(kMethods);
    requests.with({route, known ? std::string(e.method) : "other", std::to_string(e.status)}).add();
    durations.with({route}).observe(e.milliseconds / 1000);
  };
  options.endpoint = parse_listen(cfg.service.listen);
  if (!cfg.service.tls_cert.empty()) {
    options.tls = std::make_shared<http::TlsCertificate>(cfg.service.tls_cert, cfg.service.tls_key);
  }
  options.buffers = buffers;
  options.max_body_bytes = cfg.uploads.max_upload_bytes + api::kMultipartFramingAllowance;
  http::Server server(io, options, http::chain({http::request_id(), http::error_answers()}, [&api](http::Request& r) {
                        return api.handle(r);
                      }));
  try {
    server.start();
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error(fmt::format("cannot listen on {}:{}: {} (the listen setting, S3UP_LISTEN)",
                                         options.endpoint.address().to_string(), options.endpoint.port(),
                                         e.code().message()));
  }
  const auto bound = server.local_endpoint();
  if (!cfg.service.port_file.empty()) write_port_file(cfg.service.port_file, bound.port());
  auto& connections = registry.gauge("s3uploader_connections",
                                     "Open client connections: busy (a request in progress) or idle (kept alive).",
                                     {"state"});
  registry.on_scrape([&connections, &server] {
    const auto open = server.connections();
    connections.with({"busy"}).set(static_cast<double>(open.busy));
    connections.with({"idle"}).set(static_cast<double>(open.idle));
  });

  // /metrics on a listener of its own: for a scraper on another host, with
  // nothing else of the API reachable through it.
  std::optional<http::Server> metrics_server;
  if (metrics_apart) {
    http::ServerOptions metrics_options;
    static_cast<http::Limits&>(metrics_options) = cfg.http;
    metrics_options.endpoint = parse_listen(cfg.service.metrics_listen);
    metrics_options.buffers = std::make_shared<util::BufferPool>(1 << 20);
    metrics_options.on_exchange = [](const http::Exchange&) {};  // scrapes would drown the access log
    auto router = std::make_shared<http::Router>();
    router->add(boost::beast::http::verb::get, "/metrics",
                [](http::Request&) -> asio::awaitable<http::Response> { co_return api::metrics_answer(); });
    metrics_server.emplace(io, metrics_options,
                           http::chain({http::request_id(), http::error_answers()},
                                       [router](http::Request& r) { return (*router)(r); }));
    try {
      metrics_server->start();
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error(fmt::format("cannot listen on {} for metrics: {} (the metrics_listen setting, "
                                           "S3UP_METRICS_LISTEN)",
                                           cfg.service.metrics_listen, e.code().message()));
    }
    const auto at = metrics_server->local_endpoint();
    spdlog::info("metrics on http://{}:{}/metrics", at.address().to_string(), at.port());
  }
  const std::string scheme = options.tls ? "https" : "http";
  spdlog::info("s3uploader {} listening on {}://{}:{} (storage {}, database {}, {} I/O threads, max upload {})",
               version(), scheme, bound.address().to_string(), bound.port(), store->describe(), metadata->describe(),
               cfg.service.threads, util::format_size(cfg.uploads.max_upload_bytes));
  if (metadata->count_users() == 0) {
    spdlog::info(
        "no users yet. Create one and a token for it:\n"
        "    s3uploader user add alice\n"
        "    s3uploader token create alice\n"
        "then open {2}://{0}:{1}/ and sign in with the token, or upload with:\n"
        "    S3UP_TOKEN=$TOKEN s3uploader push --server {2}://{0}:{1} photo.jpg\n"
        "    curl -F file=@photo.jpg -H \"Authorization: Bearer $TOKEN\" {2}://{0}:{1}/upload",
        bound.address().to_string(), bound.port(), scheme);
  }

  // SIGHUP: a rotated certificate (certbot, a mounted secret) is read again.
  asio::signal_set hangups(io, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_hangup = [&](const boost::system::error_code& ec,
                                                                             int) {
    if (ec) return;
    if (options.tls) {
      options.tls->reload();
    } else {
      spdlog::info("SIGHUP: nothing to reload (no tls_cert)");
    }
    hangups.async_wait(on_hangup);
  };
  hangups.async_wait(on_hangup);

  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer drain_timer(io);
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec,
                                                                             int signo) {
    if (ec) return;
    static bool first = true;
    if (!first) {
      spdlog::warn("second signal: stopping now");
      io.stop();
      return;
    }
    first = false;
    readiness.drain();
    signals.async_wait(on_signal);
    const auto close = [&] {
      spdlog::info("shutting down (grace {} ms)", cfg.http.shutdown_grace.count());
      if (metrics_server) metrics_server->shutdown([] {});
      server.shutdown([&] {
        spdlog::info("all connections closed");
        signals.cancel();
        hangups.cancel();
        io.stop();
      });
    };
    if (cfg.service.shutdown_drain.count() <= 0) {
      spdlog::info("received signal {}", signo);
      close();
      return;
    }
    // Draining: /readyz answers 503 so a balancer takes this instance out of
    // its rotation, while requests keep being served.
    spdlog::info("received signal {}: draining for {} ms", signo, cfg.service.shutdown_drain.count());
    drain_timer.expires_after(cfg.service.shutdown_drain);
    drain_timer.async_wait([close](const boost::system::error_code& ec) {
      if (!ec) close();
    });
  };
  signals.async_wait(on_signal);

  std::vector<std::thread> threads;
  for (unsigned i = 1; i < cfg.service.threads; ++i) threads.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : threads) t.join();
  blocking.join();
  spdlog::info("stopped");
  return 0;
}

}  // namespace s3up::cli
