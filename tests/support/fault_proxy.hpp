#pragma once
// A TCP proxy on loopback that injects network faults between the service and
// one of its peers (radosgw, PostgreSQL, or the service itself for a client),
// on command and while connections are open: what a real network and real
// peers do to a service, on purpose and repeatably.
//
// Faults (each applies to the connections open now and to new ones, until
// cleared):
//   latency      the first piece of each exchange each way (a request, its
//                answer) waits this long first: delay, not a throughput cap
//   bandwidth    bytes per second, per connection and direction
//   reset_after  a connection is reset (RST both ways) once it has carried this
//                many more bytes
//   blackhole    nothing passes either way; connections stay open, what was
//                sent waits (TCP's backpressure), and flows again when it ends
//   half_open    every open connection's peer side is dropped without a word
//                to the client, which is never answered; new connections are
//                accepted and never answered
//   lose_answers the next N answers are lost: when a peer starts answering
//                after the client has sent, both sides are closed instead
//   refuse       the listener is closed: new connections are refused
//
// With several upstreams it is also a round-robin balancer that skips an
// upstream that refuses (the chaos soak's balancer). Control is by method
// or by text commands (command()), which the fault_proxy program reads from
// its control port.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace s3up::testing {

struct FaultCounts {
  std::uint64_t connections = 0;  // accepted
  std::uint64_t resets = 0;       // by reset_after
  std::uint64_t answers_lost = 0;
  std::uint64_t dropped = 0;      // connections cut by half_open
  std::uint64_t refused = 0;      // times the listener was closed
  std::uint64_t bytes = 0;        // passed on, both ways
};

class FaultProxy {
 public:
  // Listens on 127.0.0.1:`port` (0: any free port) and forwards to the
  // upstreams ("host:port"), round robin. Runs on a thread of its own.
  explicit FaultProxy(std::vector<std::pair<std::string, unsigned short>> upstreams, unsigned short port = 0);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  unsigned short port() const;

  void latency(std::chrono::milliseconds delay);
  void bandwidth(std::uint64_t bytes_per_second);  // 0: none
  void reset_after(std::optional<std::uint64_t> bytes);
  void blackhole(bool on);
  void half_open(bool on);
  void lose_answers(int count);
  void refuse(bool on);
  void clear();  // every fault off; connections cut by half_open stay cut
  FaultCounts counts() const;

  // One text command: "latency MS", "bandwidth BYTES_PER_S", "reset_after
  // BYTES", "blackhole on|off", "half_open on|off", "lose_answers N",
  // "refuse on|off", "clear", "counts". Returns "ok", the counts as JSON, or
  // "error: ...".
  std::string command(std::string_view line);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace s3up::testing
