#pragma once
// Prometheus metrics: counters, gauges and histograms, each a family of
// children by label values, rendered in the text exposition format 0.0.4
// (GET /metrics). Counting is lock-free: a child is found (or made) under
// the family's lock once, and callers on a hot path keep the child; its
// value is an atomic. Values that already exist elsewhere (the memory
// budget, the process's CPU and memory) are read when scraped, by
// collectors, rather than copied on every change.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace s3up::metrics {

// A double that several threads add to without a lock.
class AtomicDouble {
 public:
  void add(double amount) {
    double now = value_.load(std::memory_order_relaxed);
    while (!value_.compare_exchange_weak(now, now + amount, std::memory_order_relaxed)) {
    }
  }
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Counter {
 public:
  void add(double amount = 1) { value_.add(amount); }
  double value() const { return value_.value(); }

 private:
  AtomicDouble value_;
};

class Gauge {
 public:
  void set(double v) { value_.set(v); }
  void add(double amount) { value_.add(amount); }
  double value() const { return value_.value(); }

 private:
  AtomicDouble value_;
};

class Histogram {
 public:
  explicit Histogram(const std::vector<double>& bounds);  // upper bounds, ascending; +Inf is implied
  void observe(double v);
  struct Snapshot {
    std::vector<std::uint64_t> cumulative;  // per bound, then +Inf
    double sum = 0;
  };
  Snapshot snapshot() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // per bucket (not cumulative), then +Inf
  AtomicDouble sum_;
};

using Labels = std::vector<std::string>;  // values, in the family's label order

template <class Metric>
class Family {
 public:
  // The child for `values` (made on first use); the reference stays valid.
  Metric& with(const Labels& values);

 private:
  friend class Registry;
  template <class... Args>
  explicit Family(Args&&... make_args) : make_([=] { return std::make_unique<Metric>(make_args...); }) {}
  std::function<std::unique_ptr<Metric>()> make_;
  mutable std::mutex mutex_;
  std::map<Labels, std::unique_ptr<Metric>> children_;
};

// Seconds: from 1 ms to 5 min, for request and query durations.
const std::vector<double>& duration_buckets();

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  Family<Counter>& counter(std::string name, std::string help, std::vector<std::string> label_names);
  Family<Gauge>& gauge(std::string name, std::string help, std::vector<std::string> label_names);
  Family<Histogram>& histogram(std::string name, std::string help, std::vector<std::string> label_names,
                               const std::vector<double>& bounds = duration_buckets());
  // A gauge (or counter) whose value is read when scraped.
  void collect(std::string name, std::string help, std::string type, std::function<double()> read);
  // Runs before each scrape (to set gauges from what holds the values).
  void on_scrape(std::function<void()> update);

  // Everything, in the text exposition format 0.0.4.
  std::string render() const;

 private:
  struct Entry;
  // A new entry, complete before it is shared with render().
  static std::unique_ptr<Entry> entry(std::string name, std::string help, std::string type,
                                      std::vector<std::string> label_names);
  Entry& publish(std::unique_ptr<Entry> entry);
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::vector<std::function<void()>> updates_;
};

// The process's registry: the service registers its metrics here once.
Registry& registry();

// process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds and
// process_start_time_seconds, read from /proc when scraped; and
// s3uploader_build_info{version}.
void register_process_metrics(Registry& registry, std::string_view version);

}  // namespace s3up::metrics
