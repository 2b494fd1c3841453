// The webhooks' pure parts: settings that cannot work, the Standard
// Webhooks signature (the spec's own example), the payload, the backoff.
// Delivery itself is tested against a real receiver
// (tests/tus-client/webhooks.test.mjs).
#include "webhooks/webhooks.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace s3up::webhooks {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

TEST(WebhookSettings, WhatCannotWorkIsRefused) {
  WebhookSettings s;
  EXPECT_EQ(s.problem(), "") << "off";
  s.urls = {"https://app.example.com/hooks"};
  EXPECT_NE(s.problem().find("webhook_secret is required"), std::string::npos);
  s.secrets = {"not-a-secret-value"};
  const auto bad = s.problem();
  EXPECT_NE(bad.find("whsec_"), std::string::npos);
  EXPECT_EQ(bad.find("not-a-secret-value"), std::string::npos) << "a secret is never echoed";
  s.secrets = {kSecret};
  EXPECT_EQ(s.problem(), "");
  s.urls.push_back("http://hooks.example.com/");
  EXPECT_NE(s.problem().find("not https://"), std::string::npos);
  s.urls = {"http://127.0.0.1:9000/hooks", "http://user:pass@[::1]:9/x"};
  EXPECT_EQ(s.problem(), "") << "cleartext only to loopback";
  s.events = {"upload.completed", "upload.exploded"};
  EXPECT_NE(s.problem().find("upload.exploded"), std::string::npos);
  s.events = {"upload.completed"};
  EXPECT_EQ(s.event_types(), std::vector<std::string>{"upload.completed"});
  s.events.clear();
  EXPECT_EQ(s.event_types(), kEventTypes);
}

TEST(WebhookSignature, MatchesTheSpecsExample) {
  // The example in the Standard Webhooks specification.
  const std::string body = R"({"test": 2432232314})";
  EXPECT_EQ(signature({kSecret}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  // Two secrets while rotating: both sign.
  const auto both = signature({kSecret, "whsec_" + std::string(32, 'A')}, "msg_1", 1, body);
  EXPECT_EQ(both.find("v1,"), 0u);
  EXPECT_NE(both.find(" v1,"), std::string::npos);
}

TEST(WebhookPayload, TheFileAsTheApiShowsItPlusItsOwnerAndMetadata) {
  db::WebhookDelivery d;
  d.event_type = "upload.completed";
  d.created_at = 1'796'212'800'123'456;
  d.upload.id = "019ad3c3-0000-7000-8000-000000000001";
  d.upload.user_id = 3;
  d.upload.file_name = "report.pdf";
  d.upload.file_size = 42;
  d.upload.status = db::UploadStatus::complete;
  d.upload.created_at = d.created_at - 1000;
  d.upload.completed_at = d.created_at;
  d.user_name = "alice";
  d.metadata = "filename cmVwb3J0LnBkZg==,flag";
  const std::string body = payload(d);
  EXPECT_EQ(payload(d), body) << "the same bytes every time";
  const auto v = boost::json::parse(body).as_object();
  EXPECT_EQ(v.at("type").as_string(), "upload.completed");
  EXPECT_EQ(v.at("timestamp").as_string(), "2026-12-02T12:00:00.123Z");
  const auto& data = v.at("data").as_object();
  EXPECT_EQ(data.at("file_id").as_string(), d.upload.id);
  EXPECT_EQ(data.at("status").as_string(), "complete");
  EXPECT_EQ(data.at("user_name").as_string(), "alice");
  EXPECT_EQ(data.at("metadata").at("filename").as_string(), "report.pdf");
  EXPECT_EQ(data.at("metadata").at("flag").as_string(), "");
}

TEST(WebhookBackoff, DoublesFromFiveSecondsToAnHourWithJitter) {
  for (int i = 0; i < 50; ++i) {
    const auto first = backoff(1);
    EXPECT_GE(first, 4000ms);
    EXPECT_LE(first, 6000ms);
    const auto third = backoff(3);
    EXPECT_GE(third, 16000ms);
    EXPECT_LE(third, 24000ms);
    EXPECT_LE(backoff(40), 4320s) << "at most an hour and its jitter";
    EXPECT_GE(backoff(40), 2880s);
    EXPECT_GE(backoff(1, 120s), 120s) << "Retry-After is honoured";
    EXPECT_LE(backoff(1, 100000s), 3600s) << "up to an hour";
  }
}

}  // namespace
}  // namespace s3up::webhooks
