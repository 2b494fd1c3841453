#pragma once
// Resumable uploads (tus): one upload written by many requests, perhaps to
// many instances, each appending at the offset the database holds.
//
// What an acknowledged offset promises is kept by two things. The store's
// writer makes bytes durable at checkpoints (local: fsync; S3:
// completed parts plus a tail object). The database records each durable
// point, with the store's and the hash's state, under a write lease: one
// request writes an upload at a time, anywhere. A lease runs kLease from its
// last renewal and is renewed while bytes arrive; a request whose client went
// silent loses it once it lapses, and every instance may then take it, with
// a new token. The old request is fenced twice: the database refuses its
// progress (the token moved on), and it writes nothing to the store once its
// own lease time has run out (checked before every write, with a margin for
// clocks), so a half-open connection that wakes up cannot scribble.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "auth/authenticator.hpp"
#include "db/metadata_store.hpp"
#include "util/byte_source.hpp"
#include "upload/session.hpp"

namespace s3up::upload {

struct ResumableSettings {
  // How long an unfinished upload lives after its creation or last PATCH.
  std::chrono::milliseconds expiry{24 * 3600 * 1000};
  // The write lease: how long it runs from its last renewal.
  std::chrono::milliseconds lease{6000};
};

// An upload as a tus client sees it.
struct ResumableUpload {
  db::Upload upload;
  db::ResumableState state;
  bool complete() const { return upload.status == db::UploadStatus::complete; }
};

struct ResumablePlan {
  std::string file_name;      // empty: the upload's id
  std::string declared_type;  // the client's, normalised or dropped
  std::optional<std::uint64_t> length;  // none: deferred
  std::string metadata;                 // Upload-Metadata as sent, echoed by HEAD
};

// A chunk's expected digest (tus checksum extension).
struct ChunkChecksum {
  std::string algorithm;  // sha1, sha256, md5
  std::string digest;     // raw bytes
};

class ResumableUploads {
 public:
  ResumableUploads(const Services& services, ResumableSettings settings);

  // Creates the upload (pending row, its progress row, its quota when the
  // length is known); a length of 0 completes it at once.
  boost::asio::awaitable<ResumableUpload> create(const auth::Principal& owner, const ResumablePlan& plan);
  // The same for an upload whose whole body is in the creation request
  // (creation-with-upload of a whole file, checked by length): it is stored
  // as a single-shot upload is, in one pass, and is complete at once.
  boost::asio::awaitable<ResumableUpload> create_whole(const auth::Principal& owner, const ResumablePlan& plan,
                                                       util::ByteSource& body);
  // The caller's upload `id`; 404 for anyone else's, a missing or failed one,
  // and an unfinished one past its expiry.
  boost::asio::awaitable<ResumableUpload> find(const auth::Principal& caller, const std::string& id);
  // find(), for a HEAD: an upload whose every byte is stored but whose
  // completion failed (the store or the database was down as its last PATCH
  // ended) is completed first, since an offset equal to the length tells a
  // client it is done. 423 while another request writes it.
  boost::asio::awaitable<ResumableUpload> status(const auth::Principal& caller, const std::string& id);
  // Appends the body at `offset` (409 unless it is the stored one), after
  // setting a deferred length if `length` is given; 423 while another request
  // writes the upload. With a checksum the chunk counts whole or not at all
  // (460). Completes the upload when its last byte arrives. A type the bytes
  // refuse (415) ends the upload: no later request can change it.
  boost::asio::awaitable<ResumableUpload> append(const auth::Principal& caller, const std::string& id,
                                                 std::uint64_t offset, std::optional<std::uint64_t> length,
                                                 const std::optional<ChunkChecksum>& checksum, util::ByteSource& body);
  // Removes the upload and everything it stored (tus termination).
  boost::asio::awaitable<void> terminate(const auth::Principal& caller, const std::string& id);

  // The janitor's part: ends uploads whose expiry has passed (aborts what
  // the store holds, gives the quota back, marks them failed). Returns how
  // many it ended.
  boost::asio::awaitable<std::size_t> end_expired(std::size_t limit);

 private:
  class Append;
  boost::asio::awaitable<void> fail(const auth::Principal& caller, const std::string& id,
                                                 std::exception_ptr failure);
  boost::asio::awaitable<void> discard(const db::Upload& upload, const db::ResumableState& state);

  const Services& services_;
  ResumableSettings settings_;
};

}  // namespace s3up::upload
