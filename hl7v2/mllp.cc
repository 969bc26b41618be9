// MLLP framing and deframing: see mllp.h. Thread-safety: see mllp.h.
#include "hl7v2/mllp.h"

#include <cstdio>
#include <cstring>

namespace switchboard::hl7v2 {

std::string frame(std::string_view message) {
  std::string out;
  out.reserve(message.size() + 3);
  out.push_back(kMllpStart);
  out.append(message);
  out.push_back(kMllpEnd1);
  out.push_back(kMllpEnd2);
  return out;
}

void MllpDeframer::emitError(ErrorCode code, std::string message, uint64_t at) {
  ready_.push_back(
      std::unexpected(Error(code, std::move(message), "stream byte " + std::to_string(at))));
}

namespace {
std::string hexByte(char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", static_cast<unsigned char>(c));
  return buf;
}
}  // namespace

void MllpDeframer::feed(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    const char c = bytes[i];
    const uint64_t at = offset_ + i;
    switch (state_) {
      case State::kIdle:
      case State::kGarbage:
      case State::kDiscarding:
        if (c == kMllpStart) {
          state_ = State::kInFrame;
          buffer_.clear();
          frameStart_ = at;
        } else if (state_ == State::kIdle &&
                   !(allowLineBreaksBetweenFrames_ && (c == '\r' || c == '\n'))) {
          emitError(ErrorCode::kInvalid, "byte " + hexByte(c) + " before the MLLP start byte 0x0B",
                    at);
          state_ = State::kGarbage;
        }
        ++i;
        break;
      case State::kInFrame: {
        // Copy the run of message bytes up to the next byte with a meaning.
        const char* data = bytes.data() + i;
        size_t n = bytes.size() - i;
        size_t run = 0;
        while (run < n && data[run] != kMllpEnd1 && data[run] != kMllpStart) ++run;
        if (buffer_.size() + run > maxMessageBytes_) {
          emitError(ErrorCode::kTooLong,
                    "MLLP frame starting at stream byte " + std::to_string(frameStart_) +
                        " exceeds the limit of " + std::to_string(maxMessageBytes_) + " bytes",
                    at + (maxMessageBytes_ - buffer_.size()));
          buffer_.clear();
          buffer_.shrink_to_fit();
          state_ = State::kDiscarding;
          i += run;
          break;
        }
        buffer_.append(data, run);
        i += run;
        if (i < bytes.size()) {
          if (bytes[i] == kMllpStart) {
            emitError(ErrorCode::kInvalid,
                      "MLLP start byte inside the unfinished frame that started at stream byte " +
                          std::to_string(frameStart_) + "; its " + std::to_string(buffer_.size()) +
                          " bytes were dropped",
                      offset_ + i);
            buffer_.clear();
            frameStart_ = offset_ + i;
          } else {
            state_ = State::kSawEnd1;
          }
          ++i;
        }
        break;
      }
      case State::kSawEnd1:
        if (c == kMllpEnd2) {
          ready_.push_back(std::move(buffer_));
          buffer_ = std::string();
          state_ = State::kIdle;
        } else {
          emitError(ErrorCode::kInvalid,
                    "MLLP end byte 0x1C followed by " + hexByte(c) +
                        " instead of 0x0D; the frame that started at stream byte " +
                        std::to_string(frameStart_) + " was dropped",
                    at);
          buffer_.clear();
          if (c == kMllpStart) {
            state_ = State::kInFrame;
            frameStart_ = at;
          } else {
            state_ = State::kDiscarding;
          }
        }
        ++i;
        break;
    }
  }
  offset_ += bytes.size();
}

void MllpDeframer::finish() {
  if (state_ == State::kInFrame || state_ == State::kSawEnd1) {
    emitError(ErrorCode::kStructure,
              "stream ended inside the MLLP frame that started at stream byte " +
                  std::to_string(frameStart_) + " (" + std::to_string(buffer_.size()) +
                  " bytes received, no 0x1C 0x0D)",
              offset_);
    buffer_.clear();
  }
  state_ = State::kIdle;
}

std::optional<Result<std::string>> MllpDeframer::next() {
  if (ready_.empty()) return std::nullopt;
  Result<std::string> r = std::move(ready_.front());
  ready_.pop_front();
  return r;
}

}  // namespace switchboard::hl7v2
