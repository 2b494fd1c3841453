// The metrics registry and its text exposition format (0.0.4): names,
// labels (escaped), counters, gauges, histograms with cumulative buckets,
// and values read when scraped.
#include <gtest/gtest.h>

#include <thread>

#include "metrics/metrics.hpp"

namespace s3up::metrics {
namespace {

TEST(Metrics, CountersAndGaugesByLabelsInTheTextFormat) {
  Registry r;
  auto& requests = r.counter("app_requests_total", "Requests.\nBy route.", {"route", "code"});
  requests.with({"/files", "200"}).add();
  requests.with({"/files", "200"}).add(2);
  requests.with({"a \"quoted\" \\ path\n", "404"}).add();
  r.gauge("app_ready", "Ready or not.", {}).with({}).set(1);
  EXPECT_EQ(r.render(),
            "# HELP app_requests_total Requests.\\nBy route.\n"
            "# TYPE app_requests_total counter\n"
            "app_requests_total{route=\"/files\",code=\"200\"} 3\n"
            "app_requests_total{route=\"a \\\"quoted\\\" \\\\ path\\n\",code=\"404\"} 1\n"
            "# HELP app_ready Ready or not.\n"
            "# TYPE app_ready gauge\n"
            "app_ready 1\n");
}

TEST(Metrics, HistogramsHaveCumulativeBucketsASumAndACount) {
  Registry r;
  auto& h = r.histogram("app_seconds", "Durations.", {"route"}, {0.1, 1});
  auto& files = h.with({"/files"});
  for (const double v : {0.05, 0.1, 0.5, 3.0}) files.observe(v);
  EXPECT_EQ(r.render(),
            "# HELP app_seconds Durations.\n"
            "# TYPE app_seconds histogram\n"
            "app_seconds_bucket{route=\"/files\",le=\"0.1\"} 2\n"
            "app_seconds_bucket{route=\"/files\",le=\"1\"} 3\n"
            "app_seconds_bucket{route=\"/files\",le=\"+Inf\"} 4\n"
            "app_seconds_sum{route=\"/files\"} 3.65\n"
            "app_seconds_count{route=\"/files\"} 4\n");
}

TEST(Metrics, ValuesHeldElsewhereAreReadWhenScraped) {
  Registry r;
  double held = 5;
  r.collect("app_held", "Read at scrape time.", "gauge", [&] { return held; });
  auto& state = r.gauge("app_state_bytes", "Set before each scrape.", {"state"});
  r.on_scrape([&] { state.with({"used"}).set(held * 2); });
  held = 7;
  const auto text = r.render();
  EXPECT_NE(text.find("app_held 7\n"), std::string::npos) << text;
  EXPECT_NE(text.find("app_state_bytes{state=\"used\"} 14\n"), std::string::npos) << text;
}

TEST(Metrics, CountingFromManyThreadsLosesNothing) {
  Registry r;
  auto& c = r.counter("app_total", "Counted.", {}).with({});
  auto& h = r.histogram("app_h", "Observed.", {}, {1}).with({});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.add();
        h.observe(0.5);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), 40000);
  EXPECT_EQ(h.snapshot().cumulative.back(), 40000u);
  EXPECT_EQ(h.snapshot().sum, 20000);
}

TEST(Metrics, TheProcessAndTheBuild) {
  Registry r;
  register_process_metrics(r, "1.2.3 (abc)");
  const auto text = r.render();
  for (const char* name : {"process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds ",
                           "process_max_fds ", "process_start_time_seconds ", "process_virtual_memory_bytes "}) {
    EXPECT_NE(text.find(std::string("\n") + name), std::string::npos) << name;
  }
  EXPECT_NE(text.find("s3uploader_build_info{version=\"1.2.3 (abc)\"} 1\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("process_resident_memory_bytes 0\n"), std::string::npos) << "read from /proc";
}

}  // namespace
}  // namespace s3up::metrics
