// MLLP framing (start 0x0B, message, end 0x1C 0x0D) and an incremental deframer for byte
// streams. Thread-safety: frame() is pure; one MllpDeframer serves one connection and is not
// safe for concurrent use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "engine/core/error.h"

namespace switchboard::hl7v2 {

inline constexpr char kMllpStart = 0x0B;
inline constexpr char kMllpEnd1 = 0x1C;
inline constexpr char kMllpEnd2 = 0x0D;

// 0x0B + message + 0x1C 0x0D.
std::string frame(std::string_view message);

// Feed it the bytes of a connection in chunks of any size (one byte at a time works); take
// complete messages and errors in stream order with next(). Errors carry location
// "stream byte N" (0-based offset of the offending byte since construction):
//   kInvalid  a byte outside a frame that is not the start byte (one error per run of such
//             bytes; the run is skipped up to the next start byte);
//   kInvalid  0x1C inside a frame not followed by 0x0D (the frame is dropped);
//   kInvalid  a start byte inside an unfinished frame (the partial frame is dropped and the new
//             one begins);
//   kTooLong  a frame whose message exceeds maxMessageBytes (the frame is dropped, its
//             remaining bytes skipped up to the next start byte).
// After an error the deframer goes on with the next frame; a server may instead close.
class MllpDeframer {
 public:
  // allowLineBreaksBetweenFrames: CR and LF bytes between frames (some senders end each frame
  // with an extra line break) are skipped silently instead of being reported.
  explicit MllpDeframer(size_t maxMessageBytes = 16 * 1024 * 1024,
                        bool allowLineBreaksBetweenFrames = false)
      : maxMessageBytes_(maxMessageBytes),
        allowLineBreaksBetweenFrames_(allowLineBreaksBetweenFrames) {}

  void feed(std::string_view bytes);
  // The next complete message (without framing bytes) or error; nullopt when none is ready.
  std::optional<Result<std::string>> next();
  // End of stream: queues an error (kStructure) if a frame was left unfinished.
  void finish();

  // Bytes of the frame being received (0 between frames).
  size_t pendingBytes() const { return buffer_.size(); }
  uint64_t bytesSeen() const { return offset_; }

 private:
  enum class State { kIdle, kGarbage, kInFrame, kSawEnd1, kDiscarding };
  void emitError(ErrorCode code, std::string message, uint64_t at);

  size_t maxMessageBytes_;
  bool allowLineBreaksBetweenFrames_;
  State state_ = State::kIdle;
  std::string buffer_;
  uint64_t offset_ = 0;      // stream offset of the next byte fed
  uint64_t frameStart_ = 0;  // stream offset of the current frame's start byte
  std::deque<Result<std::string>> ready_;
};

}  // namespace switchboard::hl7v2
