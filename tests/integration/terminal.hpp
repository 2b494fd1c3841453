#pragma once
// A real terminal for the client's tests: a tmux server of its own (its own
// socket, so tests can run side by side), one window per command. The test
// reads what the command drew from the pane, as a person would see it.
#include <chrono>
#include <filesystem>
#include <regex>
#include <string>
#include <string_view>

namespace s3up::test {

// Appended to a command (after ";"): prints "[exit N]" and keeps the window open.
extern const std::string_view kPrintExitStatus;

// `text` quoted for sh.
std::string shell_quote(const std::string& text);

class Terminal {
 public:
  Terminal(unsigned columns = 120, unsigned rows = 40);
  ~Terminal();
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  // Starts `command` (sh syntax) in a new window, which becomes the current one.
  void start(const std::string& command);
  // The current window's screen.
  std::string screen() const;
  // Polls the screen until `pattern` appears; the screen then, or "" on timeout.
  std::string wait_for(const std::regex& pattern, std::chrono::milliseconds timeout) const;

  struct Finished {
    int exit_code = -1;  // -1: it did not finish in time
    std::string screen;
  };
  // Runs `command` in a new window to its end.
  Finished run(const std::string& command, std::chrono::seconds timeout = std::chrono::seconds(120));

 private:
  std::string tmux(const std::string& arguments) const;
  std::string socket_;
  std::string window_;
  unsigned windows_ = 0;
};

}  // namespace s3up::test
