// ACK building (protocols.md 4.5) and MLLP framing/deframing across chunk boundaries.
#include <boost/test/unit_test.hpp>

#include <random>

#include "hl7v2/ack.h"
#include "hl7v2/mllp.h"
#include "tests/hl7v2/test_util.h"

namespace switchboard::hl7v2 {
namespace {

// protocols.md 4.4, the SIU example.
const std::string kSiu =
    "MSH|^~\\&|WAGW|CLINIC|EHR|HOSP|20250301101500||SIU^S12^SIU_S12|MSG0006|P|2.5.1|||AL|NE\r"
    "SCH|PLC123^WAGW|FIL456^SCHED||||NEW^New booking^L|ROUTINE^Routine^HL70276|Normal^Normal^"
    "HL70277|30|min^minutes^UCUM|^^30^20250310090000^20250310093000|||||DRSMITH^Smith^John^^^^"
    "MD||||WAGW^WhatsApp Gateway|||||Booked^Booked^HL70278\r"
    "TQ1|1||||||20250310090000|20250310093000\r"
    "PID|1||MRN12345^^^HOSP^MR||Doe^Jane^Q||19800115|F\r"
    "PV1|1|O\r"
    "RGS|1|A\r"
    "AIS|1|A|99213^Office visit^CPT|20250310090000|||30|min\r"
    "AIL|1|A|CLINIC^RM1^^HOSP\r"
    "AIP|1|A|DRSMITH^Smith^John^^^^MD\r";

Message mustParse(std::string_view text) {
  auto m = Message::parse(text);
  BOOST_REQUIRE_MESSAGE(m.has_value(), m.error().message);
  return std::move(*m);
}

BOOST_AUTO_TEST_SUITE(ack)

BOOST_AUTO_TEST_CASE(application_error_ack_matches_protocols_example) {
  Message in = mustParse(kSiu);
  AckOptions o;
  o.code = AckCode::kAE;
  o.controlId = "ACK0002";
  o.timestamp = "20250301101501";
  AckError e;
  e.location = ErrorLocation{"SCH", 1, 2};
  e.code = 207;
  e.severity = 'E';
  o.errors.push_back(e);
  auto ack = buildAck(in, o);
  BOOST_REQUIRE(ack.has_value());
  BOOST_CHECK_EQUAL(ack->toEr7(),
                    "MSH|^~\\&|EHR|HOSP|WAGW|CLINIC|20250301101501||ACK^S12^ACK|ACK0002|P|2.5.1\r"
                    "MSA|AE|MSG0006\r"
                    "ERR||SCH^1^2|207^Application internal error^HL70357|E\r");
}

BOOST_AUTO_TEST_CASE(framed_ack_is_92_bytes) {
  Message in = mustParse(kSiu);
  AckOptions o;
  o.code = AckCode::kAE;
  o.controlId = "ACK0002";
  o.timestamp = "20250301101501";
  auto ack = buildAck(in, o);
  BOOST_REQUIRE(ack.has_value());
  const std::string framed = frame(ack->toEr7());
  BOOST_CHECK_EQUAL(framed.size(), 92u);
  BOOST_CHECK(framed.starts_with("\x0bMSH|^~\\&|"));
  BOOST_CHECK(framed.ends_with("MSA|AE|MSG0006\r\x1c\r"));
}

BOOST_AUTO_TEST_CASE(ack_keeps_the_incoming_delimiters) {
  // 018 uses field ^, component ~, repetition |.
  Message in = mustParse(test::corpusMessage("018"));
  AckOptions o;
  o.code = AckCode::kAR;
  o.controlId = "C1";
  o.timestamp = "20260101000000";
  AckError e;
  e.code = 200;
  e.severity = 'E';
  e.userMessage = "no A24 here | sorry";
  o.errors.push_back(e);
  auto ack = buildAck(in, o);
  BOOST_REQUIRE(ack.has_value());
  BOOST_CHECK_EQUAL(ack->toEr7(),
                    "MSH^~|\\&^RECEIVING^200^SENDING^200M^20260101000000^^ACK~A24~ACK^C1^T^2.4\r"
                    "MSA^AR^2003582144\r"
                    "ERR^^^200~Unsupported message type~HL70357^E^^^^no A24 here \\R\\ sorry\r");
  // The ACK parses back with the same facts.
  Message back = mustParse(ack->toEr7());
  BOOST_CHECK_EQUAL(back.messageStructure(), "ACK");
  BOOST_CHECK_EQUAL(*back.get("MSA-2"), "2003582144");
  BOOST_CHECK_EQUAL(*back.get("ERR-8"), "no A24 here | sorry");
}

BOOST_AUTO_TEST_CASE(accept_ack_for_odd_delimiters_and_errors) {
  Message in = mustParse(test::corpusMessage("062"));  // field !, component $
  AckOptions o;
  o.code = AckCode::kAA;
  o.controlId = "A9";
  o.timestamp = "20260101";
  o.textMessage = "ok";
  auto ack = buildAck(in, o);
  BOOST_REQUIRE(ack.has_value());
  BOOST_CHECK_EQUAL(ack->toEr7(),
                    "MSH!$r?@!LB!LB!LIP!LIP!20260101!!ACK$$ACK!A9!D!2.5\r"
                    "MSA!AA!430102!ok\r");
  AckError wrong;
  wrong.severity = 'X';
  o.errors.push_back(wrong);
  auto bad = buildAck(in, o);
  BOOST_REQUIRE(!bad.has_value());
  BOOST_CHECK_EQUAL(bad.error().location, "ERR[1]-4");
}

BOOST_AUTO_TEST_CASE(reject_for_bytes_that_do_not_parse) {
  AckOptions o;
  o.code = AckCode::kAR;
  o.controlId = "C9";
  o.timestamp = "TS";
  AckError e;
  e.code = 100;
  o.errors.push_back(e);
  // A broken second segment: the MSH still gives delimiters, applications and control id.
  auto fromMsh = buildAckForBytes("MSH|^~\\&|A|B|C|D|20250101||ADT^A04|X1|P|2.5.1\rpid|1", o);
  BOOST_REQUIRE(fromMsh.has_value());
  BOOST_CHECK_EQUAL(fromMsh->toEr7(),
                    "MSH|^~\\&|C|D|A|B|TS||ACK^A04^ACK|C9|P|2.5.1\r"
                    "MSA|AR|X1\r"
                    "ERR|||100^Segment sequence error^HL70357|E\r");
  // No usable MSH at all: default delimiters and nothing copied.
  auto blind = buildAckForBytes(std::string("\x00garbage", 8), o);
  BOOST_REQUIRE(blind.has_value());
  BOOST_CHECK_EQUAL(blind->toEr7(),
                    "MSH|^~\\&|||||TS||ACK^^ACK|C9\r"
                    "MSA|AR\r"
                    "ERR|||100^Segment sequence error^HL70357|E\r");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(mllp)

std::vector<Result<std::string>> drain(MllpDeframer& d) {
  std::vector<Result<std::string>> out;
  while (auto r = d.next()) out.push_back(std::move(*r));
  return out;
}

BOOST_AUTO_TEST_CASE(frame_bytes) {
  BOOST_CHECK_EQUAL(frame("MSH|x\r"), std::string("\x0bMSH|x\r\x1c\r"));
  BOOST_CHECK_EQUAL(frame(""), std::string("\x0b\x1c\r"));
}

BOOST_AUTO_TEST_CASE(every_split_point_and_one_byte_at_a_time) {
  const std::string a = "MSH|^~\\&|A\rPID|1\r";
  const std::string b = "MSH|^~\\&|B";  // no final CR inside the frame
  const std::string stream = frame(a) + frame(b);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    MllpDeframer d;
    d.feed(std::string_view(stream).substr(0, cut));
    d.feed(std::string_view(stream).substr(cut));
    auto got = drain(d);
    BOOST_REQUIRE_EQUAL(got.size(), 2u);
    BOOST_REQUIRE(got[0].has_value() && got[1].has_value());
    BOOST_CHECK_EQUAL(*got[0], a);
    BOOST_CHECK_EQUAL(*got[1], b);
  }
  MllpDeframer d;
  std::vector<std::string> seen;
  for (char c : stream) {
    d.feed(std::string_view(&c, 1));
    while (auto r = d.next()) seen.push_back(**r);
  }
  BOOST_REQUIRE_EQUAL(seen.size(), 2u);
  BOOST_CHECK_EQUAL(seen[0], a);
  BOOST_CHECK_EQUAL(seen[1], b);
  BOOST_CHECK_EQUAL(d.pendingBytes(), 0u);
  BOOST_CHECK_EQUAL(d.bytesSeen(), stream.size());
}

BOOST_AUTO_TEST_CASE(whole_corpus_in_random_chunks) {
  std::string stream;
  std::vector<std::string> messages;
  for (const auto& f : test::corpusFiles()) {
    messages.push_back(test::readBytes(f));
    stream += frame(messages.back());
  }
  BOOST_REQUIRE_EQUAL(messages.size(), 72u);
  std::mt19937 rng(5);
  MllpDeframer d;
  std::vector<std::string> got;
  for (size_t pos = 0; pos < stream.size();) {
    size_t n = std::min<size_t>(1 + rng() % 700, stream.size() - pos);
    d.feed(std::string_view(stream).substr(pos, n));
    pos += n;
    while (auto r = d.next()) {
      BOOST_REQUIRE(r->has_value());
      got.push_back(**r);
    }
  }
  BOOST_CHECK(got == messages);
}

BOOST_AUTO_TEST_CASE(garbage_before_start_byte) {
  MllpDeframer d;
  d.feed("ab");
  d.feed("c" + frame("MSH|^~\\&|A") + "\r\n" + frame("MSH|^~\\&|B"));
  auto got = drain(d);
  BOOST_REQUIRE_EQUAL(got.size(), 4u);
  BOOST_REQUIRE(!got[0].has_value());
  BOOST_CHECK_EQUAL(got[0].error().location, "stream byte 0");
  BOOST_CHECK(got[0].error().message.find("0x61") != std::string::npos);  // 'a'
  BOOST_REQUIRE(got[1].has_value());
  BOOST_CHECK_EQUAL(*got[1], "MSH|^~\\&|A");
  BOOST_REQUIRE(!got[2].has_value());
  BOOST_CHECK_EQUAL(got[2].error().location, "stream byte 16");  // 3 + 13 framed bytes
  BOOST_REQUIRE(got[3].has_value());
  BOOST_CHECK_EQUAL(*got[3], "MSH|^~\\&|B");
}

BOOST_AUTO_TEST_CASE(line_breaks_between_frames_when_allowed) {
  const std::string stream = "\r\n" + frame("A") + "\n" + frame("B") + "\r\nx" + frame("C");
  MllpDeframer lenient(1024, true);
  lenient.feed(stream);
  auto got = drain(lenient);
  BOOST_REQUIRE_EQUAL(got.size(), 4u);
  BOOST_CHECK(got[0].has_value() && *got[0] == "A");
  BOOST_CHECK(got[1].has_value() && *got[1] == "B");
  BOOST_REQUIRE(!got[2].has_value());                            // other bytes are still reported
  BOOST_CHECK_EQUAL(got[2].error().location, "stream byte 13");  // 2 + 4 + 1 + 4 + 2
  BOOST_CHECK(got[3].has_value() && *got[3] == "C");
  MllpDeframer strict(1024);
  strict.feed(stream);
  auto errors = drain(strict);
  BOOST_REQUIRE_EQUAL(errors.size(), 6u);  // three runs of stray bytes, three messages
  BOOST_CHECK(!errors[0].has_value());
  BOOST_CHECK_EQUAL(errors[0].error().location, "stream byte 0");
}

BOOST_AUTO_TEST_CASE(over_long_frame_same_error_in_any_chunking) {
  const std::string stream = frame(std::string(11, 'x')) + frame("MSH|ok");
  for (size_t step : {1u, 2u, 5u, 100u}) {
    MllpDeframer d(10);
    for (size_t pos = 0; pos < stream.size(); pos += step) {
      d.feed(std::string_view(stream).substr(pos, step));
    }
    auto got = drain(d);
    BOOST_REQUIRE_EQUAL(got.size(), 2u);
    BOOST_REQUIRE(!got[0].has_value());
    BOOST_CHECK_EQUAL(static_cast<int>(got[0].error().code), static_cast<int>(ErrorCode::kTooLong));
    BOOST_CHECK_EQUAL(got[0].error().location, "stream byte 11");  // the 11th message byte
    BOOST_REQUIRE(got[1].has_value());
    BOOST_CHECK_EQUAL(*got[1], "MSH|ok");
  }
  // Exactly at the limit is fine.
  MllpDeframer d(10);
  d.feed(frame(std::string(10, 'y')));
  auto got = drain(d);
  BOOST_REQUIRE_EQUAL(got.size(), 1u);
  BOOST_CHECK(got[0].has_value());
}

BOOST_AUTO_TEST_CASE(bad_end_restart_and_unfinished_frame) {
  MllpDeframer d;
  d.feed(
      std::string("\x0b"
                  "abc\x1c"
                  "X",
                  6));  // 0x1C not followed by 0x0D
  d.feed(
      std::string("\x0b"
                  "one\x0b"
                  "two\x1c\r",
                  10));  // a start byte inside a frame
  d.feed(
      std::string("\x0b"
                  "half",
                  5));
  d.finish();
  auto got = drain(d);
  BOOST_REQUIRE_EQUAL(got.size(), 4u);
  BOOST_REQUIRE(!got[0].has_value());
  BOOST_CHECK_EQUAL(got[0].error().location, "stream byte 5");
  BOOST_REQUIRE(!got[1].has_value());
  BOOST_CHECK_EQUAL(got[1].error().location, "stream byte 10");
  BOOST_REQUIRE(got[2].has_value());
  BOOST_CHECK_EQUAL(*got[2], "two");
  BOOST_REQUIRE(!got[3].has_value());
  BOOST_CHECK_EQUAL(static_cast<int>(got[3].error().code), static_cast<int>(ErrorCode::kStructure));
  BOOST_CHECK_EQUAL(got[3].error().location, "stream byte 21");
}

BOOST_AUTO_TEST_CASE(random_bytes_never_crash) {
  std::mt19937 rng(99);
  MllpDeframer d(64);
  for (int i = 0; i < 2000; ++i) {
    std::string chunk(rng() % 50, '\0');
    for (char& c : chunk) {
      unsigned v = rng() % 8;
      c = v == 0 ? '\x0b' : v == 1 ? '\x1c' : v == 2 ? '\r' : static_cast<char>(rng());
    }
    d.feed(chunk);
    while (auto r = d.next()) {
      if (*r) BOOST_CHECK_LE((*r)->size(), 64u);
    }
    BOOST_CHECK_LE(d.pendingBytes(), 64u);
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace switchboard::hl7v2
