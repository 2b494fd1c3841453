#include "terminal.hpp"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <stdexcept>
#include <thread>

namespace s3up::test {

namespace {

std::string capture(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run: " + command);
  std::array<char, 4096> buffer{};
  while (const std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe)) out.append(buffer.data(), n);
  ::pclose(pipe);
  return out;
}

}  // namespace

// The exit status, printed for the test to read. The window then stays
// alive: tmux 3.3 can drop the last screen updates of a pane whose process
// exits right after writing them.
const std::string_view kPrintExitStatus = "echo \"[exit $?]\"; exec sleep 3600";

std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

Terminal::Terminal(unsigned columns, unsigned rows) {
  static int counter = 0;
  socket_ = "s3up-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  // A session whose first window idles; commands get windows of their own.
  tmux("-f /dev/null new-session -d -s main -x " + std::to_string(columns) + " -y " + std::to_string(rows) +
       " 'sleep 3600'");
  tmux("set-option -g remain-on-exit on");
}

Terminal::~Terminal() { tmux("kill-server"); }

std::string Terminal::tmux(const std::string& arguments) const {
  return capture("tmux -L " + socket_ + " " + arguments + " 2>&1");
}

void Terminal::start(const std::string& command) {
  window_ = "w" + std::to_string(++windows_);
  tmux("new-window -t main -n " + window_ + " " + shell_quote(command));
}

std::string Terminal::screen() const { return tmux("capture-pane -p -t main:" + window_); }

std::string Terminal::wait_for(const std::regex& pattern, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string text = screen();
    if (std::regex_search(text, pattern)) return text;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return "";
}

Terminal::Finished Terminal::run(const std::string& command, std::chrono::seconds timeout) {
  start(command + "; " + std::string(kPrintExitStatus));
  Finished finished;
  finished.screen = wait_for(std::regex(R"(\[exit \d+\])"), timeout);
  std::smatch m;
  if (std::regex_search(finished.screen, m, std::regex(R"(\[exit (\d+)\])"))) finished.exit_code = std::stoi(m[1]);
  return finished;
}

}  // namespace s3up::test
