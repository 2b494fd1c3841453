#include "client/progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "util/units.hpp"

namespace s3up::client {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kRedrawEvery = std::chrono::milliseconds(200);
constexpr auto kRateWindow = std::chrono::seconds(3);

std::size_t terminal_width() {
  winsize ws{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

// Cuts UTF-8 text to at most `columns` code points (a column each, near
// enough for file names), marking the cut with "…".
std::string fit(const std::string& text, std::size_t columns) {
  std::size_t count = 0, i = 0;
  std::vector<std::size_t> starts;
  for (; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      starts.push_back(i);
      ++count;
    }
  }
  if (count <= columns) return text;
  if (columns == 0) return "";
  return text.substr(0, starts[columns - 1]) + "…";
}

}  // namespace

std::string format_eta(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

std::string ProgressBoard::format_row(const Row& row, std::size_t width) {
  const unsigned percent = row.total == 0 ? 100 : static_cast<unsigned>(row.done * 100 / row.total);
  std::string right =
      fmt::format("{:>3}%  {} / {}", percent, util::format_size(row.done), util::format_size(row.total));
  if (!row.note.empty()) {
    right += "  " + row.note;
  } else if (row.rate > 0) {
    const auto per_second = util::format_size(static_cast<std::uint64_t>(row.rate));
    const double eta = static_cast<double>(row.total - std::min(row.done, row.total)) / row.rate;
    right += fmt::format("  {}/s  ETA {}", per_second, format_eta(eta));
  }
  // The name takes what the numbers leave; on a narrow screen the numbers
  // are cut too, so that no line wraps (which would break the redraw).
  const std::size_t usable = width > 1 ? width - 1 : 1;
  const std::size_t name_room = usable > right.size() + 2 ? usable - right.size() - 2 : 0;
  std::string line = fit(row.name, std::max<std::size_t>(name_room, std::min<std::size_t>(8, usable)));
  line += "  " + right;
  return fit(line, usable);
}

ProgressBoard::ProgressBoard(bool live) : live_(live) {
  if (live_) renderer_ = std::thread([this] { render_loop(); });
}

ProgressBoard::~ProgressBoard() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (renderer_.joinable()) renderer_.join();
}

bool ProgressBoard::stderr_is_terminal() {
  const char* term = std::getenv("TERM");
  return ::isatty(STDERR_FILENO) == 1 && (term == nullptr || std::strcmp(term, "dumb") != 0);
}

std::size_t ProgressBoard::add(std::string name, std::uint64_t total) {
  std::lock_guard lock(mutex_);
  Entry e;
  e.name = std::move(name);
  e.total = total;
  entries_.push_back(std::move(e));
  return entries_.size() - 1;
}

void ProgressBoard::start(std::size_t line, std::uint64_t done) {
  std::lock_guard lock(mutex_);
  auto& e = entries_[line];
  if (!e.running) {
    e.running = true;
    e.started = Clock::now();
    e.done_at_start = done;
  }
  e.done = done;
  e.samples.clear();
}

void ProgressBoard::set_done(std::size_t line, std::uint64_t done) {
  std::lock_guard lock(mutex_);
  entries_[line].done = done;
}

void ProgressBoard::set_note(std::size_t line, std::string note) {
  std::lock_guard lock(mutex_);
  entries_[line].note = std::move(note);
}

double ProgressBoard::seconds(std::size_t line) const {
  std::lock_guard lock(mutex_);
  const auto& e = entries_[line];
  if (!e.running) return 0;
  return std::chrono::duration<double>(Clock::now() - e.started).count();
}

std::uint64_t ProgressBoard::moved(std::size_t line) const {
  std::lock_guard lock(mutex_);
  const auto& e = entries_[line];
  return e.done > e.done_at_start ? e.done - e.done_at_start : 0;
}

void ProgressBoard::finish(std::size_t line, const std::string& message) { end(line, message, stdout); }
void ProgressBoard::fail(std::size_t line, const std::string& message) { end(line, message, stderr); }

void ProgressBoard::end(std::size_t line, const std::string& message, std::FILE* out) {
  std::lock_guard lock(mutex_);
  entries_[line].ended = true;
  entries_[line].running = false;
  if (live_) clear_block();
  std::fputs(message.c_str(), out);
  std::fputc('\n', out);
  std::fflush(out);
  if (live_) draw_block();
}

double ProgressBoard::rate_of(Entry& e, Clock::time_point now) {
  e.samples.emplace_back(now, e.done);
  while (e.samples.size() > 2 && now - e.samples[1].first >= kRateWindow) e.samples.pop_front();
  const auto& [then, bytes_then] = e.samples.front();
  const double dt = std::chrono::duration<double>(now - then).count();
  if (dt < 0.5 || e.done < bytes_then) return 0;
  return static_cast<double>(e.done - bytes_then) / dt;
}

void ProgressBoard::clear_block() {
  if (drawn_lines_ == 0) return;
  // To the start of the block's first line, then clear to the end of the screen.
  std::fprintf(stderr, "\x1b[%zuF\x1b[J", drawn_lines_);
  std::fflush(stderr);
  drawn_lines_ = 0;
}

void ProgressBoard::draw_block() {
  const auto now = Clock::now();
  const std::size_t width = terminal_width();
  // One write: back to the block's first line, each line over the old one,
  // then clear whatever the old block had below the new one.
  std::string text = drawn_lines_ > 0 ? fmt::format("\x1b[{}F", drawn_lines_) : std::string();
  std::size_t lines = 0, files = 0, finished = 0;
  Row total{"total", 0, 0, 0, {}};
  for (auto& e : entries_) {
    ++files;
    total.total += e.total;
    if (e.ended) {
      ++finished;
      total.done += e.total;
      continue;
    }
    total.done += e.done;
    if (!e.running) continue;
    const double rate = rate_of(e, now);
    total.rate += rate;
    text += "\x1b[2K" + format_row(Row{e.name, e.done, e.total, rate, e.note}, width) + "\n";
    ++lines;
  }
  if (files > 1 && finished < files) {
    total.name = fmt::format("total ({} of {} files done)", finished, files);
    text += "\x1b[2K" + format_row(total, width) + "\n";
    ++lines;
  }
  text += "\x1b[J";
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
  drawn_lines_ = lines;
}

void ProgressBoard::render_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    draw_block();
    wake_.wait_for(lock, kRedrawEvery, [this] { return stopping_; });
  }
  clear_block();
}

}  // namespace s3up::client
