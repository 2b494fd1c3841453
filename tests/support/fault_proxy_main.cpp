// fault_proxy: the FaultProxy as a program, for tests that are scripts (the
// chaos soak). Prints {"port":N,"control":M} on its first line, then serves
// text commands (FaultProxy::command), one per line, on the control port, and
// answers each with one line.
//
//   fault_proxy --upstream 127.0.0.1:7480 [--upstream HOST:PORT ...]
//               [--listen PORT] [--control PORT]
#include <cstdio>
#include <iostream>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include "fault_proxy.hpp"

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

unsigned short port_number(const std::string& text) {
  const unsigned long v = std::stoul(text);
  if (v > 65535) throw std::out_of_range("port " + text);
  return static_cast<unsigned short>(v);
}

}  // namespace

int main(int argc, char** argv) try {
  std::vector<std::pair<std::string, unsigned short>> upstreams;
  unsigned short listen_port = 0, control_port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--upstream") {
      const auto colon = value.rfind(':');
      if (colon == std::string::npos) throw std::invalid_argument("--upstream takes HOST:PORT");
      upstreams.emplace_back(value.substr(0, colon), port_number(value.substr(colon + 1)));
    } else if (flag == "--listen") {
      listen_port = port_number(value);
    } else if (flag == "--control") {
      control_port = port_number(value);
    } else {
      throw std::invalid_argument("unknown option " + flag);
    }
  }
  s3up::testing::FaultProxy proxy(upstreams, listen_port);
  asio::io_context io;
  tcp::acceptor control(io, {asio::ip::make_address("127.0.0.1"), control_port});
  std::cout << "{\"port\":" << proxy.port() << ",\"control\":" << control.local_endpoint().port() << "}"
            << std::endl;
  for (;;) {
    tcp::socket s(io);
    control.accept(s);
    asio::streambuf in;
    boost::system::error_code ec;
    while (asio::read_until(s, in, '\n', ec) > 0 && !ec) {
      std::istream lines(&in);
      std::string line;
      std::getline(lines, line);
      const std::string answer = proxy.command(line) + "\n";
      asio::write(s, asio::buffer(answer), ec);
      if (ec) break;
    }
  }
} catch (const std::exception& e) {
  std::fprintf(stderr, "fault_proxy: %s\n", e.what());
  return 2;
}
