#pragma once
// A fresh PostgreSQL database for one test on the server scripts/test starts
// (S3UP_TEST_PG_URL, an admin connection to its `postgres` database), dropped
// when the test ends. Throws if the peer's environment is missing: these tests
// must run, not skip.
#include <libpq-fe.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "util/crypto.hpp"

namespace s3up::testing {

inline std::string required_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) throw std::runtime_error(std::string(name) + " is not set: run the tests through scripts/test");
  return v;
}

// Runs one statement on the database at `url`.
inline void pg_run(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    const std::string msg = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("cannot reach the test PostgreSQL: " + msg);
  }
  PGresult* r = PQexec(c, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  const std::string msg = PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(c);
  if (!ok) throw std::runtime_error(sql + ": " + msg);
}

// Runs one statement on the admin connection (CREATE/DROP DATABASE cannot be
// prepared or run in a transaction).
inline void pg_admin(const std::string& sql) {
  pg_run(required_env("S3UP_TEST_PG_URL") + "?sslmode=verify-full&sslrootcert=" + required_env("S3UP_TEST_PG_CA_FILE"),
         sql);
}

class TestDatabase {
 public:
  TestDatabase() {
    std::uint8_t random[8];
    util::random_bytes(random);
    name_ = "s3up_test_" + util::to_hex(random);
    pg_admin("CREATE DATABASE " + name_);
  }
  ~TestDatabase() {
    try {
      pg_admin("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (...) {
    }
  }
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const std::string& name() const { return name_; }
  void run(const std::string& sql) const { pg_run(url(), sql); }
  // URL of this database, TLS verified against the test CA.
  std::string url() const {
    std::string base = required_env("S3UP_TEST_PG_URL");
    base = base.substr(0, base.rfind('/') + 1);
    return base + name_ + "?sslmode=verify-full&sslrootcert=" + required_env("S3UP_TEST_PG_CA_FILE");
  }

 private:
  std::string name_;
};

}  // namespace s3up::testing
