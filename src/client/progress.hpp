#pragma once
// Progress for the client's transfers (internal to client/). On a terminal,
// a block of lines redrawn in place on stderr: one per transfer in progress
// (percent, bytes, rate, ETA) and a total. Lines that are done scroll up
// above the block. Without a terminal nothing moves: each transfer prints
// one line when it ends.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace s3up::client {

class ProgressBoard {
 public:
  // `live`: redraw on stderr (use stderr_is_terminal()).
  explicit ProgressBoard(bool live);
  ~ProgressBoard();
  ProgressBoard(const ProgressBoard&) = delete;
  ProgressBoard& operator=(const ProgressBoard&) = delete;

  static bool stderr_is_terminal();

  // A transfer of `total` bytes, waiting; its index for the calls below.
  std::size_t add(std::string name, std::uint64_t total);
  // It starts, with `done` bytes already there (a resumed transfer).
  void start(std::size_t line, std::uint64_t done);
  void set_done(std::size_t line, std::uint64_t done);
  // A word on the line instead of the rate ("retrying in 4 s"); empty clears it.
  void set_note(std::size_t line, std::string note);
  // It ended: the line leaves the block and `message` is printed for good,
  // on stdout for a success and on stderr for a failure.
  void finish(std::size_t line, const std::string& message);
  void fail(std::size_t line, const std::string& message);

  // Seconds since start() and the bytes moved since then.
  double seconds(std::size_t line) const;
  std::uint64_t moved(std::size_t line) const;

  // One line of the block, `width` columns at most (exposed for tests).
  struct Row {
    std::string name;
    std::uint64_t done = 0, total = 0;
    double rate = 0;  // bytes per second; 0: not known yet
    std::string note;
  };
  static std::string format_row(const Row& row, std::size_t width);

 private:
  struct Entry {
    std::string name;
    std::uint64_t total = 0, done = 0, done_at_start = 0;
    bool running = false, ended = false;
    std::chrono::steady_clock::time_point started;
    std::deque<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>> samples;  // for the rate
    std::string note;
  };
  double rate_of(Entry& entry, std::chrono::steady_clock::time_point now);
  void end(std::size_t line, const std::string& message, std::FILE* out);
  void render_loop();
  void clear_block();  // callers hold mutex_
  void draw_block();   // callers hold mutex_; redraws over the last block

  const bool live_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<Entry> entries_;
  std::size_t drawn_lines_ = 0;
  std::thread renderer_;
};

// "1:05", "1:02:03"
std::string format_eta(double seconds);

}  // namespace s3up::client
