#include "metrics/metrics.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace s3up::metrics {

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) {
  const auto at = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[static_cast<std::size_t>(at)].fetch_add(1, std::memory_order_relaxed);
  sum_.add(v);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.sum = sum_.value();
  return s;
}

template <class Metric>
Metric& Family<Metric>::with(const Labels& values) {
  std::lock_guard lock(mutex_);
  auto& child = children_[values];
  if (!child) child = make_();
  return *child;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

const std::vector<double>& duration_buckets() {
  static const std::vector<double> bounds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1,      2.5,   5,    10,    30,   60,  300};
  return bounds;
}

namespace {

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return fmt::format("{}", v);
}

std::string escape(std::string_view text, bool quotes) {
  std::string out;
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// {a="1",b="2"} (with `extra`, as le="0.5", last); "" when there are none.
std::string label_set(const std::vector<std::string>& names, const Labels& values, std::string_view extra = {}) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) {
    out += fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", names[i], escape(values[i], true));
  }
  if (!extra.empty()) out += fmt::format("{}{}", out.empty() ? "" : ",", extra);
  return out.empty() ? "" : "{" + out + "}";
}

}  // namespace

struct Registry::Entry {
  std::string name, help, type;
  std::vector<std::string> label_names;
  std::unique_ptr<Family<Counter>> counters;
  std::unique_ptr<Family<Gauge>> gauges;
  std::unique_ptr<Family<Histogram>> histograms;
  std::function<double()> read;

  void render(std::string& out) const {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape(help, false), name, type);
    if (read) {
      out += fmt::format("{} {}\n", name, number(read()));
      return;
    }
    const auto simple = [&](const auto& family) {
      std::lock_guard lock(family->mutex_);
      for (const auto& [values, child] : family->children_) {
        out += fmt::format("{}{} {}\n", name, label_set(label_names, values), number(child->value()));
      }
    };
    if (counters) simple(counters);
    if (gauges) simple(gauges);
    if (histograms) {
      std::lock_guard lock(histograms->mutex_);
      for (const auto& [values, child] : histograms->children_) {
        const auto s = child->snapshot();
        for (std::size_t i = 0; i < s.cumulative.size(); ++i) {
          const std::string le =
              fmt::format("le=\"{}\"", i < child->bounds().size() ? number(child->bounds()[i]) : "+Inf");
          out += fmt::format("{}_bucket{} {}\n", name, label_set(label_names, values, le), s.cumulative[i]);
        }
        out += fmt::format("{}_sum{} {}\n", name, label_set(label_names, values), number(s.sum));
        out += fmt::format("{}_count{} {}\n", name, label_set(label_names, values), s.cumulative.back());
      }
    }
  }
};

Registry::Registry() = default;
Registry::~Registry() = default;

std::unique_ptr<Registry::Entry> Registry::entry(std::string name, std::string help, std::string type,
                                                 std::vector<std::string> label_names) {
  return std::make_unique<Entry>(Entry{std::move(name), std::move(help), std::move(type), std::move(label_names)});
}

Registry::Entry& Registry::publish(std::unique_ptr<Entry> e) {
  auto& published = *e;
  std::lock_guard lock(mutex_);
  entries_.push_back(std::move(e));
  return published;
}

Family<Counter>& Registry::counter(std::string name, std::string help, std::vector<std::string> label_names) {
  auto e = entry(std::move(name), std::move(help), "counter", std::move(label_names));
  e->counters.reset(new Family<Counter>());
  return *publish(std::move(e)).counters;
}

Family<Gauge>& Registry::gauge(std::string name, std::string help, std::vector<std::string> label_names) {
  auto e = entry(std::move(name), std::move(help), "gauge", std::move(label_names));
  e->gauges.reset(new Family<Gauge>());
  return *publish(std::move(e)).gauges;
}

Family<Histogram>& Registry::histogram(std::string name, std::string help, std::vector<std::string> label_names,
                                       const std::vector<double>& bounds) {
  auto e = entry(std::move(name), std::move(help), "histogram", std::move(label_names));
  e->histograms.reset(new Family<Histogram>(bounds));
  return *publish(std::move(e)).histograms;
}

void Registry::collect(std::string name, std::string help, std::string type, std::function<double()> read) {
  auto e = entry(std::move(name), std::move(help), std::move(type), {});
  e->read = std::move(read);
  publish(std::move(e));
}

void Registry::on_scrape(std::function<void()> update) {
  std::lock_guard lock(mutex_);
  updates_.push_back(std::move(update));
}

std::string Registry::render() const {
  std::string out;
  std::lock_guard lock(mutex_);
  for (const auto& update : updates_) update();
  for (const auto& e : entries_) e->render(out);
  return out;
}

Registry& registry() {
  static Registry r;
  return r;
}

namespace {

// /proc/self/stat's fields after the command name (which may hold spaces).
std::vector<std::string> self_stat() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  std::vector<std::string> fields;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return fields;
  std::istringstream rest(line.substr(close + 2));
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;  // fields[0] is the state (field 3 of proc(5))
}

double stat_field(int field) {  // proc(5) numbering, from 3
  const auto fields = self_stat();
  const auto at = static_cast<std::size_t>(field - 3);
  return at < fields.size() ? std::stod(fields[at]) : 0;
}

double boot_time() {
  std::ifstream in("/proc/stat");
  for (std::string key; in >> key;) {
    if (key == "btime") {
      double t = 0;
      in >> t;
      return t;
    }
  }
  return 0;
}

}  // namespace

void register_process_metrics(Registry& r, std::string_view version) {
  static const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  static const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  r.collect("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter",
            [] { return (stat_field(14) + stat_field(15)) / ticks; });
  r.collect("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge",
            [] { return stat_field(24) * page; });
  r.collect("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", [] { return stat_field(23); });
  r.collect("process_open_fds", "Number of open file descriptors.", "gauge", [] {
    std::error_code ec;
    double n = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++n;
    }
    return n;
  });
  r.collect("process_max_fds", "Maximum number of open file descriptors.", "gauge", [] {
    rlimit limit{};
    return ::getrlimit(RLIMIT_NOFILE, &limit) == 0 ? static_cast<double>(limit.rlim_cur) : 0;
  });
  static const double started = boot_time() + stat_field(22) / ticks;
  r.collect("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge",
            [] { return started; });
  r.gauge("s3uploader_build_info", "The running build: its version, and 1.", {"version"})
      .with({std::string(version)})
      .set(1);
}

}  // namespace s3up::metrics
